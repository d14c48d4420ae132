"""`timm-t2t`: the T2T-ViT command line (also `python -m timm_t2t`).

    timm-t2t list [--json]                        every architecture and pretrained tag
    timm-t2t predict IMAGE... --model NAME[.TAG]  top-k classes, preprocessing from the model's pretrained cfg
    timm-t2t features IMAGE --model NAME          shapes of every feature map, optionally saved as safetensors
    timm-t2t recipes [NAME]                       the official training recipes (train.py --config files)
    timm-t2t export MODEL --out PATH              ONNX or OpenVINO IR, checked in its runtime against the model
    timm-t2t demo                                 fine-tune t2t_vit_7 on generated images, offline, CPU
    timm-t2t convert | push | bench | bench-deploy   weights conversion, Hub publishing, benchmarks

Bad input (a missing or unreadable file, an unknown model or tag, a checkpoint of another architecture) ends with one
line on stderr and exit code 2; `--debug` shows the traceback instead. Every command is wired in a module of its own
(`timm_t2t.cli.*`); `export`, `demo`, `convert`, `push`, `bench` and `bench-deploy` (DELEGATED) are imported only
when chosen.

Help and `--version` import neither torch nor timm: the command modules import them only inside the commands, and
`register_models()` imports the model module (which registers the T2T-ViT models with timm) just before a command
that needs them runs. The package itself skips that import when it is imported to start the command line
(`timm_t2t._launch`).
"""
import argparse
import importlib
import logging
import sys
from typing import Callable, Dict, Optional, Sequence, Tuple

from .errors import EXIT_BAD_INPUT, EXIT_FAILURE, CliError, one_line
from .listing import configure_list_parser, configure_recipes_parser
from .predict import configure_features_parser, configure_predict_parser

__all__ = ['main', 'build_parser', 'register_models', 'DELEGATED']

# Subcommands that live in other modules: (parser module, its configure fn, run fn, help); the run fn is a function
# of the parser module, or `module:function` to import only when the command runs. Imported only when chosen; the
# parser modules are free of torch and timm, so `COMMAND --help` is instant.
DELEGATED: Dict[str, Tuple[str, str, str, str]] = {
    'export': ('timm_t2t.cli.export', 'configure_parser', 'run_export',
               'export a model to ONNX or OpenVINO IR, checked in its runtime against the model'),
    'demo': ('timm_t2t.cli.demo', 'configure_parser', 'timm_t2t.cli.demo_run:run',
             'fine-tune t2t_vit_7 on a generated image set, reload the checkpoint and predict (offline, CPU)'),
    'convert': ('timm_t2t.cli.weights', 'configure_convert_parser', 'run_convert',
                'convert an official checkpoint into a Hub-ready folder, checked against the original'),
    'push': ('timm_t2t.cli.weights', 'configure_push_parser', 'run_push',
             'upload converted folders to the Hugging Face Hub'),
    'bench': ('timm_t2t.cli.bench', 'configure_parser', 'timm_t2t.bench.speed:run',
              'benchmark T2T-ViT against timm ViTs (speed, memory)'),
    'bench-deploy': ('timm_t2t.cli.bench', 'configure_deploy_parser', 'timm_t2t.bench.deploy:run',
                     'time the exported models in ONNX Runtime and OpenVINO beside timm ViTs'),
}
# Commands that run without the models (no torch or timm import at all).
WITHOUT_MODELS = {'recipes'}


def register_models() -> None:
    """Register the T2T-ViT models with timm (imports torch and timm; a no-op once done)."""
    importlib.import_module('timm_t2t.models.t2t_vit')


def _is_user_error(error: BaseException) -> bool:
    if isinstance(error, (CliError, FileNotFoundError, ValueError)):
        return True
    try:
        from ..weights.checkpoint_io import PretrainedWeightsError
    except Exception:  # the weights module is broken: then nothing it raises is a user error either
        return False
    return isinstance(error, PretrainedWeightsError)


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The subcommand named in argv (the global options take no values), so that only its module is imported."""
    return next((a for a in argv if not a.startswith('-')), None)


def _unavailable(command: str, module_name: str, error: BaseException) -> CliError:
    return CliError(f'`timm-t2t {command}` is unavailable: {module_name} could not be loaded ({one_line(error)}); '
                    f'reinstall the package (pip install -e .) or rerun with --debug.')


def _deferred(command: str, module_name: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A command function that imports its module (torch, timm, ...) only when the command runs."""
    def run(args: argparse.Namespace) -> int:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise _unavailable(command, module_name, e) from e
        return getattr(module, name)(args)
    return run


def _add_delegated(sub: argparse.ArgumentParser, command: str) -> None:
    module_name, configure, run, _ = DELEGATED[command]
    try:
        module = importlib.import_module(module_name)
        getattr(module, configure)(sub)
        run_module, _, run_name = run.rpartition(':')
        sub.set_defaults(func=_deferred(command, run_module, run_name) if run_module else getattr(module, run))
    except (ImportError, AttributeError) as e:
        error = _unavailable(command, module_name, e)

        def unavailable(args: argparse.Namespace) -> int:
            raise error
        unavailable.accepts_any_arguments = True  # its own options are unknown: say why instead of rejecting them
        sub.set_defaults(func=unavailable)


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The argument parser; only the module of `command` (if delegated) is imported to configure it."""
    from .. import __version__

    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite --debug given before the subcommand.
    common.add_argument('--debug', action='store_true', default=argparse.SUPPRESS,
                        help='show the full traceback of errors and info logs')

    parser = argparse.ArgumentParser(
        prog='timm-t2t', description='Tokens-to-Token ViT (T2T-ViT) models for timm: list, predict, features, recipes, '
                                     'export, demo, and the weights and benchmark tools.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    parser.add_argument('--debug', action='store_true', help='show the full traceback of errors and info logs')
    subs = parser.add_subparsers(dest='command', metavar='COMMAND')

    configure_list_parser(
        subs.add_parser('list', parents=[common], help='every T2T-ViT architecture and pretrained tag'))
    configure_predict_parser(subs.add_parser('predict', parents=[common], help='classify images'))
    configure_features_parser(
        subs.add_parser('features', parents=[common], help='feature map shapes (features_only=True)'))
    configure_recipes_parser(
        subs.add_parser('recipes', parents=[common], help='the official training recipes as train.py configs'))

    for name, (_, _, _, help_text) in DELEGATED.items():
        sub = subs.add_parser(name, parents=[common], help=help_text)
        if name == command:
            _add_delegated(sub, name)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the `timm-t2t` command line.

    Args:
        argv: Arguments without the program name; default `sys.argv[1:]`.

    Returns:
        Exit code: 0 on success, 2 for bad input, 1 for unexpected failures.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(getattr(args, 'func', None), 'accepts_any_arguments', False):
        parser.error(f'unrecognized arguments: {" ".join(unknown)}')
    if getattr(args, 'func', None) is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    if args.debug:
        logging.basicConfig(level=logging.INFO)
    try:
        check_input = getattr(args, 'check_input', None)
        if check_input is not None:  # a command's checks that need no model run first: bad input fails at once
            check_input(args)
        if args.command not in WITHOUT_MODELS:
            register_models()
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print('timm-t2t: interrupted', file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        if _is_user_error(e):
            print(f'timm-t2t {args.command}: error: {one_line(e)}', file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f'timm-t2t {args.command}: unexpected error: {type(e).__name__}: {one_line(e)} '
              f'(rerun with --debug for the traceback)', file=sys.stderr)
        return EXIT_FAILURE


if __name__ == '__main__':
    sys.exit(main())
