"""The model of a `timm-t2t` command: from a name and pretrained tag, or from a `--weights` checkpoint file or folder.

Free of torch and timm at module level: they are imported when a model is loaded.
"""
import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from .errors import CliError, one_line

if TYPE_CHECKING:
    import torch.nn as nn

__all__ = ['load_model']


def _check_model_name(name: str, has_weights_file: bool) -> None:
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
    if not has_weights_file and not (cfg and cfg.has_weights):
        raise CliError(f"'{name}' has no released weights: pass --weights FILE with a checkpoint trained for it.")


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
    return path


def _checkpoint_shapes(path: Path) -> Dict[str, Tuple[int, ...]]:
    """Tensor shapes of a checkpoint, in its own key names (safetensors: header only)."""
    if path.suffix == '.safetensors':
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework='pt') as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error type for a bad header
            raise CliError(f'{path} is not a readable safetensors file ({one_line(e)}): it is probably truncated '
                           f'or not a checkpoint; download or save it again.') from e
    from ..weights.checkpoint_io import read_checkpoint  # no code from a pickle runs
    obj = read_checkpoint(path)
    for key in ('state_dict_ema', 'model_ema', 'state_dict', 'model'):  # the layouts checkpoint_filter_fn accepts
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    return {k[len('module.'):] if k.startswith('module.') else k: tuple(v.shape)
            for k, v in obj.items() if hasattr(v, 'shape')}


def _overlay_from_shapes(name: str, path: Path) -> Dict[str, Any]:
    """Pretrained-cfg overrides so that a checkpoint without a config loads whole: its class count and resolution.

    timm drops the head when `num_classes` differs from the pretrained cfg's, so a fine-tuned head (say 10 classes)
    must be declared in the overlay to be loaded rather than silently replaced by a random one.
    """
    import timm
    from timm.models import resolve_pretrained_cfg, split_model_name_tag

    cfg = resolve_pretrained_cfg(name).to_dict()
    shapes = _checkpoint_shapes(path)
    overlay: Dict[str, Any] = {}
    classifier = cfg.get('classifier') or 'head'
    head = shapes.get(f'{classifier if isinstance(classifier, str) else classifier[0]}.weight')
    if head and len(head) == 2 and head[0] != cfg.get('num_classes'):
        overlay['num_classes'] = head[0]
    pos = shapes.get('pos_embed')
    is_t2t = split_model_name_tag(name)[0] in timm.list_models(module='t2t_vit')
    if is_t2t and pos and len(pos) == 3:
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
        **kwargs: Any,
) -> 'nn.Module':
    """Create a model for the command line, in eval mode, with its weights.

    Args:
        name: Model name (`arch`, `arch.tag`, or timm's `hf-hub:` / `local-dir:` forms). May be None when `weights`
            has a `config.json` beside it (timm's `save_for_hf` layout), which then names the architecture.
        weights: Checkpoint file or `save_for_hf` folder, loaded through `timm.create_model(..., pretrained=True,
            pretrained_cfg_overlay=dict(file=...))` and the checkpoint filter; None loads the pretrained tag.
        features_only: Build the feature extractor (every tap when `out_indices` is not given).
        **kwargs: More `timm.create_model` arguments.

    Returns:
        The model.

    Raises:
        CliError: Unknown model or tag, missing file, or a checkpoint config naming another architecture.
    """
    import timm
    from timm.models import split_model_name_tag

    overlay: Dict[str, Any] = {}
    if weights is not None:
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
        _check_model_name(name, has_weights_file=True)
        if not overlay:
            overlay = _overlay_from_shapes(name, path)
        overlay['file'] = str(path)
    elif name is None:
        raise CliError('--model is required: a name from `timm-t2t list`, e.g. --model t2t_vit_14.')
    elif not name.partition(':')[1]:
        _check_model_name(name, has_weights_file=False)
    if features_only and 'out_indices' not in kwargs:
        # Every tap (the model's default is the last 3; create_model drops out_indices=None): count them on meta.
        import torch
        with torch.device('meta'):
            num_taps = len(timm.create_model(name, pretrained_cfg_overlay=overlay or None, **kwargs).feature_info)
        kwargs['out_indices'] = tuple(range(num_taps))
    try:
        model = timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay=overlay or None, features_only=features_only, **kwargs)
    except Exception as e:
        from ..weights.checkpoint_io import DownloadError
        if weights is None and isinstance(e, DownloadError):
            raise CliError(f'{one_line(e)} On the command line: --weights FILE.') from e
        raise
    return model.eval()
