"""Instant help: `timm-t2t --help`, every `COMMAND --help`, `--version` and `timm-t2t recipes` import neither torch nor
timm (nor the other heavy packages), by both entry points; commands that need the models still get them registered.

What a process imported is read from Python's own import log (`-X importtime` / PYTHONPROFILEIMPORTTIME), never
inferred from wall time.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set

import numpy as np
import pytest
from PIL import Image

from timm_t2t._launch import dash_m_module, started_as_command_line
from timm_t2t.cli.main import DELEGATED

HEAVY = {'torch', 'timm', 'torchvision', 'numpy', 'PIL', 'huggingface_hub', 'safetensors'}
COMMANDS = ['list', 'predict', 'features', 'recipes', *DELEGATED]


def _console_script() -> Path:
    """The installed `timm-t2t` script of this environment."""
    script = Path(sys.executable).parent / ('timm-t2t.exe' if os.name == 'nt' else 'timm-t2t')
    found = script if script.exists() else shutil.which('timm-t2t')
    assert found, 'the timm-t2t console script is not installed: pip install -e .'
    return Path(found)


def _run_logged(cmd: List[str]) -> subprocess.CompletedProcess:
    """Run with Python's import log on stderr (PYTHONPROFILEIMPORTTIME works for console scripts too)."""
    env = {**os.environ, 'PYTHONPROFILEIMPORTTIME': '1', 'HF_HUB_OFFLINE': '1'}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def imported_packages(importtime_log: str) -> Set[str]:
    """Top-level names of every module in an `-X importtime` log."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith('import time:') and '|' in line:
            name = line.rsplit('|', 1)[1].strip()
            if name != 'imported package':  # the header
                names.add(name.split('.')[0])
    return names


def _entry_points() -> Dict[str, List[str]]:
    return {'python -m timm_t2t': [sys.executable, '-m', 'timm_t2t'], 'timm-t2t': [str(_console_script())]}


INVOCATIONS = [['--help'], ['--version'], ['recipes'], ['recipes', 't2t_vit_14.in1k']]
INVOCATIONS += [[command, '--help'] for command in COMMANDS]


@pytest.mark.parametrize('entry', ['python -m timm_t2t', 'timm-t2t'])
@pytest.mark.parametrize('args', INVOCATIONS, ids=' '.join)
def test_help_version_and_recipes_import_no_torch_or_timm(entry, args):
    proc = _run_logged(_entry_points()[entry] + args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip()  # it answered
    imported = imported_packages(proc.stderr)
    assert 'timm_t2t' in imported  # the log is real: the package itself shows in it
    assert not imported & HEAVY, f'{entry} {" ".join(args)} imported {sorted(imported & HEAVY)}'


@pytest.mark.parametrize('entry', ['python -m timm_t2t', 'timm-t2t'])
def test_export_help_imports_no_runtime(entry):
    """`export --help` names its options without importing torch or any deployment runtime (they load when it runs)."""
    proc = _run_logged(_entry_points()[entry] + ['export', '--help'])
    assert proc.returncode == 0 and proc.stdout.startswith('usage: timm-t2t export'), proc.stderr[-3000:]
    for option in ('--format', '--out', '--batch', '--exporter', '--weights', '--no-pretrained', '--img-size',
                   '--num-classes', '--model-kwargs'):
        assert option in proc.stdout
    runtimes = {'onnx', 'onnxscript', 'onnxruntime', 'openvino'}
    assert not imported_packages(proc.stderr) & (HEAVY | runtimes)


def test_python_m_cli_module_help_is_instant_too():
    proc = _run_logged([sys.executable, '-m', 'timm_t2t.cli.main', '--help'])
    assert proc.returncode == 0 and 'usage: timm-t2t' in proc.stdout
    assert not imported_packages(proc.stderr) & HEAVY


def test_plain_import_still_registers_the_models():
    """The plugin contract, and the check's own control: a plain `import timm_t2t` does import torch and timm."""
    proc = _run_logged([sys.executable, '-c', 'import timm_t2t, timm; print(timm.is_model("t2t_vit_14"))'])
    assert proc.returncode == 0 and proc.stdout.split() == ['True'], proc.stderr[-2000:]
    assert {'torch', 'timm'} <= imported_packages(proc.stderr)


@pytest.fixture(scope='module')
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp('img') / 'noise.png'
    Image.fromarray((np.random.RandomState(0).rand(32, 32, 3) * 255).astype('uint8')).save(path)
    return path


@pytest.mark.parametrize('entry', ['python -m timm_t2t', 'timm-t2t'])
def test_commands_register_the_models_themselves(entry, image):
    """After a command-line start the package skipped the model import: a command that needs the models imports it.

    An unknown tag of a T2T-ViT architecture is reported as such only when timm knows the architecture.
    """
    proc = subprocess.run(_entry_points()[entry] + ['predict', str(image), '--model', 't2t_vit_7.no_such_tag'],
                          env={**os.environ, 'HF_HUB_OFFLINE': '1', 'TIMM_T2T_AUTOLOAD': '0'},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "'t2t_vit_7' has no pretrained tag 'no_such_tag': use one of t2t_vit_7.in1k." in proc.stderr, proc.stderr


@pytest.mark.parametrize('orig_argv, module', [
    (['python', '-m', 'timm_t2t', '--help'], 'timm_t2t'),
    (['python', '-X', 'importtime', '-m', 'timm_t2t'], 'timm_t2t'),
    (['python', '-W', 'error', '-Im', 'timm_t2t.cli.main'], 'timm_t2t.cli.main'),
    (['python', '-mtimm_t2t.run', 'train.py'], 'timm_t2t.run'),
    (['python', '-Ximporttime', '-u', '-m', 'pytest', '-m', 'timm_t2t'], 'pytest'),
    (['python', '--check-hash-based-pycs', 'always', '-m', 'timm_t2t'], 'timm_t2t'),
    (['python', 'script.py', '-m', 'timm_t2t'], None),
    (['python', '-c', 'import timm_t2t', '-m', 'timm_t2t'], None),
    (['python', '-'], None),
])
def test_dash_m_module(orig_argv, module):
    assert dash_m_module(orig_argv) == module


@pytest.mark.parametrize('argv, orig_argv, expected', [
    (['-m', '--help'], ['python', '-m', 'timm_t2t', '--help'], True),
    (['-m'], ['python', '-m', 'timm_t2t.__main__'], True),
    (['-m', 'train.py'], ['python', '-m', 'timm_t2t.run', 'train.py'], False),  # the wrapper needs the models
    (['-m', 'tests'], ['python', '-m', 'pytest', 'tests'], False),
    (['/venv/bin/timm-t2t', 'list'], None, True),
    (['C:\\venv\\Scripts\\timm-t2t.exe', 'list'], None, True),
    (['C:\\venv\\Scripts\\timm-t2t-script.py', 'list'], None, True),
    (['/venv/bin/python', '-c'], None, False),
    (['train.py', '--model', 't2t_vit_7'], None, False),
    ([], None, False),
])
def test_started_as_command_line(argv, orig_argv, expected):
    assert started_as_command_line(argv, orig_argv or []) is expected
