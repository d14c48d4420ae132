#!/usr/bin/env python3
"""Speed and memory of T2T-ViT next to plain ViTs: the same as `timm-t2t bench`, writing to benchmarks/results/.

    pip install -e '.[bench]'
    python benchmarks/bench.py                 # the default cases: every comparator, targets, 224/384/512 sweep
    python benchmarks/bench.py --help
"""
import argparse
import sys
from pathlib import Path

from timm_t2t.bench.speed import run
from timm_t2t.cli.bench import configure_parser


def main() -> int:
    parser = argparse.ArgumentParser(prog='benchmarks/bench.py')
    configure_parser(parser)
    parser.set_defaults(out_dir=Path(__file__).resolve().parent / 'results')
    return run(parser.parse_args())


if __name__ == '__main__':
    sys.exit(main())
