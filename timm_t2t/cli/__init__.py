"""The `timm-t2t` command line (console script `timm_t2t.cli.main:main`, also `python -m timm_t2t`).

* `main`: the parser, the entry point `main`, dispatch and error handling, the delegated commands;
* `args`: arguments several commands share (`--model-kwargs`);
* `model_options`: `--model-kwargs` checked against the model's constructor before anything is built;
* `outputs`: `--out` paths checked before any work, files written under a temporary name and renamed into place;
* `errors`: `CliError` (bad input, exit code 2) and the exit codes;
* `loading`: the model of a command, from a name or a `--weights` file;
* `predict`: the `predict` and `features` commands;
* `listing`: the `list` and `recipes` commands;
* `export`: the `export` command (the export and its check are in `timm_t2t.export`);
* `weights`: the `convert` and `push` commands (the work is in `timm_t2t.weights`);
* `bench`: the `bench` and `bench-deploy` arguments (the benchmarks are in `timm_t2t.bench`);
* `demo`: the `demo` command's arguments and run sizes; `demo_run`: the demo itself.

Building the parser imports neither torch nor timm: only `demo_run` imports them at module level, and it is imported
only when `timm-t2t demo` runs.
"""
