"""The distributions stand on their own: the sdist holds what its own tests need and, unpacked alone, passes its parity
tests; the wheel ships the recipes (found by `timm-t2t recipes`) and the autoload hook.

Both are built here without network, by setuptools' PEP 517 backend in this environment (no build isolation), from a
copy of the source tree, so the checkout gets no build artefacts.
"""
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, Sequence, Set

import pytest

from conftest import FIXTURES, checkpoint_files, fixture_cases

ROOT = Path(__file__).resolve().parents[1]
# Fetched for one timm version by tests/timm_suite/fetch_timm_tests.py, never shipped.
FETCHED = {'tests/timm_suite/test_timm_models.py', 'tests/timm_suite/test_timm_models.version'}
NOT_SOURCE = {'build', 'dist', 'out', '__pycache__'}  # build outputs and caches, whatever an sdist rule says


def _source_copy(dest: Path) -> Path:
    """The source tree without VCS data, virtual environments, caches and build outputs."""
    def ignore(folder: str, names: Sequence[str]) -> Set[str]:
        return {n for n in names if n.startswith('.') or n in NOT_SOURCE or n.endswith('.egg-info')
                or (Path(folder, n) / 'pyvenv.cfg').exists()}
    shutil.copytree(ROOT, dest, ignore=ignore)
    return dest


def _build(kind: str, src: Path, out: Path) -> Path:
    """Build an sdist or a wheel of `src` into `out` with setuptools' backend, offline, in this interpreter."""
    code = f'import sys, setuptools.build_meta as backend; backend.build_{kind}(sys.argv[1])'
    proc = subprocess.run([sys.executable, '-c', code, str(out)], cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f'build_{kind} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}'
    (built,) = out.glob('*.tar.gz' if kind == 'sdist' else '*.whl')
    return built


@pytest.fixture(scope='module')
def sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp('sdist')
    return _build('sdist', _source_copy(tmp / 'src'), tmp)


@pytest.fixture(scope='module')
def unpacked_sdist(sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist extracted into an empty folder: no ../shared beside it, no git, no fetched timm suite."""
    alone = tmp_path_factory.mktemp('alone')
    with tarfile.open(sdist) as tar:
        # the 'data' filter (Python >= 3.10.12 / 3.11.4) refuses links and paths outside the folder
        tar.extractall(alone, **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
    (root,) = alone.iterdir()
    return root


@pytest.fixture(scope='module')
def wheel(unpacked_sdist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # From the sdist, as pip builds it: the wheel can only ship what the sdist holds.
    return _build('wheel', unpacked_sdist, tmp_path_factory.mktemp('wheel'))


def _members(sdist: Path) -> Set[str]:
    with tarfile.open(sdist) as tar:
        return {m.name.split('/', 1)[1] for m in tar.getmembers() if m.isfile()}


def test_sdist_holds_what_its_tests_need(sdist):
    members = _members(sdist)
    tests = {p.relative_to(ROOT).as_posix() for p in (ROOT / 'tests').rglob('*')
             if p.is_file() and '__pycache__' not in p.parts}
    missing = (tests - FETCHED) - members
    assert not missing, f'not in the sdist (MANIFEST.in): {sorted(missing)}'
    for required in ('tests/conftest.py', 'tests/hub_standin.py', 'tests/timm_suite/conftest.py',
                     'tests/timm_suite/fetch_timm_tests.py', 'tests/data/official/manifest.json',
                     'timm_t2t/recipes/t2t_vit_14.in1k.yaml', 'timm_t2t-autoload.pth', 'timm_t2t-autoload.start',
                     'timm_t2t_autoload.py', 'setup.py', 'pyproject.toml', 'LICENSE', 'README.md'):
        assert required in members, required
    golden = {p.relative_to(ROOT).as_posix() for p in FIXTURES.iterdir()}
    assert golden <= members
    assert not members & FETCHED, 'the fetched timm suite belongs to one timm version: fetch it, never ship it'
    assert not [m for m in members if m.endswith('.pyc') or '__pycache__' in m]


def test_wheel_ships_recipes_and_autoload_hook(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    recipes = {n for n in names if n.startswith('timm_t2t/recipes/') and n.endswith('.yaml')}
    assert {Path(n).name for n in recipes} == {p.name for p in (ROOT / 'timm_t2t' / 'recipes').glob('*.yaml')}
    assert len(recipes) == 10
    assert {'timm_t2t-autoload.pth', 'timm_t2t-autoload.start', 'timm_t2t_autoload.py',
            'timm_t2t/recipes/__init__.py'} <= names
    assert not [n for n in names if n.startswith('tests/')]


def test_recipe_lookup_from_the_installed_wheel(wheel, tmp_path):
    """`train.py --config "$(timm-t2t recipes NAME)"` from a wheel install: a path inside the installed package."""
    site = tmp_path / 'site'
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    env = {**os.environ, 'PYTHONPATH': str(site), 'TIMM_T2T_AUTOLOAD': '0'}
    proc = subprocess.run([sys.executable, '-m', 'timm_t2t', 'recipes', 't2t_vit_14.in1k'], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    path = Path(proc.stdout.strip())
    assert path == site / 'timm_t2t' / 'recipes' / 't2t_vit_14.in1k.yaml'
    assert path.read_text() == (ROOT / 'timm_t2t' / 'recipes' / 't2t_vit_14.in1k.yaml').read_text()


def _summary(output: str) -> Dict[str, int]:
    """pytest's final counts, e.g. {'passed': 16}."""
    last = output.strip().splitlines()[-1]
    counts = {}
    for part in last.strip('= ').split(' in ')[0].split(', '):
        number, _, word = part.partition(' ')
        counts[word] = int(number)
    return counts


def test_unpacked_sdist_alone_passes_its_parity_tests(unpacked_sdist):
    """The Done-when of a self-contained sdist: its own conftest and golden data, nothing beside it."""
    assert not (unpacked_sdist.parent.parent / 'shared').exists()
    env = {**os.environ, 'HF_HUB_OFFLINE': '1'}
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q', 'tests/test_parity.py'],
        cwd=unpacked_sdist, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    # every in-repo checkpoint on both attention paths, plus the two single tests; none skipped
    expected = 2 * sum(len(checkpoint_files(c)) for c in fixture_cases(include_shared=False)) + 2
    assert _summary(proc.stdout) == {'passed': expected}, proc.stdout[-2000:]
