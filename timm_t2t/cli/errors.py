"""Errors of the `timm-t2t` command line: `CliError` for bad input, and the exit codes. Free of torch and timm."""
__all__ = ['CliError', 'EXIT_BAD_INPUT', 'EXIT_FAILURE', 'one_line']

EXIT_BAD_INPUT = 2  # argparse's exit code for bad arguments; used for every user error
EXIT_FAILURE = 1  # anything unexpected


class CliError(Exception):
    """Bad input: printed as one line saying what is wrong and what to do, exit code 2."""


def one_line(error: BaseException) -> str:
    """An error's message on one line (its type name when empty), for the one-line error output."""
    text = ' '.join(str(error).split())
    return text or type(error).__name__
