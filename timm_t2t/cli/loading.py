"""The model of a `timm-t2t` command: from a name and pretrained tag, from a `--weights` checkpoint file or folder, or
with random weights (`--no-pretrained`).

Everything that can be checked before the model is built is: the weights file (what it is, when not a checkpoint;
its family), the name and tag, `--model-kwargs` (`model_options`), and for `predict` that the classifier comes from
the weights. Free of torch and timm at module level: they are imported when a model is loaded;
`check_weights_argument` needs neither.
"""
import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from ..weights.file_kinds import (
    CHECKPOINT_TIP, checkpoint_shapes, is_t2t_state_dict, sniff_weights_file, summarize_keys)
from .errors import CliError, one_line
from .model_options import check_model_kwargs, is_t2t_name

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = ['load_model', 'check_weights_argument', 'check_model_without_torch']

Shapes = Dict[str, Tuple[int, ...]]


def _check_model_name(name: str, needs_released_weights: bool) -> None:
    """Fail with a helpful line for unknown models, unknown tags, and weightless architectures without --weights."""
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    arch, tag = split_model_name_tag(name)
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models('t2t_vit*') or timm.list_models(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        raise CliError(
            f"unknown model '{name}'{hint}: run `timm-t2t list` for the T2T-ViT names (any timm model name works too).")
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:  # timm: "Invalid pretrained tag"
        tags = ', '.join(timm.list_pretrained(f'{arch}.*')) or 'none'
        raise CliError(f"'{arch}' has no pretrained tag '{tag}': use one of {tags}.") from None
    if needs_released_weights and not (cfg and cfg.has_weights):
        raise CliError(f"'{name}' has no released weights: pass --weights FILE with a checkpoint trained for it, or "
                       f"--no-pretrained for random weights.")


def _weights_file(weights: str) -> Path:
    """The checkpoint file a --weights argument names (a file, or a folder written by timm's `save_for_hf`)."""
    path = Path(weights)
    if path.is_dir():
        for filename in ('model.safetensors', 'pytorch_model.bin'):
            if (path / filename).is_file():
                return path / filename
        raise CliError(f'{weights} is a folder without model.safetensors or pytorch_model.bin: pass the checkpoint '
                       f'file itself, or a folder written by timm.models.save_for_hf.')
    if not path.is_file():
        raise CliError(f'{weights}: no such checkpoint file; check the path (.safetensors, .pth, .pth.tar, or a '
                       f'save_for_hf folder).')
    kind = sniff_weights_file(path)
    if kind is not None:  # JSON, text, an image, an archive, an empty file: say what it is and what to pass
        raise CliError(kind.message(weights if path == Path(weights) else path))
    return path


def check_weights_argument(weights: Optional[str], pretrained: bool = True) -> None:
    """Check `--weights` (and `--no-pretrained`) before torch is imported: the file exists and may be a checkpoint.

    Raises:
        CliError: `--weights` with `--no-pretrained`; a missing file; a folder without weights; a file that is not a
            checkpoint (JSON, text, an image, an archive, empty), named as such.
    """
    if weights is None:
        return
    if not pretrained:
        raise CliError(f'--weights {weights} loads a checkpoint and --no-pretrained asks for random weights: give '
                       f'one of them.')
    _weights_file(weights)


def _checkpoint_shapes(path: Path) -> Shapes:
    """Tensor shapes of a checkpoint, in its own key names (safetensors: header only)."""
    if path.suffix == '.safetensors':
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework='pt') as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error type for a bad header
            raise CliError(f'{path} is not a readable safetensors file ({one_line(e)}): it is probably truncated '
                           f'or corrupted; download or save it again, or pass {CHECKPOINT_TIP}.') from e
    from ..weights.checkpoint_io import read_checkpoint  # no code from a pickle runs
    obj = read_checkpoint(path)
    for key in ('state_dict_ema', 'model_ema', 'state_dict', 'model'):  # the layouts checkpoint_filter_fn accepts
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    return {k[len('module.'):] if k.startswith('module.') else k: tuple(v.shape)
            for k, v in obj.items() if hasattr(v, 'shape')}


def _is_t2t(name: str) -> bool:
    return is_t2t_name(name)


def check_model_without_torch(name: Optional[str], weights: Optional[str], kwargs: Dict[str, Any],
                              features_only: bool = False, classifier: bool = False) -> None:
    """The checks of `load_model` that a T2T-ViT name allows before torch is imported, in the same order and words.

    `--model-kwargs` against the constructor's signature (read from source); with `--weights`, the checkpoint's keys
    (another family's) and its classifier against a `num_classes` override, from names and shapes read without
    torch. Anything this cannot tell (another family's model, a save_for_hf folder with its config, a file format
    read only by torch, a pretrained tag's classes) is left to `load_model`, which repeats these checks.

    Args:
        name: `--model` (None, a `hf-hub:`/`local-dir:` name or another family: nothing checked here).
        weights: `--weights`, already checked by `check_weights_argument`.
        kwargs: `--model-kwargs`.
        features_only: The command builds the feature extractor.
        classifier: The command shows classes (`predict`).

    Raises:
        CliError: As `load_model` would, for the cases above.
    """
    if name is None or name.partition(':')[1] or not is_t2t_name(name):
        return
    path = _weights_file(weights) if weights is not None else None
    if path is not None and (path.parent / 'config.json').is_file():
        return  # the config beside it may name another architecture and bring model args: load_model decides
    check_model_kwargs(name, kwargs, features=features_only)
    if path is None:
        if classifier:  # the classes of a pretrained tag need timm: only num_classes=0 is refused here
            _check_classifier(kwargs, None, f'pretrained {name}')
        return
    shapes = checkpoint_shapes(path)
    if shapes is None:  # a format only torch reads
        return
    _check_family(name, weights, shapes)
    if classifier:
        # T2T-ViT's pretrained cfg names `head` as its (first) classifier, which _head_classes reads through timm.
        head = shapes.get('head.weight')
        _check_classifier(kwargs, (head[0] if head and len(head) == 2 else None) or 0, weights)


def _head_classes(name: str, shapes: Shapes) -> Optional[int]:
    """Classes of the checkpoint's classifier (the pretrained cfg names its key), None when it has none."""
    from timm.models import resolve_pretrained_cfg

    classifier = resolve_pretrained_cfg(name).to_dict().get('classifier') or 'head'
    head = shapes.get(f'{classifier if isinstance(classifier, str) else classifier[0]}.weight')
    return head[0] if head and len(head) == 2 else None


def _check_family(name: str, weights: str, shapes: Shapes) -> None:
    """A T2T-ViT model needs a T2T-ViT checkpoint: name what another family's keys look like, before any build."""
    if _is_t2t(name) and not is_t2t_state_dict(shapes):
        raise CliError(f'{weights} is not a T2T-ViT checkpoint: it has {summarize_keys(shapes)}. --model {name} '
                       f'needs T2T-ViT weights (the released ones: `timm-t2t list`, loaded without --weights); load '
                       f'this file with the timm model it was saved from, or --no-pretrained for random weights.')


def _overlay_from_shapes(name: str, shapes: Shapes) -> Dict[str, Any]:
    """Pretrained-cfg overrides so that a checkpoint without a config loads whole: its class count and resolution.

    timm drops the head when `num_classes` differs from the pretrained cfg's, so a fine-tuned head (say 10 classes)
    must be declared in the overlay to be loaded rather than silently replaced by a random one.
    """
    from timm.models import resolve_pretrained_cfg

    cfg = resolve_pretrained_cfg(name).to_dict()
    overlay: Dict[str, Any] = {}
    classes = _head_classes(name, shapes)
    if classes is not None and classes != cfg.get('num_classes'):
        overlay['num_classes'] = classes
    pos = shapes.get('pos_embed')
    if _is_t2t(name) and pos and len(pos) == 3:
        # T2T-ViT: a class token plus one token per 16 x 16 pixels
        side = int(round((pos[1] - 1) ** 0.5))
        size = (cfg['input_size'][0], 16 * side, 16 * side)
        if side * side == pos[1] - 1 and size != tuple(cfg['input_size']):
            overlay['input_size'] = size
    return overlay


def load_model(
        name: Optional[str],
        weights: Optional[str] = None,
        features_only: bool = False,
        pretrained: bool = True,
        classifier: bool = False,
        **kwargs: Any,
) -> 'nn.Module':
    """Create a model for the command line, in eval mode, with its weights.

    Args:
        name: Model name (`arch`, `arch.tag`, or timm's `hf-hub:` / `local-dir:` forms). May be None when `weights`
            has a `config.json` beside it (timm's `save_for_hf` layout), which then names the architecture.
        weights: Checkpoint file or `save_for_hf` folder, loaded through `timm.create_model(..., pretrained=True,
            pretrained_cfg_overlay=dict(file=...))` and the checkpoint filter; None loads the pretrained tag.
        features_only: Build the feature extractor (every tap when `out_indices` is not given).
        pretrained: False: random weights, nothing downloaded or read (`--no-pretrained`); `weights` must be None.
        classifier: The caller shows classes (`predict`): refuse a classifier that the weights do not bring (a
            `num_classes` override makes a new, random one; `num_classes=0` none at all).
        **kwargs: More `timm.create_model` arguments (`--model-kwargs`), checked before the model is built.

    Returns:
        The model.

    Raises:
        CliError: Unknown model or tag; a missing file or one that is not a checkpoint; a checkpoint of another
            family, or whose config names another architecture; bad `--model-kwargs`; a classifier that would be
            random; a model that cannot be built with the given arguments.
    """
    import timm
    from timm.models import split_model_name_tag

    user_kwargs = dict(kwargs)
    overlay: Dict[str, Any] = {}
    shapes: Shapes = {}
    trained_classes: Optional[int] = None  # classes of the classifier the weights bring
    if weights is not None:
        check_weights_argument(weights, pretrained)
        path = _weights_file(weights)
        if (path.parent / 'config.json').is_file():
            # timm's own export layout: architecture, model args, preprocessing and label names.
            from timm.models._hub import load_model_config_from_path  # what create_model('local-dir:...') uses
            cfg, arch, model_args = load_model_config_from_path(path.parent)
            if name is None:
                name = arch
            elif split_model_name_tag(name)[0] != arch:
                raise CliError(f'{weights} was saved from {arch} (see config.json beside it), not {name}: pass '
                               f'--model {arch}, or no --model.')
            overlay.update({k: v for k, v in cfg.items() if k not in ('file', 'source', 'hf_hub_id', 'url')})
            kwargs = {**model_args, **kwargs}
        elif name is None:
            raise CliError(f'--model is required: {weights} has no config.json beside it to name the architecture.')
        if name.partition(':')[1]:
            raise CliError(f'--weights cannot be combined with a hf-hub:/local-dir: model name ({name}): give one.')
        _check_model_name(name, needs_released_weights=False)
        check_model_kwargs(name, user_kwargs, features=features_only)
        shapes = _checkpoint_shapes(path)
        _check_family(name, weights, shapes)
        trained_classes = _head_classes(name, shapes) or 0
        if not overlay:
            overlay = _overlay_from_shapes(name, shapes)
        overlay['file'] = str(path)
    elif name is None:
        raise CliError('--model is required: a name from `timm-t2t list`, e.g. --model t2t_vit_14.')
    else:
        if not name.partition(':')[1]:
            _check_model_name(name, needs_released_weights=pretrained)
        check_model_kwargs(name, user_kwargs, features=features_only)
        if pretrained and not name.partition(':')[1]:
            trained_classes = timm.models.get_pretrained_cfg(name).num_classes
    if classifier:
        _check_classifier(user_kwargs, trained_classes, weights or f'pretrained {name}')
    try:
        if features_only and 'out_indices' not in kwargs:
            # Every tap (the model's default is the last 3; create_model drops out_indices=None): count them on meta.
            import torch
            with torch.device('meta'):
                num_taps = len(timm.create_model(name, pretrained_cfg_overlay=overlay or None, **kwargs).feature_info)
            kwargs['out_indices'] = tuple(range(num_taps))
        model = timm.create_model(
            name, pretrained=pretrained, pretrained_cfg_overlay=overlay or None, features_only=features_only,
            **kwargs)
    except Exception as e:
        error = _build_error(e, name, weights, user_kwargs, shapes)
        if error is e:
            raise
        raise error from e
    return model.eval()


def _check_classifier(kwargs: Dict[str, Any], trained_classes: Optional[int], source: str) -> None:
    """For `predict`: the classifier must come from the weights, or the classes shown are random."""
    requested = kwargs.get('num_classes')
    if requested == 0:
        raise CliError('--model-kwargs num_classes=0 removes the classifier, so there are no classes to predict: '
                       'run `timm-t2t features` for the features, or drop num_classes.')
    if trained_classes is None or requested is None or requested == trained_classes:
        return
    if trained_classes == 0:
        raise CliError(f'{source} has no classifier, so --model-kwargs num_classes={requested} would make a new '
                       f'one with random weights and random classes: run `timm-t2t features` for the features.')
    raise CliError(f'--model-kwargs num_classes={requested}: {source} has a classifier of {trained_classes} '
                   f'classes, so the model would get a new, randomly initialised head and its {requested} classes '
                   f'would be random. Drop num_classes to predict the {trained_classes} trained classes, or run '
                   f'`timm-t2t features` for the features.')


def _build_error(error: Exception, name: str, weights: Optional[str], kwargs: Dict[str, Any],
                 shapes: Shapes) -> Exception:
    """The error to report for a failed build: one line for the user's mistakes, the original otherwise."""
    from ..weights.checkpoint_io import DownloadError, PretrainedWeightsError

    if weights is None and isinstance(error, DownloadError):
        return CliError(f'{one_line(error)} On the command line: --weights FILE, or --no-pretrained to try the '
                        f'command with random weights.')
    if isinstance(error, (CliError, PretrainedWeightsError)):
        return error
    text = one_line(error)
    text = text if len(text) <= 300 else text[:297] + '...'
    if weights is not None and 'state_dict' in text:  # another family's model with load_state_dict's own error
        return CliError(f'{weights} does not fit {name} (the checkpoint has {summarize_keys(shapes)}): {text}')
    if kwargs and isinstance(error, (TypeError, ValueError, AssertionError, RuntimeError)):
        given = ' '.join(f'{k}={v!r}' for k, v in kwargs.items())
        return CliError(f'{name} cannot be built with --model-kwargs {given}: {text}')
    return error
