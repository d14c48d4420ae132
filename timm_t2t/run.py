"""Run a timm script with the T2T-ViT models registered, without editing the script.

    python -m timm_t2t.run path/to/train.py --model t2t_vit_7 ...
    torchrun --nproc_per_node=2 -m timm_t2t.run path/to/train.py --model t2t_vit_7 --device cpu ...

Imports `timm_t2t` (registering the models), then runs the script as `__main__` with its own arguments, the way
`python path/to/train.py ...` would. Useful when the autoload hook is off (`TIMM_T2T_AUTOLOAD=0`) or not installed.
"""
import os
import runpy
import sys
from typing import List, Optional

import timm_t2t  # noqa: F401  registers the t2t_vit_* models with timm

USAGE = 'usage: python -m timm_t2t.run SCRIPT [ARGS...]   (e.g. timm\'s train.py, validate.py, benchmark.py)'


def main(argv: Optional[List[str]] = None) -> None:
    """Run SCRIPT (argv[0]) with the remaining arguments as its command line.

    Args:
        argv: SCRIPT and its arguments; defaults to `sys.argv[1:]`.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE, file=sys.stderr)
        raise SystemExit(0 if argv else 2)
    script = argv[0]
    if not os.path.isfile(script):
        raise SystemExit(f'timm_t2t.run: script {script!r} not found. {USAGE}')
    sys.argv = [script, *argv[1:]]
    # `python script.py` puts the script's folder first on sys.path (timm's scripts import nothing local, others may).
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name='__main__')


if __name__ == '__main__':
    main()
