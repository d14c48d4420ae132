"""timm's scripts see the models without edits: the autoload hook, `python -m timm_t2t.run`, `--device-modules`, and
distributed training on CPU (torchrun + gloo) with the opt-in `timm_t2t.cpu_ddp` fix.

timm's scripts are not in its wheel: set TIMM_SCRIPTS_DIR to a timm checkout (the folder holding train.py) to run
them unchanged; those tests skip without it. The in-process equivalent of train.py is in test_workflows.py, and the
DDP gradient check below always runs (on timm's own task API, which train.py uses).
"""
import os
import subprocess
import sys
import textwrap
from importlib.metadata import files
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest
import torch
from PIL import Image

import timm
import timm_t2t  # noqa: F401
from timm_t2t.cpu_ddp import cpu_device_ids

SCRIPTS_DIR = Path(os.environ.get('TIMM_SCRIPTS_DIR', '')).expanduser() if os.environ.get('TIMM_SCRIPTS_DIR') else None
needs_scripts = pytest.mark.skipif(
    SCRIPTS_DIR is None or not (SCRIPTS_DIR / 'train.py').is_file(),
    reason='TIMM_SCRIPTS_DIR not set to a timm checkout with train.py: unchanged-script runs skipped',
)
TINY = ['--model', 't2t_vit_7', '--model-kwargs', 'depth=1', 'img_size=32', '--img-size', '32', '--num-classes', '2']


def _env(**overrides: Optional[str]) -> Dict[str, str]:
    """Subprocess environment: offline (nothing may reach the network), autoload as given."""
    env = {k: v for k, v in os.environ.items() if k != 'TIMM_T2T_AUTOLOAD'}
    env.update(HF_HUB_OFFLINE='1', OMP_NUM_THREADS='1')
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _run(args: List[str], cwd: Optional[Path] = None, timeout: int = 300, **env: Optional[str]):
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (
        f'exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}')
    return proc.stdout


# --- the autoload hook ------------------------------------------------------------------------------------------

PROBE = ("import sys; before = sorted({'torch', 'timm', 'timm_t2t'} & set(sys.modules)); import timm; "
         "print(before, timm.is_model('t2t_vit_7'), 'timm_t2t' in sys.modules)")


def test_autoload_files_are_installed():
    installed = {str(f) for f in files('timm-t2t') or ()}
    missing = {'timm_t2t-autoload.pth', 'timm_t2t-autoload.start'} - installed
    assert not missing, f'{missing} not installed: reinstall the package (pip install -e .) so setup.py places them'


def test_autoload_registers_models_once_timm_is_imported():
    out = _ok(_run(['-c', PROBE]))
    # nothing heavy at interpreter start; the plugin arrives with timm
    assert out.split() == ['[]', 'True', 'True'], out


def test_autoload_survives_an_installed_check():
    """`importlib.util.find_spec('timm')` before the import (how transformers checks that timm is installed) must not
    use up the one-shot hook."""
    out = _ok(_run(['-c', 'import importlib.util; assert importlib.util.find_spec("timm"); ' + PROBE]))
    assert out.split() == ['[]', 'True', 'True'], out


def test_autoload_opt_out():
    out = _ok(_run(['-c', PROBE], TIMM_T2T_AUTOLOAD='0'))
    assert out.split() == ['[]', 'False', 'False'], out


def test_autoload_with_plugin_imported_first_registers_once():
    proc = _run(['-W', 'always', '-c', 'import timm_t2t, timm; print(len(timm.list_models("t2t_vit_*")))'])
    assert _ok(proc).strip() == '11'
    assert 'Overwriting' not in proc.stderr, proc.stderr


# --- python -m timm_t2t.run -------------------------------------------------------------------------------------

def test_run_wrapper_runs_script_as_main(tmp_path):
    script = tmp_path / 'show.py'
    script.write_text(textwrap.dedent('''
        import sys, timm
        print(__name__, timm.is_model('t2t_vit_7'), sys.argv[1:], sys.path[0] == sys.argv[0].rsplit('/', 1)[0])
    '''))
    out = _ok(_run(['-m', 'timm_t2t.run', str(script), '--flag', 'x'], TIMM_T2T_AUTOLOAD='0'))
    assert out.strip() == "__main__ True ['--flag', 'x'] True", out


def test_run_wrapper_missing_script():
    proc = _run(['-m', 'timm_t2t.run', 'no_such_script.py'], TIMM_T2T_AUTOLOAD='0')
    assert proc.returncode != 0 and 'no_such_script.py' in proc.stderr and 'usage' in proc.stderr


# --- DDP on CPU ---------------------------------------------------------------------------------------------------

def test_cpu_device_ids():
    assert cpu_device_ids([torch.device('cpu')]) is None
    assert cpu_device_ids(['cpu', 'cpu']) is None
    assert cpu_device_ids([0]) == [0]  # GPU ids untouched
    assert cpu_device_ids(None) is None
    from timm.task import ClassificationTask
    assert getattr(ClassificationTask.prepare_distributed, '_timm_t2t_cpu_ddp', False)


DDP_WORKER = '''
import os
import sys
import torch
import torch.distributed as dist
import timm
import timm_t2t.cpu_ddp  # what `train.py --device-modules timm_t2t.cpu_ddp` imports
from timm.task import ClassificationTask

dist.init_process_group('gloo')
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
model = timm.create_model('t2t_vit_7', depth=1, img_size=32, num_classes=5).eval()  # eval: no stem dropout
gen = torch.Generator().manual_seed(1)
x, y = torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 5, (8,), generator=gen)
task = ClassificationTask(model, criterion=torch.nn.CrossEntropyLoss(), device=torch.device('cpu'), verbose=False)
task.prepare_distributed(device_ids=[torch.device('cpu')])  # exactly train.py's call
per = x.shape[0] // world
task(x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per])['loss'].backward()
if rank == 0:
    torch.save({n: p.grad for n, p in model.named_parameters()}, sys.argv[1])
dist.barrier()  # neither rank tears gloo down while the other still uses it
dist.destroy_process_group()
# Skip interpreter teardown: gloo's worker threads occasionally abort there ('terminate called without an active
# exception') after all work is done, which would fail the launch for no reason of ours.
os._exit(0)
'''


def test_ddp_two_processes_gradients_match_single_process(tmp_path):
    worker = tmp_path / 'ddp_worker.py'
    worker.write_text(DDP_WORKER)
    out = tmp_path / 'grads.pt'
    _ok(_run(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(worker), str(out)],
             timeout=120))
    ddp_grads = torch.load(out)

    torch.manual_seed(0)
    model = timm.create_model('t2t_vit_7', depth=1, img_size=32, num_classes=5).eval()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 3, 32, 32, generator=gen), torch.randint(0, 5, (8,), generator=gen)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert ddp_grads.keys() == dict(model.named_parameters()).keys()
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp_grads[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


# --- timm's unchanged scripts (TIMM_SCRIPTS_DIR) -----------------------------------------------------------------

@pytest.fixture(scope='module')
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp('images')
    rng = np.random.default_rng(0)
    for split in ('train', 'validation'):
        for label, base in (('red', (200, 40, 40)), ('blue', (40, 40, 200))):
            (root / split / label).mkdir(parents=True)
            for i in range(4):
                img = np.clip(np.array(base) + rng.integers(-30, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / label / f'{label}{i}.png')
    return root


TRAIN_RECIPE = [  # the official recipe's ingredients, on a tiny model for one epoch
    '--epochs', '1', '-b', '4', '--device', 'cpu', '--workers', '0', '--log-interval', '1', '--opt', 'adamw',
    '--lr', '1e-3', '--weight-decay', '0.05', '--layer-decay', '0.75', '--grad-checkpointing', '--model-ema',
    '--mixup', '0.8', '--cutmix', '1.0', '--smoothing', '0.1', '--drop-path', '0.1', '--aa', 'rand-m9-mstd0.5-inc1',
    '--reprob', '0.25', '--remode', 'pixel',
]


def _train(image_folder: Path, out: Path, experiment: str, prefix: List[str], extra: List[str] = (), **env):
    args = [*prefix, str(SCRIPTS_DIR / 'train.py'), '--data-dir', str(image_folder), *TINY, *TRAIN_RECIPE,
            '--output', str(out), '--experiment', experiment, *extra]
    return _run(args, cwd=SCRIPTS_DIR, **env)


@pytest.fixture(scope='module')
def trained(image_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp('train_out')
    _ok(_train(image_folder, out, 'autoload', prefix=[]))
    checkpoint = out / 'autoload' / 'model_best.pth.tar'
    assert checkpoint.is_file() and (out / 'autoload' / 'summary.csv').is_file()
    return checkpoint


@needs_scripts
def test_train_py_unchanged_via_autoload(trained):
    state = torch.load(trained, map_location='cpu', weights_only=False)
    assert state['arch'] == 't2t_vit_7' and 'state_dict_ema' in state


@needs_scripts
def test_train_py_without_plugin_does_not_know_the_model(image_folder, tmp_path):
    proc = _train(image_folder, tmp_path, 'none', prefix=[], TIMM_T2T_AUTOLOAD='0')
    assert proc.returncode != 0 and 'Unknown model' in proc.stderr


@needs_scripts
@pytest.mark.parametrize('route', ['run_wrapper', 'device_modules'])
def test_train_py_other_routes(image_folder, tmp_path, route):
    prefix, extra = (['-m', 'timm_t2t.run'], []) if route == 'run_wrapper' else ([], ['--device-modules', 'timm_t2t'])
    _ok(_train(image_folder, tmp_path, route, prefix=prefix, extra=extra, TIMM_T2T_AUTOLOAD='0'))
    assert (tmp_path / route / 'last.pth.tar').is_file()


@needs_scripts
@pytest.mark.parametrize('amp', [[], ['--amp', '--amp-dtype', 'bfloat16']], ids=['fp32', 'bf16_autocast'])
def test_validate_py(image_folder, trained, tmp_path, amp):
    results = tmp_path / 'results.csv'
    _ok(_run([str(SCRIPTS_DIR / 'validate.py'), '--data-dir', str(image_folder), '--split', 'validation', *TINY,
              '--checkpoint', str(trained), '-b', '4', '--workers', '0', '--device', 'cpu',
              '--results-file', str(results), *amp], cwd=SCRIPTS_DIR))
    header, row = results.read_text().splitlines()
    assert dict(zip(header.split(','), row.split(',')))['model'] == 't2t_vit_7'


@needs_scripts
def test_inference_py(image_folder, trained, tmp_path):
    _ok(_run([str(SCRIPTS_DIR / 'inference.py'), '--data-dir', str(image_folder), '--split', 'validation', *TINY,
              '--checkpoint', str(trained), '-b', '4', '--workers', '0', '--device', 'cpu', '--fullname',
              '--results-dir', str(tmp_path), '--results-file', 'predictions'], cwd=SCRIPTS_DIR))
    rows = (tmp_path / 'predictions.csv').read_text().splitlines()
    assert len(rows) == 1 + 8


@needs_scripts
def test_benchmark_py():
    out = _ok(_run([str(SCRIPTS_DIR / 'benchmark.py'), '--model', 't2t_vit_7', '--model-kwargs', 'depth=1',
                    'img_size=32', '--img-size', '32', '--bench', 'inference', '--device', 'cpu', '-b', '2',
                    '--num-warm-iter', '1', '--num-bench-iter', '5'], cwd=SCRIPTS_DIR))
    assert '"infer_samples_per_sec"' in out


@needs_scripts
def test_onnx_export_py(tmp_path):
    checkpoint = tmp_path / 't2t_vit_7.pth'
    torch.save(timm.create_model('t2t_vit_7').state_dict(), checkpoint)
    onnx_file = tmp_path / 't2t_vit_7.onnx'
    _ok(_run([str(SCRIPTS_DIR / 'onnx_export.py'), str(onnx_file), '--model', 't2t_vit_7', '-b', '1',
              '--checkpoint', str(checkpoint), '--check-forward'], cwd=SCRIPTS_DIR))
    assert onnx_file.stat().st_size > 1e6


@needs_scripts
def test_torchrun_train_py_on_cpu_with_cpu_ddp(image_folder, tmp_path):
    torchrun = ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']
    plain = _train(image_folder, tmp_path, 'ddp_plain', prefix=torchrun, extra=['-b', '2'])
    # unchanged train.py passes device_ids to DDP, which PyTorch rejects for CPU modules ...
    assert plain.returncode != 0 and 'device_ids' in plain.stderr
    # ... and the opt-in module fixes that through train.py's own --device-modules
    fix = ['-b', '2', '--device-modules', 'timm_t2t.cpu_ddp']
    _ok(_train(image_folder, tmp_path, 'ddp', prefix=torchrun, extra=fix))
    assert (tmp_path / 'ddp' / 'summary.csv').is_file()
