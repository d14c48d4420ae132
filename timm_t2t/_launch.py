"""Is this interpreter starting the `timm-t2t` command line? Then importing the package may defer the model module.

`import timm_t2t` registers the models with timm, which imports torch and timm: 3-4 s that `timm-t2t --help` must not
pay. Both ways of starting the command line import the package before any of its code can look at the arguments:

* `python -m timm_t2t ...`: runpy imports the package to find `timm_t2t.__main__`; while it does, `sys.argv[0]` is
  `'-m'` (documented for `-m`) and `sys.orig_argv` holds the module name;
* the `timm-t2t` console script (`from timm_t2t.cli.main import main`): `sys.argv[0]` is the script, `.../timm-t2t`
  (pip's Windows launchers add `.exe` or `-script.py`).

In those two cases the package skips the model import, and the command line imports `timm_t2t.models.t2t_vit` itself
before it runs any command that needs the models (`timm_t2t.cli.main.main`). Everything else, `python -m timm_t2t.run`
included, gets the registering import as before.
"""
import re
import sys
from typing import Optional, Sequence

__all__ = ['started_as_command_line']

CONSOLE_SCRIPT = 'timm-t2t'
# `python -m` targets that run the command line: the package (its __main__) and the command line's main module itself
CLI_MODULES = ('timm_t2t', 'timm_t2t.__main__', 'timm_t2t.cli.main')
_OPTIONS_WITH_VALUE = 'XW'  # interpreter options that take a value: -X importtime, -W error
_LAUNCHER_SUFFIX = re.compile(r'(-script\.pyw?|\.exe)$')


def dash_m_module(orig_argv: Sequence[str]) -> Optional[str]:
    """The module an interpreter command line runs with `-m` (`python -X importtime -m timm_t2t` -> `timm_t2t`).

    Returns None for a script, `-c` code or stdin. Interpreter options before `-m` may be grouped (`-Im mod`,
    `-mmod`) and `-X` / `-W` take a value.
    """
    args = iter(orig_argv[1:])
    for arg in args:
        if arg == '--check-hash-based-pycs':
            next(args, None)
            continue
        if not arg.startswith('-') or arg in ('-', '--'):
            return None  # a script or stdin: no -m
        if arg.startswith('--'):
            continue  # --help-env and the like take no value
        flags = arg[1:]
        for i, flag in enumerate(flags):
            if flag == 'm':
                return flags[i + 1:] or next(args, None)
            if flag == 'c':
                return None
            if flag in _OPTIONS_WITH_VALUE:
                if not flags[i + 1:]:
                    next(args, None)
                break
    return None


def started_as_command_line(
        argv: Optional[Sequence[str]] = None,
        orig_argv: Optional[Sequence[str]] = None,
) -> bool:
    """True while the package is imported to start the `timm-t2t` command line (see the module docstring).

    Args:
        argv: `sys.argv` (default).
        orig_argv: `sys.orig_argv` (default), the interpreter's own command line.
    """
    argv = sys.argv if argv is None else argv
    if not argv:  # embedded interpreters may have no argv
        return False
    if argv[0] == '-m':
        orig_argv = getattr(sys, 'orig_argv', ()) if orig_argv is None else orig_argv
        return dash_m_module(orig_argv) in CLI_MODULES
    script = re.split(r'[\\/]', argv[0])[-1]  # either separator: the check must not depend on the OS it runs on
    return _LAUNCHER_SUFFIX.sub('', script) == CONSOLE_SCRIPT
