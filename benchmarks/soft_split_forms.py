#!/usr/bin/env python3
"""Which soft-split form the model uses, and why: four forms of the first two T2T-ViT soft splits, timed alone.

Each form cuts the patches of the image (3 channels, 7/4/2) or of a 64-channel token map (3/2/1) at batch 8, followed
by the LayerNorm that reads them in the model, in eager forward (no grad), eager forward + backward, ONNX Runtime and
OpenVINO (f32). Every timing is interleaved over rounds; the table gives the median of per-round time ratios to the
form the model uses (`timm_t2t.models.t2t_vit.soft_split`). Results: benchmarks/README.md, "Soft-split form".

    pip install -e '.[bench]'
    python benchmarks/soft_split_forms.py [--rounds 7] [--threads 2]
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from timm_t2t.models.t2t_vit import soft_split, soft_split_size

SETTINGS = ('eager forward', 'eager forward + backward', 'ONNX Runtime', 'OpenVINO f32')


def strided_views(x: torch.Tensor, k: int, s: int, p: int) -> torch.Tensor:
    """Copies of strided views of the padded map, kernel-major (not exportable with a dynamic batch)."""
    x = F.pad(x, (0, 0, p, p, p, p)).unfold(1, k, s).unfold(2, k, s)
    return x.permute(0, 1, 2, 4, 5, 3).flatten(3).flatten(1, 2)


def row_gather(x: torch.Tensor, k: int, s: int, p: int) -> torch.Tensor:
    """A gather of whole padded rows, then stride-wide column blocks (needs s <= k <= 2 s), kernel-major."""
    H, W, C = x.shape[1], x.shape[2], x.shape[3]
    H_out, W_out = soft_split_size(H, k, s, p), soft_split_size(W, k, s, p)
    rows = ((torch.arange(H_out) * s).unsqueeze(1) + torch.arange(k)).flatten()
    x = F.pad(x, (0, 0, p, (W_out + 1) * s - W - p, p, p)).reshape(-1, H + 2 * p, (W_out + 1) * s * C)
    x = x.index_select(1, rows).reshape(-1, H_out, k, W_out + 1, s * C).transpose(2, 3)
    patches = torch.cat([x[:, :, :W_out], x[:, :, 1:, :, :(k - s) * C]], dim=4)
    return patches.reshape(-1, H_out * W_out, k * k * C)


def unfold(x: torch.Tensor, k: int, s: int, p: int) -> torch.Tensor:
    """`nn.Unfold` as the official model uses it (channel-major columns)."""
    return F.unfold(x.permute(0, 3, 1, 2), k, padding=p, stride=s).transpose(1, 2)


FORMS: Dict[str, Callable[[torch.Tensor, int, int, int], torch.Tensor]] = {
    'nn.Unfold': unfold, 'strided views': strided_views, 'gather of C-channel runs (used)': soft_split,
    'gather of rows, then column blocks': row_gather}
USED = 'gather of C-channel runs (used)'


class SplitThenNorm(nn.Module):
    """A soft split of a channels-last map and the LayerNorm that reads its patches."""

    def __init__(self, form: str, k: int, s: int, p: int, channels: int) -> None:
        super().__init__()
        self.split, self.ksp = FORMS[form], (k, s, p)
        self.norm = nn.LayerNorm(k * k * channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.split(x, *self.ksp))


def _timed(fn: Callable[[], object], min_time: float) -> float:
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        if time.perf_counter() - start >= min_time:
            return (time.perf_counter() - start) / n


def _steps(model: nn.Module, x: torch.Tensor, form: str, folder: Path, threads: int) -> Dict[str, Callable[[], object]]:
    """The timed step of each setting this form runs in."""
    import onnxruntime as ort
    import openvino as ov

    xg = x.clone().requires_grad_(x.shape[-1] > 3)  # the image needs no gradient, a token map does

    def forward() -> None:
        with torch.no_grad():
            model.eval()(x)

    def forward_backward() -> None:
        model.train()(xg).sum().backward()

    steps = {'eager forward': forward, 'eager forward + backward': forward_backward}
    if form == 'strided views':
        return steps
    path = folder / 'split.onnx'
    torch.onnx.export(model.eval(), (x,), str(path), dynamo=False, opset_version=17, input_names=['x'],
                      dynamic_axes={'x': {0: 'batch'}})
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    request = ov.Core().compile_model(
        str(path), 'CPU', {'INFERENCE_NUM_THREADS': threads, 'INFERENCE_PRECISION_HINT': 'f32'}).create_infer_request()
    xn = x.numpy()
    steps['ONNX Runtime'] = lambda: session.run(None, {'x': xn})
    steps['OpenVINO f32'] = lambda: request.infer({0: xn})
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--min-time', type=float, default=0.3, help='seconds per step per round')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases: List[Tuple[str, Tuple[int, int, int], Tuple[int, ...]]] = [
        ('image, 3 ch, 7/4/2', (7, 4, 2), (8, 224, 224, 3)),
        ('token map, 64 ch, 3/2/1', (3, 2, 1), (8, 56, 56, 64))]
    print('| split | form | ' + ' | '.join(SETTINGS) + ' |')
    print('|---|---|' + '---:|' * len(SETTINGS))
    for label, ksp, shape in cases:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        with tempfile.TemporaryDirectory() as tmp:
            steps = {}
            for i, form in enumerate(FORMS):
                (folder := Path(tmp) / str(i)).mkdir()
                model = SplitThenNorm(form, *ksp, shape[-1])
                for setting, step in _steps(model, x, form, folder, args.threads).items():
                    steps[form, setting] = step
            for step in steps.values():  # warm-up
                step()
                step()
            times: Dict[Tuple[str, str], List[float]] = {key: [] for key in steps}
            keys = list(steps)
            for r in range(args.rounds):  # every round runs every case, the order rotated
                for key in keys[r % len(keys):] + keys[:r % len(keys)]:
                    times[key].append(_timed(steps[key], args.min_time))
        for i, form in enumerate(FORMS):
            cells = []
            for setting in SETTINGS:
                if (form, setting) not in times:
                    cells.append('cannot export')
                    continue
                ratios = [a / b for a, b in zip(times[form, setting], times[USED, setting])]
                cells.append(f'{statistics.median(ratios):.2f}')
            print(f"| {label if i == 0 else ''} | {form} | " + ' | '.join(cells) + ' |')
        used_ms = [statistics.median(times[USED, setting]) * 1e3 for setting in SETTINGS]
        print(f'({label}: the form used took ' + ' / '.join(f'{t:.1f}' for t in used_ms) + ' ms)')


if __name__ == '__main__':
    main()
