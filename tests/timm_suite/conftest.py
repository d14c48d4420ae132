"""Run timm's own model test-suite (`tests/test_models.py` of the installed timm's sdist) on the plugin's models.

`fetch_timm_tests.py` puts the unchanged file here as `test_timm_models.py`. That file picks its models at import time
with `list_models(...)`/`list_pretrained(...)` and the name and module lists `NON_STD_FILTERS` (`'vit_*'`, ...) and
`FEAT_INTER_FILTERS` (`'vision_transformer'`, ...). While it is imported, this conftest:

* wraps `timm.list_models`/`list_pretrained` so that T2T-ViT is treated like timm's own ViT: the plugin's name pattern
  joins every filter list that holds `'vit_*'` (include or exclude) and its module every module list that holds
  `'vision_transformer'`; the answers are limited to plugin models. So the non-standard config test, the
  `forward_intermediates` and pruning-contract tests select T2T-ViT, and the standard-shape tests skip it, as for ViT;
* afterwards deselects every item that is not parametrized with a plugin model (tests of specific timm models).

Runtime: timm's tests run its ViTs at their fixed 224 input, and so they run T2T-ViT; at full depth the suite takes
well over 20 minutes on 2 CPU cores (the pruning contract alone runs O(depth^2) forwards per model). So, unless
`TIMM_SUITE_FULL_DEPTH=1`, the suite's `create_model` builds the plugin models with `depth=SUITE_DEPTH` blocks: every
architecture keeps its stem, width, heads, MLP ratio and input size, and every test still runs on all 11; the config
test (on the meta device, cheap) keeps the real depth.

`test_model_load_pretrained` asks for `pretrained=True` weights: it gets them from a Hugging Face cache built for the
session in a temporary folder (random weights of the right shapes, under the pretrained configs' own `hf_hub_id`s), in
offline mode, so timm's real download, filter, `in_chans` and head-reset path runs without network.
"""
import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
import torch

import timm
import timm.models
import timm_t2t  # noqa: F401  registers the models before the suite lists them

HERE = Path(__file__).resolve().parent
SUITE_FILE = HERE / 'test_timm_models.py'
VERSION_FILE = HERE / 'test_timm_models.version'
PLUGIN_MODULE = 't2t_vit'  # timm's module name for `timm_t2t.models.t2t_vit` (last component of the module path)
PLUGIN_PATTERN = 't2t_vit_*'

SUITE_DEPTH = 2
FULL_DEPTH = os.environ.get('TIMM_SUITE_FULL_DEPTH', '0') == '1'
FULL_DEPTH_TESTS = {'test_model_default_cfgs_non_std'}  # meta device: full depth costs nothing
_running: Dict[str, str] = {}  # name of the suite test being run, for `capped_create_model`

# The markers of timm's pyproject.toml, so the copied suite runs without unknown-mark warnings.
TIMM_MARKERS = (
    'base', 'forward', 'backward', 'cfg', 'cfg_nonstd', 'torchscript', 'features', 'fxforward', 'fxbackward')


def pytest_configure(config: pytest.Config) -> None:
    for name in TIMM_MARKERS:
        config.addinivalue_line('markers', f'{name}: timm model test-suite marker')


def plugin_models(include_tags: bool = False) -> List[str]:
    """Names of the plugin's registered models (with pretrained tags if asked)."""
    return timm.models.list_models(PLUGIN_PATTERN, module=PLUGIN_MODULE, include_tags=include_tags)


def _as_list(value: Any) -> List[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else list(value)


def _with_plugin(filters: Any) -> Any:
    """Add the plugin name pattern to a filter list that names timm's ViTs."""
    filters = _as_list(filters)
    return filters + [PLUGIN_PATTERN] if 'vit_*' in filters else filters


def _with_plugin_module(modules: Any) -> Any:
    modules = _as_list(modules)
    return modules + [PLUGIN_MODULE] if 'vision_transformer' in modules else modules


def _plugin_selection_list_models(list_models: Callable[..., List[str]]) -> Callable[..., List[str]]:
    def wrapped(
            filter: Any = '',
            module: Any = '',
            pretrained: bool = False,
            exclude_filters: Any = '',
            name_matches_cfg: bool = False,
            include_tags: Any = None,
    ) -> List[str]:
        names = list_models(
            filter=_with_plugin(filter),
            module=_with_plugin_module(module),
            pretrained=pretrained,
            exclude_filters=_with_plugin(exclude_filters),
            name_matches_cfg=name_matches_cfg,
            include_tags=include_tags,
        )
        plugin = set(timm.models.list_models(module=PLUGIN_MODULE, include_tags=True))
        plugin |= set(timm.models.list_models(module=PLUGIN_MODULE))
        return [n for n in names if n in plugin]
    return wrapped


@contextlib.contextmanager
def plugin_selection() -> Iterator[None]:
    """Make `timm.list_models`/`list_pretrained` select plugin models as timm's ViTs, for the duration."""
    saved = {name: getattr(timm, name) for name in ('list_models', 'list_pretrained')}
    list_models = _plugin_selection_list_models(timm.models.list_models)

    def list_pretrained(filter: Any = '', exclude_filters: Any = '') -> List[str]:
        return list_models(filter, pretrained=True, exclude_filters=exclude_filters, include_tags=True)

    timm.list_models, timm.list_pretrained = list_models, list_pretrained
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(timm, name, fn)


def capped_create_model(model_name: str, **kwargs: Any) -> torch.nn.Module:
    """`timm.create_model`, with plugin models at `SUITE_DEPTH` blocks (see the module docstring)."""
    if not FULL_DEPTH and _running.get('test') not in FULL_DEPTH_TESTS and model_name.split('.')[0] in plugin_models():
        kwargs.setdefault('depth', SUITE_DEPTH)
    return timm.create_model(model_name, **kwargs)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    # The suite binds `from timm import list_models, ...` and parametrizes while its module is imported, which happens
    # while that module is collected: patch only then, so other test modules see timm's real functions.
    if isinstance(collector, pytest.Module) and collector.path == SUITE_FILE:
        with plugin_selection():
            report = yield
        if report.passed:
            collector.obj.create_model = capped_create_model  # the suite's own global, looked up at call time
        return report
    return (yield)


def _is_plugin_item(item: pytest.Item, names: set) -> bool:
    callspec = getattr(item, 'callspec', None)
    return callspec is not None and callspec.params.get('model_name') in names


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    names = set(plugin_models(include_tags=True)) | set(plugin_models())
    keep, deselected = [], []
    for item in items:
        if item.path == SUITE_FILE and not _is_plugin_item(item, names):
            deselected.append(item)
        else:
            keep.append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = keep


def _write_offline_hub_repo(cache: Path, repo_id: str, state_dict: Dict[str, torch.Tensor]) -> None:
    """A hand-made Hugging Face cache entry (`refs/main` + snapshot) holding `model.safetensors`."""
    from safetensors.torch import save_file
    commit = '0' * 40
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / 'refs').mkdir(parents=True, exist_ok=True)
    (repo_dir / 'refs' / 'main').write_text(commit)
    snapshot = repo_dir / 'snapshots' / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    save_file(state_dict, str(snapshot / 'model.safetensors'))


@pytest.fixture(scope='session')
def _offline_hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp('hf_cache')


@pytest.fixture(autouse=True)
def _track_running_test(request: pytest.FixtureRequest) -> Iterator[None]:
    _running['test'] = request.node.originalname
    yield
    _running.clear()


@pytest.fixture(autouse=True)
def _pretrained_weights_offline(
        request: pytest.FixtureRequest,
        _offline_hub_cache: Path,
        _track_running_test: None,
) -> Iterator[None]:
    """Serve `pretrained=True` for the suite's pretrained tests from an offline Hub cache of random weights."""
    if request.node.path != SUITE_FILE or 'pretrained' not in request.node.originalname:
        yield
        return
    import huggingface_hub.constants as hf_constants
    model_name = request.node.callspec.params['model_name']
    repo_id = timm.models.get_pretrained_cfg(model_name).hf_hub_id
    assert repo_id, f'{model_name} has no hf_hub_id to serve'
    repo_dir = _offline_hub_cache / f"models--{repo_id.replace('/', '--')}"
    if not (repo_dir / 'refs' / 'main').exists():
        # Official layout and shapes come from the model itself; the values do not matter to this test.
        torch.manual_seed(0)
        model = capped_create_model(model_name, pretrained=False)
        state_dict = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        _write_offline_hub_repo(_offline_hub_cache, repo_id, state_dict)
    mp = pytest.MonkeyPatch()
    mp.setattr(hf_constants, 'HF_HUB_CACHE', str(_offline_hub_cache))
    mp.setattr(hf_constants, 'HF_HUB_OFFLINE', True)
    mp.setenv('HF_HUB_OFFLINE', '1')
    try:
        yield
    finally:
        mp.undo()
