"""`--model-kwargs` checked before the model is built: known keys, values of the right type and range.

The keys a T2T-ViT model takes are its constructor's (`T2TViT.__init__`) plus the build arguments timm's
`create_model` takes (`scriptable`, `exportable`, `no_jit`, and for `features` the feature-extractor ones); the types
come from the constructor's annotations. Models of other families (any timm name works on the command line) are
not checked here: their own errors are worded by `loading.load_model`.

Free of torch and timm: the constructor's signature and the registered names are read from the source of the model
module with `ast` (so the checks answer before torch is imported); a test keeps it equal to `inspect.signature`.
"""
import ast
import difflib
import functools
import typing
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .errors import CliError

__all__ = ['check_model_kwargs', 'check_reserved_model_kwargs', 'accepted_model_kwargs', 'is_t2t_name',
           't2t_signature']

# Arguments the command line sets itself: the option that does it instead.
RESERVED = {
    'pretrained': 'use --no-pretrained for random weights, or --weights FILE for a checkpoint',
    'pretrained_cfg': 'pass the checkpoint with --weights (a save_for_hf folder brings its config)',
    'pretrained_cfg_overlay': 'pass the checkpoint with --weights (a save_for_hf folder brings its config)',
    'checkpoint_path': 'use --weights FILE',
    'file': 'use --weights FILE',
    'cache_dir': 'set HF_HOME or TORCH_HOME for the caches',
    'features_only': 'run `timm-t2t features` for the feature maps',
    'device': 'the command line runs on the CPU',
    'dtype': 'the command line runs in float32',
}
# Build arguments of timm (create_model, build_model_with_cfg) that reach a T2T-ViT model: (type check, expected).
BUILD_ARGS: Dict[str, Tuple[Any, ...]] = {
    'scriptable': (bool,),
    'exportable': (bool,),
    'no_jit': (bool,),
}
FEATURE_ARGS: Dict[str, Tuple[Any, ...]] = {
    'out_indices': (int, Tuple[int, ...]),
    'feature_cls': (str,),
}


# The model module, read as text: importing it would import torch and timm.
_MODEL_SOURCE = Path(__file__).resolve().parent.parent / 'models' / 't2t_vit.py'
_MODEL_CLASS = 'T2TViT'


class _Unchecked:
    """Stands for an annotation the checks do not know (e.g. `torch.device`): `_types_of` gives () for it."""


class Param(typing.NamedTuple):
    """One argument of the model constructor as written in its source."""
    annotation: Optional[str]  # the annotation's source text, e.g. "Union[int, Tuple[int, int]]"
    default: Any  # the default value (a literal); None when there is none
    has_default: bool


@functools.lru_cache(maxsize=None)
def _module_source() -> str:
    return _MODEL_SOURCE.read_text(encoding='utf-8')


@functools.lru_cache(maxsize=None)
def _module_tree() -> ast.Module:
    return ast.parse(_module_source(), filename=str(_MODEL_SOURCE))


@functools.lru_cache(maxsize=None)
def t2t_signature() -> Dict[str, Param]:
    """`T2TViT.__init__`'s arguments (without self, *args, **kwargs), read from the source with `ast`.

    Returns:
        {name: Param(annotation source text, default, has_default)} in signature order.
    """
    cls = next(n for n in _module_tree().body if isinstance(n, ast.ClassDef) and n.name == _MODEL_CLASS)
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == '__init__')
    args = init.args
    positional = args.posonlyargs + args.args
    defaults: List[Optional[ast.expr]] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults)) + list(zip(args.kwonlyargs, args.kw_defaults))
    params: Dict[str, Param] = {}
    for arg, default in pairs[1:] if positional else pairs:  # drop self
        annotation = ast.get_source_segment(_module_source(), arg.annotation) if arg.annotation else None
        params[arg.arg] = Param(annotation, ast.literal_eval(default) if default is not None else None,
                                default is not None)
    return params


@functools.lru_cache(maxsize=None)
def _registered_names() -> Tuple[str, ...]:
    """The architectures the model module registers with timm (its `@register_model` functions)."""
    def registered(fn: ast.FunctionDef) -> bool:
        return any((isinstance(d, ast.Name) and d.id == 'register_model')
                   or (isinstance(d, ast.Attribute) and d.attr == 'register_model') for d in fn.decorator_list)
    return tuple(n.name for n in _module_tree().body if isinstance(n, ast.FunctionDef) and registered(n))


def is_t2t_name(name: str) -> bool:
    """Whether a model name (`arch` or `arch.tag`) is a T2T-ViT architecture, as `timm.list_models(module='t2t_vit')`
    would say, without importing timm."""
    return name.split('.', 1)[0] in _registered_names()


_ANNOTATION_NAMES: Dict[str, Any] = {
    'int': int, 'float': float, 'bool': bool, 'str': str, 'None': type(None),
    'Tuple': Tuple, 'tuple': Tuple, 'List': List, 'list': List, 'Union': typing.Union, 'Optional': Optional,
}


def _annotation(node: ast.expr) -> Any:
    """The typing object of an annotation's AST, built only from known names: anything else is `_Unchecked`."""
    if isinstance(node, ast.Constant) and node.value is None:
        return type(None)
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return Ellipsis
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a string annotation
        return _annotation(ast.parse(node.value, mode='eval').body)
    if isinstance(node, ast.Name):
        return _ANNOTATION_NAMES.get(node.id, _Unchecked)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # X | Y
        return typing.Union[_annotation(node.left), _annotation(node.right)]
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        origin = _ANNOTATION_NAMES.get(node.value.id)
        if origin is None or origin in (int, float, bool, str, type(None)):
            return _Unchecked
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        args = tuple(_annotation(i) for i in items)
        return origin[args if len(args) > 1 else args[0]]
    return _Unchecked


def _annotation_of(text: Optional[str]) -> Any:
    """The typing object of an annotation's source text (`Union[int, Tuple[int, int]]`); None without one."""
    if text is None:
        return None
    try:
        return _annotation(ast.parse(text, mode='eval').body)
    except (SyntaxError, TypeError):
        return _Unchecked


def accepted_model_kwargs(features: bool = False) -> Dict[str, Tuple[Any, ...]]:
    """Keyword arguments a T2T-ViT model takes through `timm.create_model`, with the types each accepts.

    Args:
        features: Include the feature-extractor arguments (`out_indices`, `feature_cls`).

    Returns:
        {name: accepted types}; an empty tuple for an annotation that is not checked.
    """
    accepted: Dict[str, Tuple[Any, ...]] = {}
    for name, param in t2t_signature().items():
        if name not in RESERVED:
            accepted[name] = _types_of(_annotation_of(param.annotation))
    accepted.update(BUILD_ARGS)
    if features:
        accepted.update(FEATURE_ARGS)
    return accepted


def check_model_kwargs(name: str, kwargs: Dict[str, Any], features: bool = False) -> None:
    """Check `--model-kwargs` for the model `name` before it is built.

    Args:
        name: Model name (`arch` or `arch.tag`); only T2T-ViT architectures are checked.
        kwargs: The user's `--model-kwargs`.
        features: The command builds the feature extractor.

    Raises:
        CliError: An argument the command line sets itself, an unknown key (the accepted keys named, close matches
            first), a value of the wrong type, or a count or rate out of range.
    """
    check_reserved_model_kwargs(kwargs)
    if not is_t2t_name(name):
        return
    accepted = accepted_model_kwargs(features)
    for key, value in kwargs.items():
        if key not in accepted:
            raise CliError(_unknown_key(key, name, list(accepted), features))
        types = accepted[key]
        if types and not any(_is_instance(value, t) for t in types):
            raise CliError(f'--model-kwargs {key}={value!r}: {key} takes {_describe(types)}, not '
                           f'{_describe_value(value)} (e.g. {key}={_example(key, types)}).')
        problem = _out_of_range(key, value)
        if problem:
            raise CliError(f'--model-kwargs {key}={value!r}: {problem}.')


def check_reserved_model_kwargs(kwargs: Dict[str, Any]) -> None:
    """The checks of `--model-kwargs` that need no model (no torch): arguments the command line sets itself, and
    `in_chans` (the images are read as RGB).

    Raises:
        CliError: Such an argument, with the option to use instead.
    """
    for key in kwargs:
        if key in RESERVED:
            raise CliError(f'--model-kwargs {key}=... is set by the command line: {RESERVED[key]}.')
    if 'in_chans' in kwargs and kwargs['in_chans'] != 3:
        raise CliError(f'--model-kwargs in_chans={kwargs["in_chans"]!r}: the command line reads RGB images (3 '
                       f'channels); drop in_chans.')


# --------------------------------------------------------------------------------------------------------------------
# Helpers


def _unknown_key(key: str, name: str, accepted: List[str], features: bool) -> str:
    close = difflib.get_close_matches(key, accepted, n=3, cutoff=0.6)
    if not features and key in FEATURE_ARGS:
        return f'--model-kwargs {key}=... is for `timm-t2t features`; predict takes none.'
    rest = [k for k in accepted if k not in close]
    hint = f"did you mean {' or '.join(close)}? " if close else ''
    return (f"--model-kwargs {key}=...: {name} takes no argument '{key}'; {hint}it takes "
            f"{', '.join(close + rest)}.")


def _types_of(annotation: Any) -> Tuple[Any, ...]:
    """The checked types an annotation allows: Union/Optional split, None kept; unknown annotations give ()."""
    if annotation is None:
        return ()
    origin = typing.get_origin(annotation)
    if origin is typing.Union:
        parts = tuple(t for a in typing.get_args(annotation) for t in _types_of(a))
        # A union with an unchecked member (a class, a device) cannot be checked as a whole.
        return parts if all(_types_of(a) for a in typing.get_args(annotation)) else ()
    if annotation is type(None):
        return (type(None),)
    if annotation in (int, float, bool, str) or origin in (tuple, list):
        return (annotation,)
    return ()


def _is_instance(value: Any, expected: Any) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:  # an int is a fine float (drop_path_rate=0)
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected in (str, type(None)):
        return isinstance(value, expected)
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (tuple, list):
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_is_instance(v, args[0]) for v in value)
        if args:
            return len(value) == len(args) and all(_is_instance(v, a) for v, a in zip(value, args))
        return True
    return True


def _describe(types: Sequence[Any]) -> str:
    words = []
    for t in types:
        if t is type(None):
            words.append('None')
        elif t is bool:
            words.append('True or False')
        elif t in (int, float, str):
            words.append({int: 'an int', float: 'a number', str: 'a string'}[t])
        else:
            args = typing.get_args(t)
            if len(args) == 2 and args[1] is Ellipsis:
                words.append(f'a tuple of {_describe([args[0]]).split(" ", 1)[1]}s')
            elif args and len(set(args)) == 1:
                words.append(f'a tuple of {len(args)} {_describe([args[0]]).split(" ", 1)[1]}s')
            else:
                words.append('a tuple')
    return ' or '.join(words)


def _describe_value(value: Any) -> str:
    if isinstance(value, str):
        return f'the text {value!r}'
    return f'{_describe([type(value)]) if type(value) in (bool, int, float) else type(value).__name__}'


_EXAMPLES: Dict[Any, Callable[[str], str]] = {
    int: lambda key: '224' if key == 'img_size' else '7',
    float: lambda key: '0.1' if key.endswith('_rate') else '2.0',
    bool: lambda key: 'True',
    str: lambda key: "'avg'" if key == 'global_pool' else "'performer'" if key == 't2t_layer' else "'name'",
}


def _example(key: str, types: Sequence[Any]) -> str:
    for t in types:
        if t in _EXAMPLES:
            return _EXAMPLES[t](key)
    return '(1, 2)'


def _out_of_range(key: str, value: Any) -> Optional[str]:
    """Counts are positive (num_classes may be 0), rates lie in [0, 1), sizes and ratios are positive."""
    numbers = list(value) if isinstance(value, (tuple, list)) else [value]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
        return None
    if key.endswith('_rate'):
        return None if all(0 <= v < 1 for v in numbers) else f'{key} is a dropout rate: at least 0 and below 1'
    if key == 'num_classes':
        return None if all(v >= 0 for v in numbers) else 'num_classes is at least 0 (0: no classifier)'
    if key == 'out_indices':
        return None  # negative indices count from the end
    return None if all(v > 0 for v in numbers) else f'{key} must be positive'
