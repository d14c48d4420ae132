"""Shared test helpers: golden outputs of the official implementation, and seeded checkpoints for plumbing tests.

Two golden sets of one format (see tests/data/official/README.md):
- `tests/data/official/`: the compact set that ships with the repository; every run uses it.
- `../shared/fixtures/official/` beside the checkout: larger cases at real widths; used as well when present (its
  cases are added to the parametrized parity and conversion tests, ids prefixed `shared/`), never required.
"""
import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

FIXTURES = Path(__file__).resolve().parent / 'data' / 'official'
SHARED_FIXTURES = Path(__file__).resolve().parents[2] / 'shared' / 'fixtures' / 'official'


def _read_manifest(folder: Path, label: str) -> List[Dict[str, Any]]:
    cases = json.loads((folder / 'manifest.json').read_text())
    return [{**case, 'dir': folder, 'id': f"{label}/{case['case']}"} for case in cases]


def fixture_cases(include_shared: bool = True) -> List[Dict[str, Any]]:
    """Golden cases, each with `dir` (its folder) and `id`: the in-repo set, then the shared set when present."""
    manifest = FIXTURES / 'manifest.json'
    if not manifest.exists():  # part of the repository: its absence is a broken checkout, not a reason to skip
        raise FileNotFoundError(f'{manifest} not found: the golden data ships with the repository (tests/data).')
    cases = _read_manifest(FIXTURES, 'repo')
    if include_shared and (SHARED_FIXTURES / 'manifest.json').exists():
        cases += _read_manifest(SHARED_FIXTURES, 'shared')
    return cases


def golden_case(name: str) -> Dict[str, Any]:
    """One case of the in-repo set, by name (e.g. `tiny_performer_64`)."""
    return next(c for c in fixture_cases(include_shared=False) if c['case'] == name)


def checkpoint_files(case: Dict[str, Any]) -> List[Path]:
    """Weight files of a case: the release-style .pth.tar files, else CASE.safetensors."""
    names = case.get('checkpoint_files') or [f"{case['case']}.safetensors"]
    return [case['dir'] / n for n in names]


def expected_file(case: Dict[str, Any]) -> Path:
    """The official outputs of a case: `input`, `logits`, `pre_logits`."""
    return case['dir'] / f"{case['case']}.expected.safetensors"


_SEEDED_DIR = Path(tempfile.mkdtemp(prefix='timm-t2t-tests-'))
atexit.register(shutil.rmtree, _SEEDED_DIR, True)


@functools.lru_cache(maxsize=None)
def seeded_checkpoint(arch: str, seed: int = 0, **model_kwargs: Any) -> Path:
    """A safetensors checkpoint of `arch` at its real size with seeded random weights, written once per session.

    For tests of plumbing (command line, conversion, publishing) that need a full-size model but no golden outputs:
    the in-repo golden cases are deliberately narrow.
    """
    import timm
    import torch
    from safetensors.torch import save_file

    import timm_t2t  # noqa: F401  registers the models

    torch.manual_seed(seed)
    model = timm.create_model(arch, **model_kwargs)
    suffix = ''.join(f'_{k}{v}' for k, v in sorted(model_kwargs.items()))
    path = _SEEDED_DIR / f'{arch}_seed{seed}{suffix}.safetensors'
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope='session')
def fixtures_dir() -> Path:
    return FIXTURES


def gmacs_here(name: str, official_gmacs: float, img_size: int = 224) -> float:
    """The GMACs this package computes for an architecture whose official code computes `official_gmacs`.

    The Performer T2T layers apply their 64 x 64 output projection to the 32 x 64 matrix phi(k)^T v instead of to
    every token (H/4 * W/4 and H/8 * W/8 of them): (tokens - 2 * 32) * 64 * 64 fewer multiply-adds per image. The
    Transformer T2T layers (`t2t_vit_t_*`) compute what the official code does.
    """
    if name.startswith('t2t_vit_t_'):
        return official_gmacs
    tokens = (img_size // 4) ** 2 + (img_size // 8) ** 2
    return official_gmacs - (tokens - 2 * 32) * 64 * 64 / 1e9


class OpLog(TorchDispatchMode):
    """Records (op overload, numel) for every tensor each aten op run inside the context returns."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: List[Tuple[str, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN202
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.ops.append((str(func), t.numel()))
        return out
