"""The `timm-t2t demo` command's arguments and run sizes.

Deliberately free of torch and timm: building the parser (and `--help`) stays fast; the command line imports the
demo itself (`timm_t2t.cli.demo_run.run`) only when the command runs.
"""
import argparse
import dataclasses
from typing import Optional

from .errors import CliError
from .outputs import check_output_dir

__all__ = ['configure_parser', 'check_demo_input', 'DemoSettings', 'QUICK']


@dataclasses.dataclass
class DemoSettings:
    """Size of the run: images per class, epochs and the optimisation recipe."""
    train_per_class: int = 200
    val_per_class: int = 50
    epochs: int = 8
    img_size: int = 64
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    depth: Optional[int] = None  # None: the architecture's own (7 blocks)


# CI setting: 2 blocks instead of 7 learn the task in far fewer steps (about 80 % after 100 updates of 16 images).
QUICK = DemoSettings(train_per_class=80, val_per_class=20, epochs=4, batch_size=16, depth=2)


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t demo`."""
    p.description = (
        'Fine-tune t2t_vit_7 on a generated texture data set (5 classes) with timm\'s training utilities, save the '
        'checkpoint, load it back with timm.create_model(..., pretrained=True, pretrained_cfg_overlay=dict(file=...)) '
        'and predict validation images. Offline; about two minutes on 2 CPU cores (--quick: 2 blocks, 4 short '
        'epochs, for CI).')
    p.add_argument('--epochs', type=int, default=None, help=f'training epochs (default {DemoSettings.epochs}, '
                                                            f'--quick {QUICK.epochs})')
    p.add_argument('--out', metavar='DIR', help='keep the data set and checkpoint in DIR, a new or empty folder, '
                                                'filled when the demo finishes (default: a temporary folder, removed '
                                                'at the end)')
    p.add_argument('--quick', action='store_true', help='for CI: 2 blocks instead of 7, 400 training images, 4 epochs '
                                                        '(lower accuracy than the full run)')
    p.add_argument('--seed', type=int, default=0, help='seed of the data and the training (default 0)')
    p.set_defaults(check_input=check_demo_input)


def check_demo_input(args: argparse.Namespace) -> None:
    """The demo's arguments, before torch is imported: `--epochs` and the `--out` folder.

    Raises:
        CliError: `--epochs` below 1; `--out` a file, a non-empty folder, or a place that cannot be written.
    """
    if args.epochs is not None and args.epochs < 1:
        raise CliError('--epochs must be at least 1.')
    if args.out:
        check_output_dir(args.out)
