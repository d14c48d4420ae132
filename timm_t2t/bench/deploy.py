"""Deployment benchmark: the default path exported to ONNX and timed in ONNX Runtime and OpenVINO, beside timm ViTs.

Every model is exported once by `timm_t2t.export.export_model` (the export of `timm-t2t export`: `torch.onnx.export`,
dynamic batch; the TorchScript-based exporter at opset 17 by default, `--exporter dynamo` for the torch.export-based
one at opset 18) and run on the CPU in:

* ONNX Runtime (CPU execution provider, `--threads` intra-op threads);
* OpenVINO with an f32 inference-precision hint;
* OpenVINO with the device's default hint (bf16 on CPUs with bf16 units), reported as the precision the compiled
  model says it uses, with its largest logit difference from eager PyTorch.

Each runtime runs in a fresh process of its own, with default session settings, as a deployment would run it; there
the models alternate in interleaved rounds, so ratios of images/s within one runtime come from the same conditions. A
target is judged on the median of its per-round ratios. Run `timm-t2t bench-deploy --help`.
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

import timm

from ..export import TOLERANCE, export_model, open_runtime
from ..models import t2t_vit  # noqa: F401  (registers the t2t_vit_* models)
from .defaults import RUNTIMES
from .speed import _load_avg, format_quartiles, machine_info, rotate, round_ratios, run_child

EXACT_RUNTIMES = ('onnxruntime', 'openvino-f32')  # float32 runtimes: outputs must match eager within TOLERANCE
# (model, reference, runtime, minimum ratio of images/s): the floors of the plain model at batch 8; the default
# OpenVINO hint may run bf16, so it gets a looser one.
TARGETS = (
    ('t2t_vit_14', 'vit_small_patch16_224', 'onnxruntime', 0.90),
    ('t2t_vit_7', 'deit_tiny_patch16_224', 'onnxruntime', 0.92),
    ('t2t_vit_14', 'vit_small_patch16_224', 'openvino-f32', 0.90),
    ('t2t_vit_7', 'deit_tiny_patch16_224', 'openvino-f32', 0.92),
    ('t2t_vit_14', 'vit_small_patch16_224', 'openvino-default', 0.85),
    ('t2t_vit_7', 'deit_tiny_patch16_224', 'openvino-default', 0.85),
)

Session = Callable[[np.ndarray], np.ndarray]


def available_runtimes() -> Tuple[List[str], List[str]]:
    """(runtimes that can run here, notes on those that cannot)."""
    runtimes, notes = [], []
    for runtime, module in (('onnxruntime', 'onnxruntime'), ('openvino', 'openvino')):
        try:
            __import__(module)
        except ImportError:
            notes.append(f'{module} is not installed (pip install "timm-t2t[bench]"): its rows are missing.')
            continue
        runtimes += [r for r in RUNTIMES if r.startswith(runtime)]
    return runtimes, notes


def _time(session: Session, x: np.ndarray, iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        session(x)
    return (time.perf_counter() - t0) / iters


def _runtime_child() -> None:
    """Entry of one runtime's timing process: argv[1] is a JSON job, the result is the last stdout line.

    Opens every model's ONNX file in the runtime, checks it against the eager logits, then times `rounds` rounds in
    which the models run back to back, their order rotating from round to round.
    """
    job = json.loads(sys.argv[1])
    folder, names = Path(job['dir']), job['models']
    x = np.load(folder / 'input.npy')
    sessions, out = {}, {}
    for name in names:
        session, precision = open_runtime(job['runtime'], folder / f'{name}.onnx', job['threads'])
        diff = float(np.abs(session(x) - np.load(folder / f'{name}.eager.npy')).max())
        sessions[name] = session
        out[name] = dict(precision=precision, max_abs_diff=diff, seconds_per_batch=[])
    iters = {}
    for name, session in sessions.items():
        session(x)  # warm-up
        iters[name] = max(1, round(job['min_time'] / max(_time(session, x, 1), 1e-6)))
    for r in range(job['rounds']):
        for name in rotate(names, r):
            out[name]['seconds_per_batch'].append(_time(sessions[name], x, iters[name]))
    print(json.dumps(out))


def benchmark_deploy(
        models: Sequence[str],
        runtimes: Sequence[str],
        batch_size: int = 8,
        img_size: int = 224,
        threads: int = 2,
        rounds: int = 7,
        min_time: float = 0.25,
        exporter: str = 'torchscript',
        work_dir: Optional[Path] = None,
        log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Export, check and time every model in every runtime; returns the report (rows, targets, machine)."""
    load_start = _load_avg()
    torch.set_num_threads(threads)
    x = torch.randn(batch_size, 3, img_size, img_size, generator=torch.Generator().manual_seed(0))
    rows: Dict[Tuple[str, str], Dict[str, Any]] = {}
    times: Dict[Tuple[str, str], List[float]] = {}
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        np.save(Path(tmp) / 'input.npy', x.numpy())
        for name in models:
            torch.manual_seed(0)
            model = timm.create_model(name, img_size=img_size).eval()
            with torch.no_grad():
                np.save(Path(tmp) / f'{name}.eager.npy', model(x).numpy())
            log(f'export {name} ({exporter})')
            # Unchecked here: every runtime's child process compares the file's logits with the eager ones.
            export_model(model, Path(tmp) / f'{name}.onnx', 'onnx', exporter=exporter, verify=False)
        for runtime in runtimes:
            # Each runtime in a fresh process of its own, as a deployment runs it: idle thread pools of the other
            # runtimes (each session keeps one) cannot take cores from it on a small machine.
            log(f'time {runtime} (child process, {rounds} rounds)')
            job = dict(runtime=runtime, models=list(models), dir=tmp, threads=threads, rounds=rounds, min_time=min_time)
            result, error = run_child('timm_t2t.bench.deploy:_runtime_child', job)
            if result is None:
                raise RuntimeError(f'{runtime}: {error}')
            for name, r in result.items():
                rows[(name, runtime)] = dict(
                    model=name, runtime=runtime, precision=r['precision'], max_abs_diff=r['max_abs_diff'])
                times[(name, runtime)] = r['seconds_per_batch']

    for key, row in rows.items():
        row['img_per_s_median'] = batch_size / statistics.median(times[key])
        row['seconds_per_batch'] = times[key]
    targets = []
    for model, ref, runtime, threshold in TARGETS:
        a, b = (model, runtime), (ref, runtime)
        ratio = quartiles = None
        if a in times and b in times:
            low, ratio, high = round_ratios(times[a], times[b])
            quartiles = [low, high]
        result = 'not measured' if ratio is None else ('pass' if ratio >= threshold else 'FAIL')
        targets.append(dict(model=model, reference=ref, runtime=runtime, threshold=threshold, ratio=ratio,
                            ratio_quartiles=quartiles, result=result))
    for row in rows.values():
        if row['runtime'] in EXACT_RUNTIMES:
            row['exact'] = 'pass' if row['max_abs_diff'] <= TOLERANCE else 'FAIL'
    machine = machine_info(torch.device('cpu'), threads, amp=False)
    machine['load_avg'] = [load_start, _load_avg()]
    versions = {}
    for module in ('onnxruntime', 'openvino', 'onnx'):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    return dict(machine=machine, versions=versions, exporter=exporter, batch_size=batch_size, img_size=img_size,
                rounds=rounds, rows=list(rows.values()), targets=targets)


def render_markdown(report: Dict[str, Any], notes: Sequence[str] = ()) -> str:
    """The report as markdown: settings, one row per model and runtime, the targets."""
    m, v = report['machine'], report['versions']
    lines = [
        f"Measured {m['date']} on {m['device']} ({m['cpu_count']} CPUs, {m['threads']} threads), batch "
        f"{report['batch_size']}, {report['img_size']} px; torch {m['torch']}, timm {m['timm']}, onnxruntime "
        f"{v['onnxruntime']}, openvino {v['openvino']}; `torch.onnx.export` ({report['exporter']} exporter); "
        f"{report['rounds']} interleaved rounds; 1-min load average {m['load_avg'][0]} at start, "
        f"{m['load_avg'][1]} at end.",
        '',
        f"Command: `{m['command']}`",
        '',
        '| model | runtime | precision | img/s (median) | max abs diff vs eager |',
        '|---|---|---|---|---|',
    ]
    for r in report['rows']:
        exact = f" ({r['exact']} at <= {TOLERANCE:g})" if 'exact' in r else ''
        lines.append(f"| {r['model']} | {r['runtime']} | {r['precision']} | {r['img_per_s_median']:.1f} "
                     f"| {r['max_abs_diff']:.2e}{exact} |")
    lines += ['', '| target (same runtime, median of per-round ratios) | ratio | their quartiles | required | result |',
              '|---|---|---|---|---|']
    for t in report['targets']:
        ratio = '—' if t['ratio'] is None else f"{t['ratio']:.2f}x"
        lines.append(f"| {t['model']} / {t['reference']} images/s, {t['runtime']} | {ratio} "
                     f"| {format_quartiles(t['ratio_quartiles'])} | >= {t['threshold']:.2f}x | {t['result']} |")
    return '\n'.join(lines + [''] + list(notes)) + '\n'


def run(args: argparse.Namespace) -> int:
    """Run the deployment benchmark; print the markdown, write .md/.json. Returns 0, or 2 on bad arguments."""
    models = [m for m in args.models.split(',') if m]
    wanted = [r for r in args.runtimes.split(',') if r]
    bad = [m for m in models if not timm.is_model(m)] + [r for r in wanted if r not in RUNTIMES]
    if bad or not models or args.rounds < 1 or args.threads < 1 or args.batch_size < 1:
        print(f'Bad arguments {bad}: --models takes timm model names, --runtimes {",".join(RUNTIMES)}; --rounds, '
              f'--threads and --batch-size must be >= 1.', file=sys.stderr)
        return 2
    usable, notes = available_runtimes()
    runtimes = [r for r in wanted if r in usable]
    if not runtimes:
        print('No runtime to run: ' + ' '.join(notes), file=sys.stderr)
        return 2
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731  progress on stderr, results on stdout
    report = benchmark_deploy(
        models, runtimes, batch_size=args.batch_size, img_size=args.img_size, threads=args.threads,
        rounds=args.rounds, min_time=args.min_time, exporter=args.exporter, log=log)
    report['notes'] = notes
    args.out_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report, notes)
    (args.out_dir / f'{args.tag}.md').write_text(markdown)
    (args.out_dir / f'{args.tag}.json').write_text(json.dumps(report, indent=1) + '\n')
    print(markdown)
    log(f'wrote {args.out_dir / args.tag}.md and .json')
    return 0
