"""Arguments that several `timm-t2t` commands share, spelled the same everywhere. Free of torch and timm."""
import argparse
import ast
from typing import Any, Callable, Tuple

__all__ = ['key_value', 'add_model_kwargs_argument', 'add_pretrained_argument']


def key_value(text: str, positional: str = 'positional arguments') -> Tuple[str, Any]:
    """KEY=VALUE, the value a Python literal if it parses as one (as timm's scripts read --model-kwargs).

    Args:
        text: The argument.
        positional: What to give before `--model-kwargs` (it takes every following KEY=VALUE), for the error.

    Raises:
        argparse.ArgumentTypeError: Not KEY=VALUE with an identifier as KEY.
    """
    key, sep, value = text.partition('=')
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f'expected KEY=VALUE, got {text!r} (give {positional} before --model-kwargs)')
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _key_value_type(positional: str) -> Callable[[str], Tuple[str, Any]]:
    def parse(text: str) -> Tuple[str, Any]:
        return key_value(text, positional)
    return parse


def add_model_kwargs_argument(p: argparse.ArgumentParser, help: str, positional: str = 'positional arguments') -> None:
    """`--model-kwargs KEY=VALUE [...]` (timm's train.py spelling) into `args.model_kwargs`, a list of (key, value).

    Repeating it adds more. `--model-arg KEY=VALUE` (one pair each, the former spelling of `convert`) is kept as an
    alias on every command that has the option; `dict(args.model_kwargs)` gives the `timm.create_model` arguments.

    Args:
        p: The command's parser.
        help: Help text of `--model-kwargs`.
        positional: The command's positional arguments, named in the error for a misplaced one.
    """
    parse = _key_value_type(positional)
    p.add_argument('--model-kwargs', nargs='+', action='extend', type=parse, default=[], metavar='KEY=VALUE',
                   help=help)
    p.add_argument('--model-arg', action='append', type=parse, dest='model_kwargs', default=argparse.SUPPRESS,
                   metavar='KEY=VALUE', help='one KEY=VALUE; the same as --model-kwargs (an older spelling)')


def add_pretrained_argument(p: argparse.ArgumentParser) -> None:
    """`--pretrained` / `--no-pretrained` (timm's spelling, argparse.BooleanOptionalAction) into `args.pretrained`.

    Default on: the model's pretrained tag, or `--weights`. `--no-pretrained` builds the model with random weights, no
    download and no file: for trying a command offline.
    """
    p.add_argument('--pretrained', action=argparse.BooleanOptionalAction, default=True,
                   help='load the pretrained tag\'s weights (default); --no-pretrained: random weights, nothing '
                        'downloaded, for trying the command offline (the outputs mean nothing)')
