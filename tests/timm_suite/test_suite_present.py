"""The fetched timm model test-suite is present and matches the installed timm (a failure, never a silent skip)."""
import timm

from .conftest import SUITE_FILE, VERSION_FILE, plugin_models

FETCH = 'run `python tests/timm_suite/fetch_timm_tests.py` (downloads the timm sdist with pip) before pytest'


def test_timm_suite_fetched() -> None:
    assert SUITE_FILE.exists(), f'timm model test-suite {SUITE_FILE} is missing: {FETCH}'
    fetched = VERSION_FILE.read_text().strip() if VERSION_FILE.exists() else 'unknown'
    assert fetched == timm.__version__, (
        f'{SUITE_FILE.name} comes from timm {fetched}, but timm {timm.__version__} is installed: {FETCH}')


def test_all_architectures_registered() -> None:
    assert len(plugin_models()) == 11, plugin_models()
