"""The `timm-t2t bench` and `bench-deploy` commands' arguments (also `benchmarks/bench.py`).

Deliberately free of torch and timm: building the parser (and `--help`) stays fast; the command line imports the
benchmarks themselves (`timm_t2t.bench.speed.run`, `timm_t2t.bench.deploy.run`) only when a command runs.
"""
import argparse
from pathlib import Path
from typing import Any, Callable, List

from ..bench.defaults import COMPARATORS_224, DEPLOY_MODELS, RUNTIMES, VIT_PYTORCH_T2T_14

__all__ = ['configure_parser', 'configure_deploy_parser']


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
        'Benchmark T2T-ViT against timm ViTs and vit-pytorch: images/s (inference and training step), peak memory, '
        'activations saved for backward and GMACs, interleaved rounds in one process, same-run ratios and the '
        'targets. With no --models, --img-sizes, --batch-sizes or --modes the default case list runs: every '
        'comparator at 224 (inference and training), inference at batch 1, 8 and 32, training at 2x batch (also with '
        'grad checkpointing), and a 224/384/512 inference sweep for the plot. `timm-t2t bench-deploy` times the '
        'exported models in ONNX Runtime and OpenVINO.')
    p.add_argument('--models', type=_csv(str), default=None,
                   help='comma-separated model specs NAME[:plain][:compile][:gc]; NAME a timm model (this package '
                        f'registers t2t_vit_*) or {VIT_PYTORCH_T2T_14}; :plain = official arithmetic '
                        '(set_fused_attn(False)); :gc = grad checkpointing. Default: %s' % ','.join(COMPARATORS_224))
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


def configure_deploy_parser(p: argparse.ArgumentParser) -> None:
    """Add the deployment benchmark's options to `p` (used by `timm-t2t bench-deploy`)."""
    p.description = (
        'Export T2T-ViT (default path) and timm ViTs to ONNX and time them in ONNX Runtime and OpenVINO (f32 hint and '
        'the default hint), interleaved rounds, same-runtime ratios, outputs checked against eager PyTorch.')
    p.add_argument('--models', default=','.join(DEPLOY_MODELS),
                   help='comma-separated timm model names (default: %(default)s)')
    p.add_argument('--runtimes', default=','.join(RUNTIMES), help='comma-separated, from: %(default)s')
    p.add_argument('--batch-size', type=int, default=8, help='default 8')
    p.add_argument('--img-size', type=int, default=224, help='default 224')
    p.add_argument('--threads', type=int, default=2, help='threads of every runtime (default 2)')
    p.add_argument('--rounds', type=int, default=7, help='interleaved timing rounds (default 7)')
    p.add_argument('--min-time', type=float, default=0.25, help='seconds per pair per round (default 0.25)')
    p.add_argument('--exporter', choices=('torchscript', 'dynamo'), default='torchscript',
                   help="torch.onnx.export route (default torchscript, as timm's onnx_export.py)")
    p.add_argument('--out', '--out-dir', dest='out_dir', type=Path, default=Path('benchmarks/results'), metavar='DIR',
                   help='where the results go (default benchmarks/results)')
    p.add_argument('--tag', default='bench-deploy', help='file name stem of the results (default bench-deploy)')
