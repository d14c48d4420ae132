"""Speed and memory benchmark: T2T-ViT next to plain ViTs, measured side by side in one process.

Shared machines are noisy, so every case (model x input size x batch size x inference/training) is timed once per
round and the rounds interleave all cases. Two same-run ratios compare a model with a reference: the median over
rounds of their ratio within a round (both ran under the same conditions; targets use this, shown with the quartiles
of the round ratios) and the ratio of their best rounds (noise only ever adds time, so the best round is the least
disturbed one). Memory is measured apart from the timing:

* CPU: one fresh child process per model and input size, with glibc told to `mmap` every block of 1 MiB or more
  (`MALLOC_MMAP_THRESHOLD_`), so freed tensors go back to the OS and the resident set follows the live tensors. After
  two warm-up steps the child reads its resident set, resets the kernel's high-water mark (`/proc/self/clear_refs`),
  runs one step and reports `VmHWM - VmRSS`: everything the step allocated (activations, gradients, temporaries), not
  the weights, optimizer state or input batch it started with. PyTorch keeps no CPU allocator statistics to read.
* CUDA: in process, `torch.cuda.max_memory_allocated()` over one step minus `torch.cuda.memory_allocated()` before it,
  the same quantity.

Activations saved for backward are counted in process, for every training case: the bytes of the distinct storages
autograd keeps in one training forward (`torch.autograd.graph.saved_tensors_hooks`; parameters, buffers and the input
excluded). Unlike the resident-set peak this is allocator-independent and repeatable.

GMACs are counted once per model and input size with `torch.utils.flop_counter` on the `meta` device (no compute,
batch 1, forward): on `meta` fused attention decomposes into its matmuls, so attention (SDPA included) is counted.

Run `timm-t2t bench --help` or `python benchmarks/bench.py --help`. Writes `<tag>.md`, `<tag>.json` and `<tag>.png`.
"""
import argparse
import ctypes
import datetime
import gc
import itertools
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

import timm

from ..models import t2t_vit  # noqa: F401  (registers the t2t_vit_* models)
from ..weights.convert import count_gmacs
from .defaults import COMPARATORS_224, VIT_MODELS, VIT_PYTORCH_T2T_14

# Model lists are in the torch-free `defaults`, the parser in `timm_t2t.cli.bench` (fast `--help`); vit-pytorch's
# T2TViT is built as below.
VIT_PYTORCH_T2T_14_ARGS = dict(num_classes=1000, dim=384, depth=14, heads=6, dim_head=64, mlp_dim=1152)

T2T_MODELS = ('t2t_vit_14', 't2t_vit_t_14', 't2t_vit_7')
REFERENCES = ('vit_small_patch16_224', 'deit_tiny_patch16_224')
MODES = ('infer', 'train')
PATH_SUFFIXES = ('plain', 'compile', 'gc')
BATCH_ROWS_CPU = (1, 8, 32)  # inference batch sizes of the default CPU cases


@dataclass(frozen=True)
class Case:
    """One measured configuration."""
    model: str  # model spec: a timm name or VIT_PYTORCH_T2T_14, with optional ':plain' / ':compile' / ':gc' suffixes
    img_size: int
    batch_size: int
    mode: str  # 'infer' or 'train'

    @property
    def label(self) -> str:
        return f'{self.model} {self.img_size}px b{self.batch_size} {self.mode}'


@dataclass(frozen=True)
class Target:
    """A same-run ratio that must stay at or above (`>=`) or at or below (`<=`) a threshold."""
    metric: str  # 'throughput' (images/s), 'memory' (peak MB) or 'saved' (activations saved for backward, MB)
    model: str
    reference: str
    img_size: int
    batch_size: int
    mode: str
    op: str
    threshold: float
    device_type: str  # the device kind the target is set for

    @property
    def label(self) -> str:
        what = {'throughput': 'images/s', 'memory': 'peak memory', 'saved': 'saved activations'}[self.metric]
        return f'{self.model} / {self.reference} {self.mode} {what}, {self.img_size}px b{self.batch_size}'


# The floors a plain model (one computation in every mode) holds. CPU ones are for fp32 with 2 threads; the GPU one
# for bf16 AMP. Throughput targets are judged on the median of per-round ratios.
TARGETS = (
    Target('throughput', 't2t_vit_14', 'vit_small_patch16_224', 224, 8, 'infer', '>=', 0.86, 'cpu'),
    Target('throughput', 't2t_vit_14', 'vit_small_patch16_224', 224, 32, 'infer', '>=', 0.88, 'cpu'),
    Target('throughput', 't2t_vit_7', 'deit_tiny_patch16_224', 224, 8, 'infer', '>=', 0.88, 'cpu'),
    Target('throughput', 't2t_vit_7', 'deit_tiny_patch16_224', 224, 32, 'infer', '>=', 0.70, 'cpu'),
    Target('throughput', 't2t_vit_t_14', 'vit_small_patch16_224', 224, 8, 'infer', '>=', 0.65, 'cpu'),
    Target('throughput', 't2t_vit_14', 'vit_small_patch16_224', 224, 8, 'train', '>=', 0.82, 'cpu'),
    Target('saved', 't2t_vit_14', 'vit_small_patch16_224', 224, 16, 'train', '<=', 1.40, 'cpu'),
    Target('saved', 't2t_vit_14:gc', 'vit_small_patch16_224:gc', 224, 16, 'train', '<=', 1.50, 'cpu'),
    Target('throughput', 't2t_vit_14', 'vit_small_patch16_224', 224, 256, 'infer', '>=', 0.90, 'cuda'),
)


class Spec(NamedTuple):
    """A parsed model spec."""
    name: str
    plain: bool  # every fused attention off
    compiled: bool  # torch.compile
    checkpointing: bool  # set_grad_checkpointing()


def parse_spec(spec: str) -> Spec:
    """Split a model spec `name[:plain][:compile][:gc]`."""
    name, *suffixes = spec.split(':')
    unknown = [s for s in suffixes if s not in PATH_SUFFIXES]
    if unknown or not name:
        raise ValueError(f'Bad model spec {spec!r}: expected NAME[:plain][:compile][:gc], e.g. t2t_vit_14:plain.')
    return Spec(name, 'plain' in suffixes, 'compile' in suffixes, 'gc' in suffixes)


def default_cases(device_type: str) -> List[Case]:
    """The default cases: every comparator at 224 (inference and training), inference of the T2T and ViT
    models at batch 1 and 32 too (CPU), training at twice the batch for the memory targets (with and without grad
    checkpointing), and a resolution sweep (224, 384, 512, inference) for the plot.
    Batch sizes are 8 and 16 on CPU, 256 and 512 on an accelerator."""
    b = 8 if device_type == 'cpu' else 256
    cases = [Case(m, 224, b, mode) for mode in MODES for m in COMPARATORS_224]
    if device_type == 'cpu':
        cases += [Case(m, 224, bs, 'infer') for bs in BATCH_ROWS_CPU if bs != b for m in T2T_MODELS + VIT_MODELS]
    memory_models = ('t2t_vit_14', 't2t_vit_t_14', 'vit_small_patch16_224')
    cases += [Case(m + gc, 224, 2 * b, 'train') for gc in ('', ':gc') for m in memory_models]
    cases += [Case(m, size, b, 'infer') for size in (384, 512) for m in T2T_MODELS + VIT_MODELS]
    return cases


def grid_cases(
        models: Sequence[str],
        img_sizes: Sequence[int],
        batch_sizes: Sequence[int],
        modes: Sequence[str],
) -> List[Case]:
    """Every combination of the given models, input sizes, batch sizes and modes."""
    return [Case(m, s, b, mode) for s in img_sizes for b in batch_sizes for mode in modes for m in models]


def add_compiled(cases: Sequence[Case]) -> List[Case]:
    """Add a `torch.compile` twin of every case of this package's and timm's models on their default path."""
    extra = []
    for c in cases:
        spec = parse_spec(c.model)
        if not spec.plain and not spec.compiled and spec.name != VIT_PYTORCH_T2T_14:
            extra.append(Case(f'{c.model}:compile', c.img_size, c.batch_size, c.mode))
    return list(cases) + [c for c in extra if c not in cases]


def create_bench_model(spec: str, img_size: int, device: torch.device) -> nn.Module:
    """Build the model a spec names (random weights), on `device`.

    `:plain` switches every fused attention off (the official explicit arithmetic); `:gc` turns grad checkpointing on
    (`set_grad_checkpointing()`, timm's `--grad-checkpointing`); `:compile` wraps the model in `torch.compile`.
    """
    name, plain, compiled, checkpointing = parse_spec(spec)
    if name == VIT_PYTORCH_T2T_14:
        try:
            from vit_pytorch.t2t import T2TViT as VitPytorchT2TViT
        except ImportError as e:
            raise RuntimeError(
                f'{VIT_PYTORCH_T2T_14} needs the vit-pytorch package: pip install "timm-t2t[bench]"') from e
        with torch.device(device):
            model = VitPytorchT2TViT(image_size=img_size, **VIT_PYTORCH_T2T_14_ARGS)
    else:
        model = timm.create_model(name, img_size=img_size, device=device)
    if plain:
        for module in model.modules():
            if hasattr(module, 'fused_attn'):
                module.fused_attn = False
    if checkpointing:
        model.set_grad_checkpointing(True)
    if compiled:
        model = torch.compile(model)
    return model


def spec_gmacs(spec: str, img_size: int) -> float:
    """GMACs of one image for a model spec; the path and compilation change no arithmetic count."""
    name = parse_spec(spec).name
    return count_gmacs(create_bench_model(name, img_size, torch.device('meta')), (3, img_size, img_size))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def saved_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward in one forward of `model` on `x`: the distinct storages of the saved tensors,
    parameters, buffers and `x` excluded. Allocator-independent, unlike a resident-set or allocator peak.

    Grad checkpointing's recomputed activations do not count (its own hooks take them); what it keeps does.
    """
    excluded = {t.untyped_storage().data_ptr() for t in itertools.chain(model.parameters(), model.buffers(), [x])}
    storages: Dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in excluded:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    # Every saved tensor stays alive until the forward ends (the output's graph holds it), so no address is reused.
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(storages.values())


class Runner:
    """Builds and holds the models and inputs of the cases, and makes one step of each case callable."""

    def __init__(self, device: torch.device, amp: bool, seed: int = 0) -> None:
        self.device = device
        self.amp = amp
        self.seed = seed
        self.models: Dict[Tuple[str, int], nn.Module] = {}
        self.optimizers: Dict[Tuple[str, int], torch.optim.Optimizer] = {}
        self.inputs: Dict[Tuple[int, int], Tuple[torch.Tensor, torch.Tensor]] = {}

    def model(self, case: Case) -> nn.Module:
        key = (case.model, case.img_size)
        if key not in self.models:
            torch.manual_seed(self.seed)
            self.models[key] = create_bench_model(case.model, case.img_size, self.device)
        return self.models[key]

    def batch(self, case: Case) -> Tuple[torch.Tensor, torch.Tensor]:
        """The case's input images and labels (the same ones for every model)."""
        key = (case.batch_size, case.img_size)
        if key not in self.inputs:
            g = torch.Generator().manual_seed(self.seed)
            x = torch.randn(case.batch_size, 3, case.img_size, case.img_size, generator=g).to(self.device)
            y = torch.randint(0, 1000, (case.batch_size,), generator=g).to(self.device)
            self.inputs[key] = (x, y)
        return self.inputs[key]

    def saved_mb(self, case: Case) -> float:
        """MB of activations one training forward of the case keeps for backward (`saved_activation_bytes`)."""
        model = self.model(case).train()
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return saved_activation_bytes(model, self.batch(case)[0]) / 2 ** 20

    def step_fn(self, case: Case) -> Callable[[], None]:
        """A closure running one inference forward or one training step (forward, backward, AdamW step)."""
        model = self.model(case)
        x, y = self.batch(case)
        autocast = dict(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp)

        if case.mode == 'infer':
            def step() -> None:
                model.eval()
                with torch.inference_mode(), torch.autocast(**autocast):
                    model(x)
            return step

        okey = (case.model, case.img_size)
        if okey not in self.optimizers:
            self.optimizers[okey] = torch.optim.AdamW(model.parameters(), lr=1e-6)
        optimizer = self.optimizers[okey]

        def step() -> None:
            model.train()
            with torch.autocast(**autocast):
                loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return step

    def release(self) -> None:
        self.models.clear()
        self.optimizers.clear()
        self.inputs.clear()
        gc.collect()


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _time_steps(step: Callable[[], None], iters: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def rotate(items: Sequence[Any], r: int) -> List[Any]:
    """`items` rotated left by r (mod its length): round r's order, so no item always follows the same one."""
    k = r % len(items)
    return list(items[k:]) + list(items[:k])


def run_child(entry: str, job: Dict[str, Any], env: Optional[Dict[str, str]] = None) -> Tuple[Any, str]:
    """Run `entry` ('module:function', which reads the JSON job from argv[1] and prints its JSON result as the last
    stdout line) in a fresh Python process. Returns (result, '') or (None, why it failed)."""
    module, function = entry.split(':')
    proc = subprocess.run(
        [sys.executable, '-c', f'from {module} import {function}; {function}()', json.dumps(job)],
        env=env, capture_output=True, text=True)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1]), ''
    except (IndexError, json.JSONDecodeError):
        tail = (proc.stderr.strip().splitlines() or ['no output'])[-1]
        return None, f'child failed (exit {proc.returncode}): {tail}'


def time_cases(
        cases: Sequence[Case],
        runner: Runner,
        rounds: int,
        min_time: float,
        warmup: int = 2,
        log: Callable[[str], None] = print,
) -> Dict[Case, List[float]]:
    """Seconds per step of every case in every round, the rounds interleaving all cases.

    Each case is warmed up (`warmup` steps, compilation included) and gets as many steps per measurement as make
    `min_time` seconds. The order of the cases rotates from round to round so no case always follows the same one.
    """
    steps, iters = {}, {}
    for case in cases:
        log(f'warm-up {case.label}')
        steps[case] = runner.step_fn(case)
        for _ in range(max(warmup - 1, 0)):
            steps[case]()
        t = _time_steps(steps[case], 1, runner.device)
        iters[case] = max(1, math.ceil(min_time / max(t, 1e-6)))
    times: Dict[Case, List[float]] = {c: [] for c in cases}
    for r in range(rounds):
        for case in rotate(cases, r):
            times[case].append(_time_steps(steps[case], iters[case], runner.device))
        log(f'round {r + 1}/{rounds} done')
    return times


def _read_status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        match = re.search(rf'^{field}:\s+(\d+) kB', f.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f'/proc/self/status has no {field}: CPU memory needs Linux')
    return int(match.group(1))


def _trim_heap() -> None:
    gc.collect()
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the mmap threshold alone keeps large blocks out of the heap


def _measure_step_memory(step: Callable[[], None], device: torch.device, warmup: int = 2) -> float:
    """MB allocated by one step above what was allocated before it (see the module docstring)."""
    for _ in range(warmup):
        step()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
    _trim_heap()
    base = _read_status_kib('VmRSS')
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset VmHWM to the current resident set
    step()
    return (_read_status_kib('VmHWM') - base) / 1024


def _memory_child() -> None:
    """Entry of the CPU memory child: argv[1] is a JSON job, the result is the last stdout line."""
    job = json.loads(sys.argv[1])
    torch.set_num_threads(job['threads'])
    runner = Runner(torch.device('cpu'), job['amp'], job['seed'])
    out = {}
    for c in job['cases']:
        case = Case(**c)
        try:
            out[case.label] = _measure_step_memory(runner.step_fn(case), runner.device)
        except Exception as e:  # one failing case (e.g. out of memory) must not lose the others
            out[case.label] = f'{type(e).__name__}: {e}'
    print(json.dumps(out))


def measure_memory(
        cases: Sequence[Case],
        runner: Runner,
        threads: int,
        log: Callable[[str], None] = print,
) -> Dict[Case, Any]:
    """Peak MB of one step per case (a float), or an error message (a str)."""
    out: Dict[Case, Any] = {}
    if runner.device.type != 'cpu':
        for case in cases:
            log(f'memory {case.label}')
            try:
                out[case] = _measure_step_memory(runner.step_fn(case), runner.device)
            except torch.OutOfMemoryError as e:
                out[case] = f'OutOfMemoryError: {str(e).splitlines()[0]}'
            finally:
                runner.release()
                torch.cuda.empty_cache()
        return out

    groups: Dict[Tuple[str, int], List[Case]] = {}
    for case in cases:
        groups.setdefault((case.model, case.img_size), []).append(case)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(2 ** 20), MALLOC_TRIM_THRESHOLD_='0')
    for (model, size), group in groups.items():
        log(f'memory {model} {size}px ({len(group)} case(s), child process)')
        job = dict(threads=threads, amp=runner.amp, seed=runner.seed, cases=[asdict(c) for c in group])
        result, error = run_child('timm_t2t.bench.speed:_memory_child', job, env)
        if result is None:
            result = {c.label: error for c in group}
        for case in group:
            out[case] = result[case.label]
    return out


def _best_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """a's images/s over b's, from their best (fastest) rounds; a and b are seconds per step per round."""
    return min(b) / min(a)


def round_ratios(a: Sequence[float], b: Sequence[float]) -> Tuple[float, float, float]:
    """a's images/s over b's within each round (b_time / a_time; a and b are seconds per step per round): the lower
    quartile, median and upper quartile over rounds. The quartiles show how far the noise moves a judged median."""
    ratios = [tb / ta for ta, tb in zip(a, b)]
    if len(ratios) < 2:
        return ratios[0], ratios[0], ratios[0]
    low, median, high = statistics.quantiles(ratios, n=4, method='inclusive')
    return low, median, high


def _median_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median over rounds of b_time / a_time, i.e. of a's images/s over b's in the same round."""
    return round_ratios(a, b)[1]


def _find(rows: Sequence[Dict[str, Any]], model: str, size: int, batch: int, mode: str) -> Optional[Dict[str, Any]]:
    for row in rows:
        if (row['model'], row['img_size'], row['batch_size'], row['mode']) == (model, size, batch, mode):
            return row
    return None


def evaluate_targets(
        rows: Sequence[Dict[str, Any]],
        times: Dict[Case, List[float]],
        device_type: str,
) -> List[Dict[str, Any]]:
    """The targets of the device kind, with the measured ratio and pass / fail / 'not measured'.

    Throughput targets are judged on the median of per-round ratios; the ratio of best rounds is reported beside it.
    Memory targets compare the resident-set peaks (`memory`) or the activations saved for backward (`saved`).
    """
    out = []
    for t in TARGETS:
        if t.device_type != device_type:
            continue
        a = Case(t.model, t.img_size, t.batch_size, t.mode)
        b = Case(t.reference, t.img_size, t.batch_size, t.mode)
        value = median = quartiles = None
        if t.metric == 'throughput' and a in times and b in times:
            low, median, high = round_ratios(times[a], times[b])
            value, quartiles = _best_ratio(times[a], times[b]), [low, high]
        elif t.metric in ('memory', 'saved'):
            key = 'peak_mb' if t.metric == 'memory' else 'saved_mb'
            ra, rb = _find(rows, *asdict(a).values()), _find(rows, *asdict(b).values())
            if ra and rb and isinstance(ra.get(key), float) and isinstance(rb.get(key), float):
                value = ra[key] / rb[key]
        judged = median if t.metric == 'throughput' else value
        if judged is None:
            result = 'not measured'
        else:
            result = 'pass' if (judged >= t.threshold if t.op == '>=' else judged <= t.threshold) else 'FAIL'
        out.append(dict(asdict(t), label=t.label, ratio=value, ratio_median=median, ratio_quartiles=quartiles,
                        result=result))
    return out


def machine_info(device: torch.device, threads: int, amp: bool) -> Dict[str, Any]:
    """Machine, versions, settings and date of a run."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            match = re.search(r'^model name\s*:\s*(.+)$', f.read(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass

    def version(dist: str) -> Optional[str]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    # Settings that change CPU timings (allocator, thread pools) belong to the command that reproduces a run.
    env = [f'{k}={shlex.quote(v)}' for k, v in sorted(os.environ.items())
           if k == 'LD_PRELOAD' or k.startswith(('MALLOC_', 'OMP_', 'MKL_', 'KMP_'))]
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        command=' '.join(env + [Path(sys.argv[0]).name] + [shlex.quote(a) for a in sys.argv[1:]]),
        device=torch.cuda.get_device_name(device) if device.type == 'cuda' else f'CPU: {cpu}',
        cpu=cpu,
        cpu_count=os.cpu_count(),
        threads=threads if device.type == 'cpu' else None,
        precision='bf16 autocast' if amp else 'fp32',
        python=platform.python_version(),
        torch=torch.__version__,
        timm=timm.__version__,
        timm_t2t=version('timm-t2t'),
        vit_pytorch=version('vit-pytorch'),
        platform=platform.platform(),
    )


def _load_avg() -> Optional[float]:
    """1-minute load average (None where the OS has none): other work on the machine skews the timings."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _fmt(value: Any, digits: int = 2, suffix: str = '') -> str:
    if value is None:
        return '—'
    if isinstance(value, str):
        return 'error'
    return f'{value:.{digits}f}{suffix}'


def format_quartiles(quartiles: Optional[Sequence[float]]) -> str:
    """'0.91-0.97x' for the (lower, upper) quartiles of round ratios, '—' when not measured."""
    return '—' if quartiles is None else f'{quartiles[0]:.2f}-{quartiles[1]:.2f}x'


def _pair(row: Dict[str, Any], key: str) -> str:
    if row[key] is None:
        return '—'
    return f"{_fmt(row[key], 2, 'x')} / {_fmt(row[key + '_median'], 2, 'x')}"


def render_markdown(report: Dict[str, Any]) -> str:
    """The report as markdown: settings, the results table and the targets table."""
    m = report['machine']
    lines = [
        f"Measured {m['date']} on {m['device']} ({m['cpu_count']} CPUs"
        + (f", {m['threads']} threads" if m['threads'] else '') + f"), {m['precision']}, "
        f"torch {m['torch']}, timm {m['timm']}, timm-t2t {m['timm_t2t']}, vit-pytorch {m['vit_pytorch']}; "
        f"{report['rounds']} interleaved rounds; 1-min load average {m['load_avg'][0]} at start, "
        f"{m['load_avg'][1]} at end.",
        '',
        f"Command: `{m['command']}`",
        '',
        '| model | res | batch | mode | params (M) | GMACs | img/s best | img/s median '
        '| vs vit_small best / median | vs deit_tiny best / median | peak MB | MB vs vit_small '
        '| saved MB | saved vs vit_small |',
        '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ]
    for r in report['rows']:
        lines.append(
            f"| {r['model']} | {r['img_size']} | {r['batch_size']} | {r['mode']} | {_fmt(r['params_m'])} "
            f"| {_fmt(r['gmacs'])} | {_fmt(r['img_per_s_best'], 1)} | {_fmt(r['img_per_s_median'], 1)} "
            f"| {_pair(r, 'vs_vit_small_patch16_224')} | {_pair(r, 'vs_deit_tiny_patch16_224')} "
            f"| {_fmt(r['peak_mb'], 0)} | {_fmt(r['peak_mb_vs_vit_small'], 2, 'x')} "
            f"| {_fmt(r['saved_mb'], 0)} | {_fmt(r['saved_vs_vit_small'], 2, 'x')} |")
    if report['targets']:
        lines += ['', '| target | ratio (best rounds) | median of round ratios | their quartiles | required '
                  '| result |', '|---|---|---|---|---|---|']
        for t in report['targets']:
            lines.append(f"| {t['label']} | {_fmt(t['ratio'], 2, 'x')} | {_fmt(t['ratio_median'], 2, 'x')} "
                         f"| {format_quartiles(t['ratio_quartiles'])} | {t['op']} {t['threshold']:.2f}x "
                         f"| {t['result']} |")
    errors = [(r['model'], r['img_size'], r['batch_size'], r['mode'], r['peak_mb'])
              for r in report['rows'] if isinstance(r['peak_mb'], str)]
    if errors:
        lines += [''] + [f'Memory of {m} {s}px b{b} {mode} not measured: {e}' for m, s, b, mode, e in errors]
    return '\n'.join(lines) + '\n'


def plot(report: Dict[str, Any], path: Path) -> bool:
    """Inference images/s and peak memory against input size, one line per model; False if nothing to plot."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    series: Dict[Tuple[str, int], List[Dict[str, Any]]] = {}
    for r in report['rows']:
        if r['mode'] == 'infer':
            series.setdefault((r['model'], r['batch_size']), []).append(r)
    series = {k: sorted(v, key=lambda r: r['img_size']) for k, v in series.items() if len(v) > 1}
    if not series:
        return False
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (model, batch), rows in series.items():
        sizes = [r['img_size'] for r in rows]
        style = dict(marker='o', linestyle='--' if 't2t' not in model else '-', label=f'{model} (b{batch})')
        ax_t.plot(sizes, [r['img_per_s_best'] for r in rows], **style)
        mem = [(s, r['peak_mb']) for s, r in zip(sizes, rows) if isinstance(r['peak_mb'], float)]
        if mem:
            ax_m.plot([s for s, _ in mem], [v for _, v in mem], **style)
    m = report['machine']
    for ax, title, unit in ((ax_t, 'Inference throughput', 'images/s (best round)'), (ax_m, 'Inference peak memory',
                                                                                  'MB above weights + input')):
        ax.set_title(title)
        ax.set_xlabel('input size (px)')
        ax.set_ylabel(unit)
        ax.set_yscale('log')
        ax.set_xticks(sorted({r['img_size'] for rows in series.values() for r in rows}))
        ax.grid(True, which='both', alpha=0.3)
    ax_t.legend(fontsize=7)
    fig.suptitle(f"{m['device']}, {m['precision']}, torch {m['torch']} ({m['date']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def benchmark(
        cases: Sequence[Case],
        device: torch.device,
        amp: bool = False,
        threads: int = 2,
        rounds: int = 7,
        min_time: float = 0.25,
        memory: bool = True,
        log: Callable[[str], None] = print,
) -> Dict[str, Any]:
    """Time, measure and count every case; returns the report (rows, targets, machine, settings)."""
    if not cases:
        raise ValueError('No cases to benchmark.')
    cases = list(dict.fromkeys(cases))
    load_start = _load_avg()
    if device.type == 'cpu':
        torch.set_num_threads(threads)
    runner = Runner(device, amp)
    times = time_cases(cases, runner, rounds, min_time, log=log)
    params = {(c.model, c.img_size): count_params(runner.model(c)) for c in cases}
    saved = {c: runner.saved_mb(c) for c in cases if c.mode == 'train' and not parse_spec(c.model).compiled}
    runner.release()
    peaks = measure_memory(cases, runner, threads, log=log) if memory else {}
    gmacs = {key: spec_gmacs(*key) for key in dict.fromkeys((c.model, c.img_size) for c in cases)}

    rows = []
    for c in cases:
        t = times[c]
        row = dict(
            asdict(c),
            params_m=params[(c.model, c.img_size)] / 1e6,
            gmacs=gmacs[(c.model, c.img_size)],
            img_per_s_median=c.batch_size / statistics.median(t),
            img_per_s_best=c.batch_size / min(t),
            seconds_per_step=t,
            peak_mb=peaks.get(c),
            saved_mb=saved.get(c),
        )
        for ref in REFERENCES:
            rc = Case(ref, c.img_size, c.batch_size, c.mode)
            row[f'vs_{ref}'] = _best_ratio(t, times[rc]) if rc in times else None
            row[f'vs_{ref}_median'] = _median_ratio(t, times[rc]) if rc in times else None
        rows.append(row)
    for row in rows:
        ref = _find(rows, 'vit_small_patch16_224', row['img_size'], row['batch_size'], row['mode'])
        ok = ref is not None and isinstance(row['peak_mb'], float) and isinstance(ref['peak_mb'], float)
        row['peak_mb_vs_vit_small'] = row['peak_mb'] / ref['peak_mb'] if ok else None
        # Saved activations against vit_small on the same path (`:gc` against `vit_small_patch16_224:gc`).
        suffix = ':gc' if parse_spec(row['model']).checkpointing else ''
        ref = _find(rows, 'vit_small_patch16_224' + suffix, row['img_size'], row['batch_size'], row['mode'])
        ok = ref is not None and row['saved_mb'] is not None and ref['saved_mb'] is not None
        row['saved_vs_vit_small'] = row['saved_mb'] / ref['saved_mb'] if ok else None
    machine = machine_info(device, threads, amp)
    machine['load_avg'] = [load_start, _load_avg()]
    return dict(
        machine=machine,
        rounds=rounds,
        min_time=min_time,
        rows=rows,
        targets=evaluate_targets(rows, times, device.type),
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark the parsed `args` describe; print the markdown, write .md/.json/.png. Returns 0, or 2 on
    bad arguments."""
    device = torch.device(args.device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda' and not torch.cuda.is_available():
        print(f'--device {args.device}: CUDA is not available on this machine; use --device cpu.', file=sys.stderr)
        return 2
    amp = device.type != 'cpu' if args.amp is None else args.amp
    bad_modes = [m for m in (args.modes or []) if m not in MODES]
    if bad_modes or args.rounds < 1 or args.threads < 1:
        print(f'Bad arguments: --modes takes {",".join(MODES)}; --rounds and --threads must be >= 1.',
              file=sys.stderr)
        return 2
    try:
        for spec in args.models or []:
            name = parse_spec(spec).name
            if name != VIT_PYTORCH_T2T_14 and not timm.is_model(name):
                raise ValueError(f'Unknown model {name!r}: use a timm model name (see timm.list_models()) or '
                                 f'{VIT_PYTORCH_T2T_14}.')
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2

    if any(v is not None for v in (args.models, args.img_sizes, args.batch_sizes, args.modes)):
        cases = grid_cases(
            args.models or COMPARATORS_224,
            args.img_sizes or [224],
            args.batch_sizes or [8 if device.type == 'cpu' else 256],
            args.modes or MODES,
        )
    else:
        cases = default_cases(device.type)
    if args.compile:
        cases = add_compiled(cases)

    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731  progress on stderr, results on stdout
    report = benchmark(
        cases, device, amp=amp, threads=args.threads, rounds=args.rounds, min_time=args.min_time,
        memory=args.memory, log=log)

    tag = args.tag or f'bench-{device.type}'
    args.out_dir.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report)
    (args.out_dir / f'{tag}.md').write_text(markdown)
    (args.out_dir / f'{tag}.json').write_text(json.dumps(report, indent=1) + '\n')
    plotted = plot(report, args.out_dir / f'{tag}.png')
    print(markdown)
    written = [f'{tag}.md', f'{tag}.json'] + ([f'{tag}.png'] if plotted else [])
    log(f'wrote {", ".join(str(args.out_dir / w) for w in written)}')
    return 0
