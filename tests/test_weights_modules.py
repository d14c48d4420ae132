"""The package laid out by job: models <- weights <- bench <- cli, no import cycle, no re-export shim, a torch-free
command-line side, and loading code that does not import the model back."""
import ast
import sys
from pathlib import Path
from typing import Dict, Set

import timm_t2t
from timm_t2t.cli import weights as cli_weights
from timm_t2t.cli.main import DELEGATED
from timm_t2t.models import t2t_vit

PACKAGE = Path(timm_t2t.__file__).parent
# Each layer may import only from the layers before it (lazily, inside functions, included).
LAYERS = ('timm_t2t.models', 'timm_t2t.weights', 'timm_t2t.bench', 'timm_t2t.cli')
JOB_PACKAGES = ('weights', 'cli', 'bench')
HEAVY = {'torch', 'timm', 'torchvision', 'numpy', 'PIL', 'huggingface_hub', 'safetensors', 'tqdm'}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob('*.py')}


def _imports(module: str, top_level_only: bool) -> Dict[str, Set[str]]:
    """{'package': modules of timm_t2t that `module` imports, 'external': top-level names of the others}."""
    path = MODULES[module]
    package = module if path.name == '__init__.py' else module.rpartition('.')[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: Dict[str, Set[str]] = {'package': set(), 'external': set()}
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                kind = 'package' if alias.name.split('.')[0] == 'timm_t2t' else 'external'
                found[kind].add(alias.name if kind == 'package' else alias.name.split('.')[0])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit('.', node.level - 1)[0] if node.level > 1 else package
                target = f'{base}.{node.module}' if node.module else base
            elif node.module.split('.')[0] == 'timm_t2t':
                target = node.module
            else:
                found['external'].add(node.module.split('.')[0])
                continue
            # `from . import x` and `from .pkg import mod`: the names may be modules themselves
            found['package'].update(f'{target}.{a.name}' for a in node.names if f'{target}.{a.name}' in MODULES)
            if target in MODULES:
                found['package'].add(target)
    return found


def package_imports(module: str, top_level_only: bool = False) -> Set[str]:
    """Modules of timm_t2t that `module` imports (also inside functions unless top_level_only)."""
    return _imports(module, top_level_only)['package']


def closure(module: str, top_level_only: bool = False) -> Set[str]:
    seen, todo = set(), [module]
    while todo:
        for dep in package_imports(todo.pop(), top_level_only):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_no_import_cycle():
    # The command line reaches `cli.demo_run` and the benchmarks by name only (DELEGATED, importlib), not here.
    edges = {m: package_imports(m) for m in MODULES}
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


def test_dependencies_point_one_way():
    """models <- weights <- bench <- cli: no layer imports a later one (the model loads its weights lazily)."""
    for i, layer in enumerate(LAYERS):
        later = LAYERS[i + 1:]
        for module in (m for m in MODULES if m == layer or m.startswith(layer + '.')):
            top_level = layer == 'timm_t2t.models'  # the model imports `weights.pretrained` inside the function
            bad = {d for d in package_imports(module, top_level) if d.startswith(later)}
            assert not bad, f'{module} imports {sorted(bad)}'
    # ... and what the model imports from outside its package, lazily, is the loading code alone
    outside = {d for d in package_imports('timm_t2t.models.t2t_vit') if not d.startswith('timm_t2t.models')}
    assert outside == {'timm_t2t.weights.pretrained'}, outside


def test_loading_code_does_not_import_the_model_module():
    """The model module imports the loading module; only code that needs the model's classes imports it back."""
    for module in ('checkpoint_io', 'download', 'pretrained'):
        found = closure(f'timm_t2t.weights.{module}')
        assert not {m for m in found if m.startswith('timm_t2t.models')} and 'timm_t2t' not in found, (module, found)


def test_layout_has_no_shims_and_small_modules():
    """One job per module: the package `__init__`s of the jobs hold a docstring only, the re-export shim is gone,
    and the weights and command-line modules stay small."""
    assert not (PACKAGE / 'hub.py').exists()
    for package in JOB_PACKAGES:
        body = ast.parse((PACKAGE / package / '__init__.py').read_text()).body
        assert len(body) == 1 and isinstance(body[0].value, ast.Constant), f'{package}/__init__.py: docstring only'
    for module, path in MODULES.items():
        if module.startswith(('timm_t2t.weights', 'timm_t2t.cli')):
            lines = len(path.read_text().splitlines())
            assert lines <= 400, f'{path.relative_to(PACKAGE)} has {lines} lines'


def test_command_line_side_is_torch_free():
    """Everything the parser is built from (every `cli` module but the demo itself, which runs only when chosen)
    imports no torch, timm or other heavy package at module level; the work is imported when a command runs."""
    parser_modules = {'timm_t2t.cli.main'} | {spec[0] for spec in DELEGATED.values()}
    parser_side = parser_modules.union(*(closure(m, top_level_only=True) for m in parser_modules))
    assert {m for m in MODULES if m.startswith('timm_t2t.cli.')} - parser_side == {'timm_t2t.cli.demo_run'}
    assert 'timm_t2t.bench.defaults' in parser_side  # the benchmarks' default lists, for `bench --help`
    for module in sorted(parser_side):
        external = _imports(module, top_level_only=True)['external']
        assert external <= set(sys.stdlib_module_names) and not external & HEAVY, (module, external)
    assert cli_weights.HF_HUB_NAMESPACE == t2t_vit.HF_HUB_NAMESPACE
