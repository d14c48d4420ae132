"""The weights code: one job per module, no import cycle, a torch-free command-line side, the old names still there."""
import ast
from pathlib import Path
from typing import Dict, Set

import timm_t2t
from timm_t2t import cli_weights
from timm_t2t.models import t2t_vit

PACKAGE = Path(timm_t2t.__file__).parent
WEIGHTS_MODULES = ('checkpoint', 'download', 'pretrained', 'convert', 'publish', 'cli_weights', 'hub')


def package_imports(module: str, top_level_only: bool = False) -> Set[str]:
    """Modules of timm_t2t that `module` imports (relative imports; also inside functions unless top_level_only)."""
    tree = ast.parse((PACKAGE / f'{module}.py').read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module)
            else:  # `from . import x`: x may be a module
                found.update(a.name for a in node.names if (PACKAGE / f'{a.name}.py').exists())
    return found


def graph() -> Dict[str, Set[str]]:
    return {p.stem: package_imports(p.stem) for p in PACKAGE.glob('*.py') if p.stem != '__init__'}


def test_no_import_cycle():
    edges = graph()
    # `cli` <-> `demo`/`bench` by name only: the command line imports them through DELEGATED (importlib), not here.
    seen: Dict[str, int] = {}

    def visit(node: str, path: tuple) -> None:
        if node in path:
            raise AssertionError(f'import cycle: {" -> ".join(path + (node,))}')
        if seen.get(node) == 2:
            return
        for nxt in sorted(edges.get(node, ())):
            visit(nxt, path + (node,))
        seen[node] = 2

    for module in sorted(edges):
        visit(module, ())


def test_loading_code_does_not_import_the_model_module():
    """The model module imports the loading module; only code that needs the model's classes imports it back."""
    assert 'pretrained' in package_imports('t2t_vit', top_level_only=True)
    for module in ('checkpoint', 'download', 'pretrained'):
        closure, todo = set(), [module]
        while todo:
            for dep in package_imports(todo.pop()):
                if dep not in closure:
                    closure.add(dep)
                    todo.append(dep)
        assert 't2t_vit' not in closure and 'hub' not in closure, (module, closure)


def test_modules_are_small():
    for module in WEIGHTS_MODULES:
        lines = len((PACKAGE / f'{module}.py').read_text().splitlines())
        assert lines <= 400, f'{module}.py has {lines} lines'


def test_command_line_side_is_torch_free():
    """`cli_weights` builds the convert / push parsers without torch or timm; the work is imported when a command
    runs."""
    tree = ast.parse((PACKAGE / 'cli_weights.py').read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top.update(a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            top.add('.' * node.level + (node.module or '').split('.')[0])
    assert top <= {'argparse', 'ast', 'pathlib', 'typing', '.cli_args'}, top  # cli_args: torch-free too
    assert cli_weights.HF_HUB_NAMESPACE == t2t_vit.HF_HUB_NAMESPACE


def test_old_names_are_re_exported():
    """What the README, the tests, the command line and bench.py import from `timm_t2t.hub`."""
    from timm_t2t import hub
    for name in ('PretrainedWeightsError', 'DownloadError', 'ChecksumError', 'CheckpointMismatchError',
                 'read_checkpoint', 'check_state_dict', 'download_release', 'release_urls', 'build_pretrained',
                 'convert_checkpoint', 'ConversionResult', 'push_folder', 'publish_all', 'count_gmacs',
                 'cached_hub_weights', 'cached_release', 'RELEASE_ACCURACY', 'RELEASE_CHECKSUMS',
                 'configure_convert_parser', 'run_convert', 'configure_push_parser', 'run_push'):
        assert hasattr(hub, name), name
    from timm_t2t.bench import count_gmacs
    assert count_gmacs is hub.count_gmacs
