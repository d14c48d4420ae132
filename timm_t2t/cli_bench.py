"""The `timm-t2t bench` command's arguments (also `benchmarks/bench.py`), and the model lists they default to.

Deliberately free of torch and timm: building the parser (and `--help`) stays fast; the command line imports the
benchmark itself (`timm_t2t.bench.run`) only when the command runs.
"""
import argparse
from pathlib import Path
from typing import Any, Callable, List

__all__ = ['configure_parser', 'COMPARATORS_224', 'VIT_MODELS', 'VIT_PYTORCH_T2T_14']

# vit-pytorch's T2TViT (lucidrains) built like T2T-ViT-14: width 384, 14 blocks, 6 heads of 64, MLP 1152; its
# T2T layers keep the full unfolded width (no token_dim reduction). 34.60M params, 17.10 GMACs at 224.
VIT_PYTORCH_T2T_14 = 'vit_pytorch_t2t_14'
VIT_MODELS = ('vit_small_patch16_224', 'deit_tiny_patch16_224')
COMPARATORS_224 = (
    't2t_vit_14', 't2t_vit_14:plain', 't2t_vit_t_14', 't2t_vit_t_14:plain', 't2t_vit_7',
    *VIT_MODELS, VIT_PYTORCH_T2T_14,
)


def _csv(cast: Callable[[str], Any]) -> Callable[[str], List[Any]]:
    def parse(text: str) -> List[Any]:
        try:
            return [cast(v) for v in text.split(',') if v.strip()]
        except ValueError as e:
            raise argparse.ArgumentTypeError(f'expected a comma-separated list, got {text!r}') from e
    return parse


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Add the benchmark's options to `p` (used by `timm-t2t bench` and `benchmarks/bench.py`)."""
    p.description = (
        'Benchmark T2T-ViT against timm ViTs and vit-pytorch: images/s (inference and training step), peak memory and '
        'GMACs, interleaved rounds in one process, same-run ratios and the issue-5 targets. With no --models, '
        '--img-sizes, --batch-sizes or --modes the default case list runs: every comparator at 224 (inference and '
        'training), training at 2x batch, and a 224/384/512 inference sweep for the plot.')
    p.add_argument('--models', type=_csv(str), default=None,
                   help='comma-separated model specs NAME[:plain][:compile]; NAME a timm model (this package '
                        f'registers t2t_vit_*) or {VIT_PYTORCH_T2T_14}; :plain = official arithmetic '
                        '(set_fused_attn(False)). Default: %s' % ','.join(COMPARATORS_224))
    p.add_argument('--img-sizes', type=_csv(int), default=None, help='comma-separated input sizes (default 224)')
    p.add_argument('--batch-sizes', type=_csv(int), default=None,
                   help='comma-separated batch sizes (default 8 on CPU, 256 on GPU)')
    p.add_argument('--modes', type=_csv(str), default=None, help='infer,train (default both)')
    p.add_argument('--device', default=None, help='cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)')
    p.add_argument('--amp', action=argparse.BooleanOptionalAction, default=None,
                   help='bf16 autocast (default: on for GPU, off on CPU)')
    p.add_argument('--threads', type=int, default=2, help='CPU threads (torch.set_num_threads), default 2')
    p.add_argument('--rounds', type=int, default=7, help='interleaved timing rounds (default 7)')
    p.add_argument('--min-time', type=float, default=0.25,
                   help='seconds of steps per case per round, at least one step (default 0.25)')
    p.add_argument('--compile', action='store_true', help='add torch.compile rows for the default-path models')
    p.add_argument('--no-memory', dest='memory', action='store_false', help='skip the peak-memory measurements')
    p.add_argument('--out', '--out-dir', dest='out_dir', type=Path, default=Path('benchmarks/results'), metavar='DIR',
                   help='where the results go (default benchmarks/results)')
    p.add_argument('--tag', default=None, help='file name stem of the results (default bench-<device type>)')
