"""Reading and checking T2T-ViT checkpoints, and the errors of the weights code.

* `read_checkpoint`: official release files (`.pth.tar` pickles holding tensors and an `argparse.Namespace`) are read
  with `torch.load(weights_only=True)`, `argparse.Namespace` allow-listed; no code from a pickle ever runs.
* `check_state_dict`: a filtered state dict against a model, with a message that names what differs and what to do.

No import of the model module: the loading code (imported by it) builds on this one. Files that are not checkpoints
at all (JSON, text, images, archives, empty files) are named as such, by `file_kinds`.
"""
import argparse
import hashlib
import os
import pickle
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import safetensors.torch
import torch
import torch.nn as nn

from .file_kinds import CHECKPOINT_TIP, is_t2t_state_dict, sniff_weights_file, summarize_keys

__all__ = [
    'PretrainedWeightsError', 'DownloadError', 'ChecksumError', 'CheckpointMismatchError',
    'read_checkpoint', 'check_state_dict', 'describe_layout', 'file_digest', 'first_line',
]

PathLike = Union[str, os.PathLike]


class PretrainedWeightsError(RuntimeError):
    """Weights could not be downloaded, verified, converted or loaded; the message says why and what to do."""


class DownloadError(PretrainedWeightsError):
    """A download failed or was cut short; nothing partial is left in the cache."""


class ChecksumError(DownloadError):
    """Downloaded bytes differ from the published checksum or size; the bad copy is removed."""


class CheckpointMismatchError(PretrainedWeightsError):
    """A checkpoint does not fit the model: other architecture, missing or extra tensors."""


# --------------------------------------------------------------------------------------------------------------------
# Reading and checking checkpoints


def read_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read a checkpoint without running code from it.

    `.safetensors` files are read as such; anything else with `torch.load(weights_only=True)`, allowing
    `argparse.Namespace` (the `args` entry of timm 0.3.4 training checkpoints, i.e. the official release files).

    Args:
        path: Checkpoint file.

    Returns:
        The loaded object: a state dict, or a checkpoint dict (`state_dict_ema`, `state_dict`, `args`, ...).

    Raises:
        FileNotFoundError: `path` is not a file.
        PretrainedWeightsError: The file is truncated, corrupted, not a checkpoint, or would need arbitrary code. For
            bytes that do not form a checkpoint (damaged, or another kind of file) its `__cause__` says why; a
            readable file that is refused has none.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'Checkpoint {path} does not exist or is not a file: check the path.')
    size = path.stat().st_size
    kind = sniff_weights_file(path)
    if kind is not None:  # JSON, text, an image, an archive, ...: say so instead of what the unpickler makes of it
        raise PretrainedWeightsError(kind.message(path)) from ValueError(f'it is {kind.what}')
    try:
        if path.suffix == '.safetensors':
            obj = safetensors.torch.load_file(str(path), device='cpu')
        else:
            if not hasattr(torch.serialization, 'safe_globals'):
                raise PretrainedWeightsError(
                    f'Reading {path} safely needs torch >= 2.5 (torch.serialization.safe_globals); this is torch '
                    f'{torch.__version__}. Upgrade torch, or convert the file once on a machine that has it.')
            with torch.serialization.safe_globals([argparse.Namespace]):
                obj = torch.load(path, map_location='cpu', weights_only=True)
    except PretrainedWeightsError:
        raise
    except pickle.UnpicklingError as e:
        if 'weights_only' in str(e) or 'Unsupported global' in str(e):
            found = _unsafe_globals(path)
            raise PretrainedWeightsError(
                f'{path} was refused: it pickles Python objects beyond tensors and an argparse.Namespace'
                f'{" (" + ", ".join(found) + ")" if found else ""}, and unpickling them could run arbitrary code. '
                f'Official release checkpoints and safetensors files load; re-save other checkpoints as a plain '
                f'state dict (or safetensors) from a trusted environment.') from None
        raise _unreadable(path, size, e) from e
    except Exception as e:  # zip / pickle / safetensors format errors: the bytes are wrong
        raise _unreadable(path, size, e) from e
    if not isinstance(obj, dict):
        raise PretrainedWeightsError(
            f'{path} holds a {type(obj).__name__}, not a state dict or checkpoint dict: pass a T2T-ViT checkpoint.')
    return obj


def _unreadable(path: Path, size: int, error: BaseException) -> PretrainedWeightsError:
    text = first_line(error)
    # The loaders' messages can be bare internal codes (a KeyError '101' from the unpickler): only words are shown.
    detail = f' ({text})' if re.search(r'[A-Za-z]{3,}', text) and len(text) <= 200 else ''
    return PretrainedWeightsError(
        f'{path} ({size:,} bytes) is not a readable checkpoint{detail}: it is probably truncated or corrupted. '
        f'Download it again and compare its sha256 with the source; pass {CHECKPOINT_TIP}.')


def _unsafe_globals(path: Path) -> List[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # older torch, or not a zip checkpoint
        return []


def _classifier_names(model: nn.Module) -> Tuple[str, ...]:
    classifier = (getattr(model, 'pretrained_cfg', None) or {}).get('classifier') or 'head'
    return (classifier,) if isinstance(classifier, str) else tuple(classifier)


def describe_layout(shapes: Dict[str, Sequence[int]]) -> str:
    """Short description of a T2T-ViT state dict: stem type, width, depth, classes, aux head; for a state dict of
    another model family, its key prefixes and classes."""
    if not is_t2t_state_dict(shapes):
        classes = _classes_of_foreign(shapes)
        return f'no T2T-ViT tensors but {summarize_keys(shapes)}' + (f', {classes} classes' if classes else '')
    stem = 'performer' if 'patch_embed.attn1.kqv.weight' in shapes else (
        'transformer' if 'patch_embed.attn1.attn.qkv.weight' in shapes else 'unknown')
    width = shapes['cls_token'][-1] if 'cls_token' in shapes else '?'
    depth = len({k.split('.')[1] for k in shapes if k.startswith('blocks.')})
    classes = shapes['head.weight'][0] if 'head.weight' in shapes else 0
    aux = ', aux_head' if 'aux_head.weight' in shapes else ''
    return f'{stem} stem, embed_dim {width}, depth {depth}, {classes} classes{aux}'


def _classes_of_foreign(shapes: Dict[str, Sequence[int]]) -> Optional[int]:
    """The class count of another family's classifier (`fc`, `head`, `classifier`, ...), when it has a usual one."""
    for name in ('fc', 'head', 'head.fc', 'classifier', 'last_linear', 'heads.head'):
        for key in (f'{name}.weight', f'module.{name}.weight'):
            if len(shapes.get(key, ())) == 2:
                return shapes[key][0]
    return None


def check_state_dict(state_dict: Dict[str, torch.Tensor], model: nn.Module, source: str) -> None:
    """Check that a filtered state dict fits `model` exactly, as a strict load needs.

    Classifier tensors are skipped when the model's class count differs from its pretrained cfg's, since timm drops
    them then.

    Args:
        state_dict: State dict in this package's layout (after `checkpoint_filter_fn`).
        model: Target model.
        source: Where the weights came from, for the message.

    Raises:
        CheckpointMismatchError: Missing, unexpected or differently sized tensors, with examples and what to do.
    """
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state_dict.items()}
    skip: Tuple[str, ...] = ()
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    if getattr(model, 'num_classes', None) != cfg.get('num_classes', getattr(model, 'num_classes', None)):
        skip = tuple(f'{c}.' for c in _classifier_names(model))
    missing = [k for k in expected if k not in found and not k.startswith(skip)]
    unexpected = [k for k in found if k not in expected and not k.startswith(skip)]
    resized = [k for k in expected if k in found and found[k] != expected[k] and not k.startswith(skip)]
    if not (missing or unexpected or resized):
        return
    arch = cfg.get('architecture') or type(model).__name__
    parts = []
    if resized:
        k = resized[0]
        parts.append(f'{len(resized)} tensors differ in size, e.g. {k}: model {expected[k]}, checkpoint {found[k]}')
    if missing:
        parts.append(f'{len(missing)} model tensors are missing from the checkpoint, e.g. {", ".join(missing[:3])}')
    if unexpected:
        parts.append(f'{len(unexpected)} checkpoint tensors have no place in the model, e.g. '
                     f'{", ".join(unexpected[:3])}')
    if not is_t2t_state_dict(found):
        todo = ('it is not a T2T-ViT checkpoint; pass a T2T-ViT checkpoint (`timm-t2t list` names the released '
                'ones), or load this file with the timm model it was saved from')
    elif not missing and not resized and all(k.startswith('aux_head.') for k in unexpected):
        todo = ("it carries the token-labeling auxiliary head (aux_head): load it as 't2t_vit_24.tl_in1k' "
                "or pass use_aux_head=True to keep it")
    elif not unexpected and not resized and all(k.startswith('aux_head.') for k in missing):
        todo = 'it has no auxiliary head: build the model with use_aux_head=False'
    else:
        todo = ('load it into the architecture it was trained for (same stem, embed_dim and depth): another '
                't2t_vit_* name, or a depth override')
    raise CheckpointMismatchError(
        f'{source} does not fit {arch} ({describe_layout(expected)}); the checkpoint has '
        f'{describe_layout(found)}: {"; ".join(parts)}. To fix: {todo}.')



def file_digest(path: PathLike, algorithm: str = 'sha256') -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type name when empty), for one-line errors that wrap it."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
