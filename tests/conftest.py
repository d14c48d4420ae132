"""Shared test helpers: the official golden fixtures in ../shared/fixtures/official."""
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / 'shared' / 'fixtures' / 'official'


def fixture_cases() -> List[Dict[str, Any]]:
    """The manifest's cases; fails loudly (not a skip) when the fixtures are missing."""
    manifest = FIXTURES / 'manifest.json'
    if not manifest.exists():
        raise FileNotFoundError(f'{manifest} not found: the official fixtures must sit at ../shared beside the checkout')
    return json.loads(manifest.read_text())


def checkpoint_files(case: Dict[str, Any]) -> List[Path]:
    """Weight files of a case: the release-style .pth.tar files, else CASE.safetensors."""
    names = case.get('checkpoint_files') or [f"{case['case']}.safetensors"]
    return [FIXTURES / n for n in names]


@pytest.fixture(scope='session')
def fixtures_dir() -> Path:
    return FIXTURES
