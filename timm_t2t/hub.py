"""Pretrained T2T-ViT weights: safe checkpoint reading, conversion with proof, Hub publishing, download fallback.

* `read_checkpoint`: official release files (`.pth.tar` pickles holding tensors and an `argparse.Namespace`) are read
  with `torch.load(weights_only=True)`, `argparse.Namespace` allow-listed; no code from a pickle ever runs.
* `convert_checkpoint`: official checkpoint -> Hub-ready folder (`model.safetensors` in this package's key layout,
  `config.json` written by timm's `save_for_hf`, `README.md` model card). The converted folder is loaded back through
  timm and must reproduce the original's logits within 1e-4 before anything is moved into place.
* `push_folder` / `publish_all`: upload a folder (or all 11 released checkpoints) with `huggingface_hub`.
* `build_pretrained`: what `pretrained=True` runs. Hub first, through timm's own loader; when the Hub repo of a tag
  does not exist, the official release file is downloaded (atomic, locked, checksummed when known) and converted on
  load by `checkpoint_filter_fn`.
* `configure_*_parser` / `run_*`: the `timm-t2t convert` and `timm-t2t push` commands.
"""
import argparse
import ast
import hashlib
import logging
import os
import pickle
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlparse

import safetensors.torch
import torch
import torch.nn as nn
from filelock import FileLock, Timeout
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData, constants, try_to_load_from_cache
from huggingface_hub.file_download import http_get, repo_folder_name
from huggingface_hub.utils import (
    EntryNotFoundError,
    GatedRepoError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    are_progress_bars_disabled,
    disable_progress_bars,
    enable_progress_bars,
)
from huggingface_hub.utils import tqdm as hf_tqdm

import timm
from timm.models import resolve_pretrained_cfg, save_for_hf, split_model_name_tag

from .t2t_vit import HF_HUB_NAMESPACE, checkpoint_filter_fn, default_cfgs

__all__ = [
    'PretrainedWeightsError', 'DownloadError', 'ChecksumError', 'CheckpointMismatchError',
    'read_checkpoint', 'check_state_dict', 'download_release', 'release_urls', 'build_pretrained',
    'convert_checkpoint', 'ConversionResult', 'push_folder', 'publish_all',
    'configure_convert_parser', 'run_convert', 'configure_push_parser', 'run_push',
]

_logger = logging.getLogger(__name__)

TOLERANCE = 1e-4  # max |logit difference| a conversion may show
HUB_FILES = ('model.safetensors', 'config.json', 'README.md')

# Release files with a published size and checksum: OpenVINO's Open Model Zoo pins the 81.5 file
# (models/public/t2t-vit-14/model.yml). Downloads of any file listed here are verified.
RELEASE_CHECKSUMS: Dict[str, Dict[str, Any]] = {
    '81.5_T2T_ViT_14.pth.tar': dict(
        size=86_212_823,
        sha384='98c8ae06a1e9997f3e83ad2dfbac49985bf7bd7723eb64e4b8462338163be02657998f0bd9f8997367417003caeaf7a1',
    ),
}

# ImageNet-1k val accuracy for the model cards: top-1 as reported in the official README, top-5 re-measured from the
# same weights by timm PR #2426 (crop 0.9, bicubic) and PaddleViT (384, crop 1.0); no third-party top-5 exists for the
# token-labeling weights.
RELEASE_ACCURACY: Dict[str, Tuple[float, Optional[float]]] = {
    't2t_vit_7.in1k': (71.7, 90.886),
    't2t_vit_10.in1k': (75.2, 92.806),
    't2t_vit_12.in1k': (76.5, 93.484),
    't2t_vit_14.in1k': (81.5, 95.666),
    't2t_vit_14.in1k_384': (83.3, 96.50),
    't2t_vit_19.in1k': (81.9, 95.744),
    't2t_vit_24.in1k': (82.3, 95.886),
    't2t_vit_24.tl_in1k': (84.2, None),
    't2t_vit_t_14.in1k': (81.7, 95.852),
    't2t_vit_t_19.in1k': (82.4, 96.082),
    't2t_vit_t_24.in1k': (82.6, 96.064),
}

_SHA256 = re.compile(r'[0-9a-f]{64}')
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
        PretrainedWeightsError: The file is truncated, corrupted, not a checkpoint, or would need arbitrary code.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'Checkpoint {path} does not exist or is not a file: check the path.')
    size = path.stat().st_size
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
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return PretrainedWeightsError(
        f'{path} ({size:,} bytes) is not a readable checkpoint ({first_line}): it is probably truncated or corrupted. '
        f'Download it again and compare its sha256 with the source.')


def _unsafe_globals(path: Path) -> List[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # older torch, or not a zip checkpoint
        return []


def _classifier_names(model: nn.Module) -> Tuple[str, ...]:
    classifier = (getattr(model, 'pretrained_cfg', None) or {}).get('classifier') or 'head'
    return (classifier,) if isinstance(classifier, str) else tuple(classifier)


def _describe_layout(shapes: Dict[str, Sequence[int]]) -> str:
    """Short description of a T2T-ViT state dict: stem type, width, depth, classes, aux head."""
    stem = 'performer' if 'patch_embed.attn1.kqv.weight' in shapes else (
        'transformer' if 'patch_embed.attn1.attn.qkv.weight' in shapes else 'unknown')
    width = shapes['cls_token'][-1] if 'cls_token' in shapes else '?'
    depth = len({k.split('.')[1] for k in shapes if k.startswith('blocks.')})
    classes = shapes['head.weight'][0] if 'head.weight' in shapes else 0
    aux = ', aux_head' if 'aux_head.weight' in shapes else ''
    return f'{stem} stem, embed_dim {width}, depth {depth}, {classes} classes{aux}'


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
    if not missing and not resized and all(k.startswith('aux_head.') for k in unexpected):
        todo = ("it carries the token-labeling auxiliary head (aux_head): load it as 't2t_vit_24.tl_in1k' "
                "or pass use_aux_head=True to keep it")
    elif not unexpected and not resized and all(k.startswith('aux_head.') for k in missing):
        todo = 'it has no auxiliary head: build the model with use_aux_head=False'
    else:
        todo = ('load it into the architecture it was trained for (same stem, embed_dim and depth): another '
                't2t_vit_* name, or a depth override')
    raise CheckpointMismatchError(
        f'{source} does not fit {arch} ({_describe_layout(expected)}); the checkpoint has '
        f'{_describe_layout(found)}: {"; ".join(parts)}. To fix: {todo}.')


# --------------------------------------------------------------------------------------------------------------------
# Downloads


def release_urls() -> Dict[str, str]:
    """`arch.tag` -> official release URL, for every pretrained cfg that has one (the 11 released checkpoints)."""
    return {
        f'{arch}.{tag}': cfg.url
        for arch, default_cfg in default_cfgs.items()
        for tag, cfg in default_cfg.cfgs.items()
        if cfg.url
    }


def _file_digest(path: PathLike, algorithm: str = 'sha256') -> str:
    h = hashlib.new(algorithm)
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def _release_cache_dir(cache_dir: Optional[PathLike]) -> Path:
    # Same place timm's `url` source caches to (`<torch hub dir>/checkpoints`, or `cache_dir` as given).
    return Path(cache_dir) if cache_dir else Path(torch.hub.get_dir()) / 'checkpoints'


def cached_release(url: str, cache_dir: Optional[PathLike] = None) -> Optional[Path]:
    """The cached copy of a release file, or None."""
    path = _release_cache_dir(cache_dir) / os.path.basename(urlparse(url).path)
    return path if path.is_file() else None


def download_release(url: str, cache_dir: Optional[PathLike] = None, progress: Optional[bool] = None) -> Path:
    """Download a release file into the cache, once, atomically.

    The file is written under a unique temporary name and renamed into place only when complete (and matching
    `RELEASE_CHECKSUMS` when listed); a file lock makes concurrent processes wait for the first download. The
    progress bar is huggingface_hub's: off when not a terminal, when `HF_HUB_DISABLE_PROGRESS_BARS=1`, or with
    `progress=False`.

    Args:
        url: File URL.
        cache_dir: Directory to cache into; default `<torch hub dir>/checkpoints`, where timm caches URLs.
        progress: Force the progress bar off (False); None leaves huggingface_hub's setting.

    Returns:
        Path of the cached file.

    Raises:
        DownloadError: Offline without a cached copy, unreachable server, HTTP error or cut-short transfer.
        ChecksumError: Size or checksum differ from `RELEASE_CHECKSUMS`.
    """
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise DownloadError(f'{url} does not name a file to download.')
    folder = _release_cache_dir(cache_dir)
    dest = folder / name
    if dest.is_file():
        return dest
    if constants.HF_HUB_OFFLINE:
        raise DownloadError(
            f'HF_HUB_OFFLINE=1 and {name} is not cached in {folder}: load it once online, copy the file there, or '
            f'pass pretrained_cfg_overlay=dict(file=PATH).')
    folder.mkdir(parents=True, exist_ok=True)
    known = RELEASE_CHECKSUMS.get(name, {})
    with FileLock(str(dest) + '.lock'):
        if dest.is_file():  # another process finished it while we waited
            return dest
        tmp = folder / f'.{name}.{uuid.uuid4().hex[:8]}.partial'
        quiet = progress is False and not are_progress_bars_disabled()
        try:
            if quiet:
                disable_progress_bars()
            with open(tmp, 'wb') as f:
                # huggingface_hub's downloader: checks the received size against Content-Length, resumes cut
                # transfers, shows its progress bar; urllib (torch.hub) would accept a short body silently.
                http_get(url, f, expected_size=known.get('size'), displayed_filename=name)
            _verify_release(tmp, name, url, known)
            os.replace(tmp, dest)
        except PretrainedWeightsError:
            raise
        except Exception as e:
            raise DownloadError(
                f'Downloading {url} failed ({type(e).__name__}: {_first_line(e)}); nothing was kept in {folder}. '
                f'Check the connection and retry, or download the file yourself and pass '
                f'pretrained_cfg_overlay=dict(file=PATH).') from e
        finally:
            if quiet:
                enable_progress_bars()
            tmp.unlink(missing_ok=True)
    return dest


def _verify_release(path: Path, name: str, url: str, known: Dict[str, Any]) -> None:
    size = path.stat().st_size
    if 'size' in known and size != known['size']:
        raise ChecksumError(
            f'{url} gave {size:,} bytes, {name} has {known["size"]:,}: the download is truncated or the file was '
            f'replaced. Nothing was kept; retry, and report it if it persists.')
    for algorithm in ('sha256', 'sha384'):
        if algorithm in known:
            digest = _file_digest(path, algorithm)
            if digest != known[algorithm]:
                raise ChecksumError(
                    f'{url} has {algorithm} {digest}, expected {known[algorithm]} for {name}: the download is '
                    f'corrupted or the release file was replaced. Nothing was kept; retry, and report it if it '
                    f'persists.')


def _tqdm_disable(progress: Optional[bool]) -> Optional[bool]:
    # tqdm: disable=None hides the bar when not writing to a terminal
    return None if progress is None else not progress


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# --------------------------------------------------------------------------------------------------------------------
# pretrained=True


def _weights_source(cfg: Dict[str, Any]) -> str:
    # Mirrors timm's `_resolve_pretrained_source` order (timm/models/_builder.py), which is private.
    if cfg.get('source') in ('hf-hub', 'local-dir'):
        return cfg['source']
    for source, key in (('state_dict', 'state_dict'), ('file', 'file'), ('hf-hub', 'hf_hub_id'), ('url', 'url')):
        if cfg.get(key):
            return source
    return ''


def cached_hub_weights(hub_id: str, cache_dir: Optional[PathLike] = None) -> Optional[str]:
    """Path of the cached weights file timm would load for a Hub id, or None."""
    repo_id, _, revision = hub_id.partition('@')
    for filename in ('model.safetensors', 'pytorch_model.bin'):
        path = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision or None)
        if isinstance(path, str):
            return path
    return None


def _verify_hub_download(hub_id: str, path: str) -> None:
    """Check a fresh Hub download against its LFS sha256 (the blob name); remove it when it differs."""
    blob = os.path.realpath(path)
    expected = os.path.basename(blob)
    if not _SHA256.fullmatch(expected):
        return  # not stored by content hash (no symlinks, or a non-LFS file): nothing to compare with
    digest = _file_digest(blob)
    if digest == expected:
        return
    for p in {path, blob}:
        Path(p).unlink(missing_ok=True)
    raise ChecksumError(
        f'{os.path.basename(path)} of {hub_id} from {constants.ENDPOINT} is corrupted: sha256 {digest}, the Hub '
        f'lists {expected}. The bad copy was removed from the cache; load again to download it again. If this '
        f'repeats, something on the network path (proxy, mirror) alters the file.')


def _checked_filter(source: str, strict: bool) -> Callable[[Dict[str, Any], nn.Module], Dict[str, torch.Tensor]]:
    def filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
        state_dict = checkpoint_filter_fn(state_dict, model)
        if strict:
            check_state_dict(state_dict, model, source)
        return state_dict
    return filter_fn


def build_pretrained(build: Callable[..., nn.Module], variant: str, **kwargs: Any) -> nn.Module:
    """Build a model and load its pretrained weights: the Hub first, the official release file as fallback.

    Weight sources follow timm (`state_dict`, `file`, `hf-hub:`/`local-dir:` names, then the cfg's `hf_hub_id`, then
    its `url`). For a cfg `hf_hub_id` whose repo (or weights file) does not exist, the cfg's release `url` is
    downloaded with `download_release` and loaded as a `file` through `checkpoint_filter_fn`, with a one-line
    warning; offline or with the Hub unreachable, a cached release file is used when there is one.

    Args:
        build: `build(pretrained, **kwargs)`, timm's `build_model_with_cfg` bound to the architecture.
        variant: Architecture name.
        **kwargs: Model and build kwargs as given to the entrypoint.

    Returns:
        The model with its weights loaded.

    Raises:
        FileNotFoundError: A `file` source that does not exist.
        PretrainedWeightsError: Download, checksum or fit problems, each with the file, what differs and what to do.
    """
    cfg = resolve_pretrained_cfg(
        variant, kwargs.get('pretrained_cfg'), kwargs.get('pretrained_cfg_overlay')).to_dict()
    source = _weights_source(cfg)
    cache_dir = kwargs.get('cache_dir')
    strict = kwargs.get('pretrained_strict', True)

    if source == 'file':
        return _build_from_file(build, kwargs, Path(cfg['file']), strict)
    if source == 'url':
        return _build_from_release(build, kwargs, cfg['url'], cache_dir, strict)
    if source != 'hf-hub':
        where = cfg.get('file') if source == 'local-dir' else f'the {source or "given"} weights'
        return build(True, pretrained_filter_fn=_checked_filter(str(where), strict), **kwargs)

    hub_id = cfg['hf_hub_id']
    cached = cached_hub_weights(hub_id, cache_dir)
    described = f'{hub_id} on {constants.ENDPOINT}'
    try:
        model = build(True, pretrained_filter_fn=_checked_filter(described, strict), **kwargs)
    except PretrainedWeightsError:
        raise
    except Exception as e:
        fresh = None if cached else cached_hub_weights(hub_id, cache_dir)
        if fresh:
            _verify_hub_download(hub_id, fresh)
        url = cfg.get('url')
        # A 404 for the repo or for its weights file; not a gated repo, not an offline / unreachable cache miss.
        not_on_hub = (isinstance(e, RepositoryNotFoundError) and not isinstance(e, GatedRepoError)) or (
            isinstance(e, EntryNotFoundError) and not isinstance(e, LocalEntryNotFoundError))
        if not_on_hub and url:
            _logger.warning(
                f'{hub_id} is not on the Hugging Face Hub ({constants.ENDPOINT}): loading the official release '
                f'{url} instead, converted on load.')
            return _build_from_release(build, kwargs, url, cache_dir, strict)
        if isinstance(e, LocalEntryNotFoundError) and url and cached_release(url, cache_dir):
            _logger.info(f'{hub_id} is not cached and the Hub cannot be reached: using the cached release of {url}.')
            return _build_from_release(build, kwargs, url, cache_dir, strict)
        if not_on_hub or _is_download_error(e):
            _discard_partial_downloads(hub_id, cache_dir)
            raise _hub_error(e, hub_id, not_on_hub, url, cache_dir) from e
        raise
    if not cached:
        fresh = cached_hub_weights(hub_id, cache_dir)
        if fresh:
            _verify_hub_download(hub_id, fresh)
    return model


def _is_download_error(error: BaseException) -> bool:
    # OSError covers huggingface_hub's HTTP and size-consistency errors; the HTTP client's own errors (httpx) are
    # matched by module so that other failures (a bad model kwarg) pass through.
    module = type(error).__module__.split('.')[0]
    clients = ('huggingface_hub', 'httpx', 'httpx2', 'httpcore')
    return isinstance(error, (OSError, EntryNotFoundError)) or module in clients


def _discard_partial_downloads(hub_id: str, cache_dir: Optional[PathLike]) -> None:
    """Remove the `.incomplete` blobs a failed Hub download left (some huggingface_hub versions keep them to resume),
    each under huggingface_hub's own lock for that blob, so another process's download in progress is left alone."""
    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    folder = repo_folder_name(repo_id=hub_id.partition('@')[0], repo_type='model')
    for partial in (cache / folder / 'blobs').glob('*.incomplete'):
        lock = cache / '.locks' / folder / (partial.name[:-len('.incomplete')] + '.lock')
        try:
            with FileLock(str(lock), timeout=0):
                partial.unlink(missing_ok=True)
        except Timeout:
            pass


def _hub_error(
        error: BaseException,
        hub_id: str,
        not_on_hub: bool,
        url: Optional[str],
        cache_dir: Optional[PathLike],
) -> PretrainedWeightsError:
    cache = cache_dir or constants.HF_HUB_CACHE
    if not_on_hub:
        return PretrainedWeightsError(
            f'{hub_id} has no weights on the Hugging Face Hub ({constants.ENDPOINT}) and its pretrained cfg names no '
            f'release URL to fall back to: check the model name and tag, or pass pretrained_cfg_overlay=dict('
            f'file=PATH).')
    if isinstance(error, LocalEntryNotFoundError):
        if constants.HF_HUB_OFFLINE:
            return DownloadError(
                f'HF_HUB_OFFLINE=1 and the weights of {hub_id} are not in the cache ({cache})'
                f'{" nor is the release file " + os.path.basename(url) if url else ""}: load the model once online '
                f'(same HF_HOME), or pass pretrained_cfg_overlay=dict(file=PATH).')
        return DownloadError(
            f'Could not reach {constants.ENDPOINT} to download the weights (model.safetensors) of {hub_id} '
            f'({_first_line(error)}), and they are not in the cache ({cache}). Check the connection, proxy and '
            f'HF_ENDPOINT; for machines without network see HF_HUB_OFFLINE in the README.')
    return DownloadError(
        f'Downloading the weights (model.safetensors) of {hub_id} from {constants.ENDPOINT} failed '
        f'({type(error).__name__}: {_first_line(error)}). Nothing partial was kept in the cache ({cache}); retry, '
        f'and check the connection if it repeats.')


def _build_from_release(
        build: Callable[..., nn.Module],
        kwargs: Dict[str, Any],
        url: str,
        cache_dir: Optional[PathLike],
        strict: bool,
) -> nn.Module:
    fresh = cached_release(url, cache_dir) is None
    return _build_from_file(build, kwargs, download_release(url, cache_dir), strict, url=url, fresh=fresh)


def _build_from_file(
        build: Callable[..., nn.Module],
        kwargs: Dict[str, Any],
        path: Path,
        strict: bool,
        url: Optional[str] = None,
        fresh: bool = False,
) -> nn.Module:
    """Build with `path` as the weights `file`, mapping read errors to a message naming the file.

    A `fresh` download that turns out unreadable is removed from the cache.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f'Pretrained weights file {path} does not exist: check the path given in pretrained_cfg_overlay["file"].')
    kwargs = dict(kwargs)
    kwargs['pretrained_cfg_overlay'] = dict(kwargs.get('pretrained_cfg_overlay') or {}, file=str(path))
    source = f'{path}' + (f' (downloaded from {url})' if url else '')
    try:
        return build(True, pretrained_filter_fn=_checked_filter(source, strict), **kwargs)
    except PretrainedWeightsError:
        raise
    except Exception as e:
        # timm reads `file` sources with weights_only=True and argparse.Namespace allowed; re-read the file to name
        # what is wrong with it (a corrupted download or an unsafe pickle) instead of a bare torch error.
        try:
            read_checkpoint(path)
        except PretrainedWeightsError as read_error:
            if fresh:
                path.unlink(missing_ok=True)
                hint = f' It was just downloaded from {url} and has been removed from the cache; load again to retry.'
            else:
                hint = f' Delete {path} to download it again.' if url else ''
            raise PretrainedWeightsError(f'{read_error}{hint}') from e
        raise


# --------------------------------------------------------------------------------------------------------------------
# Conversion


@dataclass
class ConversionResult:
    """What `convert_checkpoint` wrote and measured."""
    out_dir: Path
    model_name: str
    max_abs_diff: float
    source_sha256: str
    params: int
    gmacs: float


def _resolve_name(model_name: str) -> Tuple[str, str]:
    arch, tag = split_model_name_tag(model_name)
    if arch not in default_cfgs:
        names = ', '.join(sorted(default_cfgs))
        raise ValueError(f'{model_name!r} is not a T2T-ViT model; choose one of {names} (optionally with .TAG).')
    tags = [t for t in default_cfgs[arch].tags if t]
    if not tag:
        if not tags:
            raise ValueError(f'{arch} has no released weights, so there is no model card to write for it.')
        tag = tags[0]
    if tag not in default_cfgs[arch].cfgs:
        raise ValueError(f'{arch} has no pretrained tag {tag!r}; known tags: {", ".join(tags) or "none"}.')
    return arch, tag


def count_gmacs(model: nn.Module, input_size: Tuple[int, int, int]) -> float:
    """Multiply-accumulates (G) of one forward of one image: FLOPs / 2 of every matmul, attention included.

    Args:
        model: A model on the `meta` device (build it under `torch.device('meta')`): shapes only, no compute. There
            fused attention decomposes into its matmuls, so the counter sees them.
        input_size: (C, H, W).
    """
    from torch.utils.flop_counter import FlopCounterMode
    if not all(p.is_meta for p in model.parameters()):
        raise ValueError('count_gmacs needs a model on the meta device, e.g. timm.create_model(name, device="meta").')
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.empty(1, *input_size, device='meta'))
    return counter.get_total_flops() / 2e9


def convert_checkpoint(
        checkpoint: PathLike,
        model_name: str,
        out_dir: PathLike,
        model_kwargs: Optional[Dict[str, Any]] = None,
        source_url: Optional[str] = None,
        overwrite: bool = False,
        progress: Optional[bool] = None,
) -> ConversionResult:
    """Convert an official T2T-ViT checkpoint into a Hub-ready folder, after proving the conversion.

    The checkpoint is read safely and loaded through `checkpoint_filter_fn` into the model (the original); timm's
    `save_for_hf` writes `model.safetensors` and `config.json` to a temporary folder beside `out_dir`; the folder is
    loaded back with `timm.create_model('local-dir:...', pretrained=True)`, and both models run on the same random
    inputs. Only when their logits agree within 1e-4 is the model card added and the folder renamed to `out_dir`;
    on any failure nothing is left behind.

    Args:
        checkpoint: Official `.pth.tar` (or a state dict / safetensors file), or an http(s) URL to download.
        model_name: `arch.tag`, e.g. 't2t_vit_14.in1k_384'; the tag selects the pretrained cfg and card details.
        out_dir: Folder to create.
        model_kwargs: Architecture overrides (e.g. dict(depth=1) for reduced test checkpoints). The card then claims
            no accuracy.
        source_url: Where the checkpoint came from, for the card; default the URL given or the tag's release URL.
        overwrite: Replace an existing `out_dir`.
        progress: Show progress bars (None: only on a terminal).

    Returns:
        The folder and the measured values.
    """
    arch, tag = _resolve_name(model_name)
    name = f'{arch}.{tag}'
    model_kwargs = dict(model_kwargs or {})
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f'{out_dir} exists and is not empty: choose another --out or pass --overwrite.')
    if str(checkpoint).startswith(('http://', 'https://')):
        source_url = source_url or str(checkpoint)
        checkpoint = download_release(str(checkpoint), progress=progress)
    checkpoint = Path(checkpoint)
    cfg = default_cfgs[arch].cfgs[tag]
    if source_url is None and cfg.url and os.path.basename(urlparse(cfg.url).path) == checkpoint.name:
        source_url = cfg.url

    steps = hf_tqdm(total=5, desc=f'convert {name}', disable=_tqdm_disable(progress))
    with steps:
        steps.set_postfix_str('read')
        sha256 = _file_digest(checkpoint)
        raw = read_checkpoint(checkpoint)
        # the entry checkpoint_filter_fn takes, for the card
        entries = ('state_dict_ema', 'model_ema', 'state_dict', 'model')
        entry = next((k for k in entries if isinstance(raw.get(k), dict)), None)
        original = timm.create_model(name, **model_kwargs).eval()
        # An img_size override (a fixed position table) must reach config.json, or the folder's data config would feed
        # the tag's resolution to a model built for another: timm keeps the tag's input_size in pretrained_cfg.
        input_size = (original.pretrained_cfg['input_size'][0], *original.patch_embed.img_size)
        original.pretrained_cfg = {**original.pretrained_cfg, 'input_size': input_size}
        state_dict = checkpoint_filter_fn(raw, original)
        check_state_dict(state_dict, original, str(checkpoint))
        original.load_state_dict(state_dict)
        del raw, state_dict
        steps.update()

        steps.set_postfix_str('write')
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', suffix='.partial', dir=out_dir.parent))
        try:
            extra_args = {'use_aux_head': True} if getattr(original, 'aux_head', None) is not None else None
            save_for_hf(original, tmp, model_args=extra_args, safe_serialization=True)
            steps.update()

            steps.set_postfix_str('prove')
            converted = timm.create_model(f'local-dir:{tmp}', pretrained=True).eval()
            x = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                diff = (original(x) - converted(x)).abs().max().item()
            if not diff <= TOLERANCE:  # also catches NaN
                raise PretrainedWeightsError(
                    f'Refusing to write {out_dir}: the converted weights give logits up to {diff:.3g} away from '
                    f'{checkpoint} loaded directly (limit {TOLERANCE}). Nothing was written; report this with the '
                    f'file and its sha256 {sha256}.')
            steps.update()

            steps.set_postfix_str('card')
            params = sum(t.numel() for t in original.state_dict().values())
            gmacs = count_gmacs(timm.create_model(name, device='meta', **model_kwargs), input_size)
            card = model_card(
                name, original, params=params, gmacs=gmacs, max_abs_diff=diff, num_inputs=x.shape[0],
                source_url=source_url or checkpoint.name, source_sha256=sha256, source_entry=entry,
                model_kwargs=model_kwargs)
            (tmp / 'README.md').write_text(card, encoding='utf-8')
            steps.update()

            steps.set_postfix_str('move')
            _move_into_place(tmp, out_dir)
            steps.update()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return ConversionResult(out_dir, name, diff, sha256, params, gmacs)


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename a finished folder to `out_dir`; an existing `out_dir` is swapped out first and removed after."""
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    old = out_dir.with_name(f'.{out_dir.name}.{uuid.uuid4().hex[:8]}.old')
    os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except OSError:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


_CITATION = """@InProceedings{Yuan_2021_ICCV,
    author    = {Yuan, Li and Chen, Yunpeng and Wang, Tao and Yu, Weihao and Shi, Yujun and Jiang, Zi-Hang and Tay, Francis E.H. and Feng, Jiashi and Yan, Shuicheng},
    title     = {Tokens-to-Token ViT: Training Vision Transformers From Scratch on ImageNet},
    booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
    year      = {2021},
    pages     = {558-567}
}"""


def model_card(
        name: str,
        model: nn.Module,
        params: int,
        gmacs: float,
        max_abs_diff: float,
        num_inputs: int,
        source_url: str,
        source_sha256: str,
        source_entry: Optional[str] = None,
        model_kwargs: Optional[Dict[str, Any]] = None,
) -> str:
    """The README.md of a converted folder: Hub metadata (YAML) and a short card."""
    from . import __version__
    arch, tag = split_model_name_tag(name)
    res = tuple(model.pretrained_cfg['input_size'][1:])
    aux = getattr(model, 'aux_head', None) is not None
    top1, top5 = RELEASE_ACCURACY.get(name, (None, None)) if not model_kwargs else (None, None)
    eval_results = [
        EvalResult(
            task_type='image-classification', dataset_type='imagenet-1k', dataset_name='ImageNet-1k (val)',
            metric_type='accuracy', metric_name=metric, metric_value=value)
        for metric, value in (('top-1 accuracy', top1), ('top-5 accuracy', top5)) if value is not None
    ]
    data = ModelCardData(
        license='bsd-3-clause-clear',
        library_name='timm',
        pipeline_tag='image-classification',
        tags=['image-classification', 'timm', 'timm-t2t', 't2t-vit'] + (['token-labeling'] if aux else []),
        datasets=['imagenet-1k'],
        model_name=name,
        eval_results=eval_results or None,
    )
    if model_kwargs:
        results = (f'Not applicable: this folder holds a modified architecture ({_kwargs_str(model_kwargs)}), not '
                   f'the released one.')
    else:
        results = (f'| top-1 | top-5 |\n|---|---|\n| {top1} | {top5 if top5 is not None else "-"} |\n\n'
                   f'Top-1 as reported by the official README; top-5 re-measured from the same weights by timm PR '
                   f'#2426 (224, crop 0.9) or PaddleViT (384, crop 1.0).')
    training = ('trained on ImageNet-1k with token labeling (https://github.com/zihangJiang/TokenLabeling)' if aux
                else f'trained from scratch on ImageNet-1k at {res[0]} x {res[1]}')
    aux_note = ('\n\nThe checkpoint keeps its token-labeling auxiliary head (`aux_head`, applied to every patch '
                'token): logits = head(class token) + 0.5 * max over patch tokens of aux_head(patch token), as in the '
                'token-labeling evaluation.' if aux else '')
    body = f"""
# Model card for {name}

A Tokens-to-Token ViT (T2T-ViT) image classifier, {training}. The official weights
([yitu-opensource/T2T-ViT](https://github.com/yitu-opensource/T2T-ViT)) converted to safetensors in the layout of
[timm-t2t](https://pypi.org/project/timm-t2t/), a timm plugin.{aux_note}

## Model details
- **Model type:** image classification / feature backbone
- **Architecture:** `{arch}` ({_describe_layout({k: tuple(v.shape) for k, v in model.state_dict().items()})})
- **Params (M):** {params / 1e6:.2f} (all tensors, incl. the fixed position table)
- **GMACs:** {gmacs:.2f} (one image, every matmul incl. attention)
- **Image size:** {res[0]} x {res[1]}
- **Dataset:** ImageNet-1k
- **Paper:** [Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet](https://arxiv.org/abs/2101.11986)
- **Original:** https://github.com/yitu-opensource/T2T-ViT
- **License:** bsd-3-clause-clear (The Clear BSD License, as the original code and weights)

## Results (ImageNet-1k val)
{results}

## Provenance and check
- **Source:** {source_url}
- **Source sha256:** `{source_sha256}`
- **Converted by:** timm-t2t {__version__} (torch {torch.__version__}, timm {timm.__version__}): the
  {f'`{source_entry}` entry' if source_entry else 'state dict'}, keys renamed by `checkpoint_filter_fn`, saved by
  timm's `save_for_hf` (nothing pickled).
- **Check:** this folder, loaded by `timm.create_model('local-dir:...', pretrained=True)`, against the source checkpoint
  loaded through `checkpoint_filter_fn`, on {num_inputs} random inputs of {res[0]} x {res[1]}:
  max |logit difference| = {max_abs_diff:.3g} (limit {TOLERANCE:g}).

## Usage
```python
import timm
import timm_t2t  # pip install timm-t2t; registers the T2T-ViT models with timm

model = timm.create_model('{name}', pretrained=True).eval()
data_cfg = timm.data.resolve_data_config({{}}, model=model)
transform = timm.data.create_transform(**data_cfg)
```

## Citation
```bibtex
{_CITATION}
```
"""
    return ModelCard(f'---\n{data.to_yaml()}\n---\n{body}').content


def _kwargs_str(kwargs: Dict[str, Any]) -> str:
    return ', '.join(f'{k}={v!r}' for k, v in kwargs.items())


# --------------------------------------------------------------------------------------------------------------------
# Publishing


def _folder_files(folder: Path) -> List[Tuple[str, int, str]]:
    return [
        (str(p.relative_to(folder)), p.stat().st_size, _file_digest(p))
        for p in sorted(folder.rglob('*'))
        if p.is_file() and not any(part.startswith('.') for part in p.relative_to(folder).parts)
    ]


def push_folder(
        folder: PathLike,
        repo_id: str,
        dry_run: bool = False,
        verify: bool = True,
        commit_message: Optional[str] = None,
) -> List[Tuple[str, int, str]]:
    """Upload a converted folder to the Hugging Face Hub (creating the model repo if needed).

    Args:
        folder: Folder written by `convert_checkpoint`.
        repo_id: 'ORG/NAME'.
        dry_run: Only check the folder and return what would be uploaded.
        verify: Load the folder with timm first (`local-dir:`), so that nothing unloadable is published.
        commit_message: Commit message; default names the files' source.

    Returns:
        (relative path, size, sha256) of every file uploaded (or to upload).
    """
    folder = Path(folder)
    missing = [f for f in HUB_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f'{folder} lacks {", ".join(missing)}: create it with `timm-t2t convert CHECKPOINT --model NAME --out '
            f'{folder}`.')
    if repo_id.count('/') != 1 or not all(repo_id.split('/')):
        raise ValueError(f'--repo must be ORG/NAME, got {repo_id!r}.')
    if verify:
        timm.create_model(f'local-dir:{folder}', pretrained=True)
    files = _folder_files(folder)
    if dry_run:
        return files
    api = HfApi()
    api.create_repo(repo_id, repo_type='model', exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type='model',
        commit_message=commit_message or f'Upload {folder.name} (converted by timm-t2t)',
        ignore_patterns=['.*'],
    )
    return files


def publish_all(
        org: str = HF_HUB_NAMESPACE,
        work_dir: PathLike = 't2t-vit-weights',
        dry_run: bool = False,
        names: Optional[Sequence[str]] = None,
        progress: Optional[bool] = None,
) -> Dict[str, List[Tuple[str, int, str]]]:
    """Download, convert and upload every released checkpoint (`release_urls()`), one repo per `arch.tag`.

    Folders already converted in `work_dir` are reused, so an interrupted run resumes.

    Args:
        org: Hub namespace; the pretrained cfgs point at `timm-t2t`.
        work_dir: Where the converted folders go (`work_dir/arch.tag`).
        dry_run: Download and convert, but do not upload.
        names: Only these `arch.tag` names.
        progress: Show progress bars (None: only on a terminal).

    Returns:
        Repo id -> files uploaded (or to upload).
    """
    urls = release_urls()
    unknown = sorted(set(names or ()) - set(urls))
    if unknown:
        raise ValueError(f'No release for {", ".join(unknown)}; released: {", ".join(urls)}.')
    plan = {}
    for name in hf_tqdm(names or list(urls), desc='publish', disable=_tqdm_disable(progress)):
        out = Path(work_dir) / name
        if not all((out / f).is_file() for f in HUB_FILES):
            convert_checkpoint(urls[name], name, out, overwrite=True, progress=progress)
        plan[f'{org}/{name}'] = push_folder(out, f'{org}/{name}', dry_run=dry_run, verify=False)
    return plan


# --------------------------------------------------------------------------------------------------------------------
# Command line (`timm-t2t convert`, `timm-t2t push`)


def _parse_model_args(items: Optional[Sequence[str]]) -> Dict[str, Any]:
    out = {}
    for item in items or ():
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ValueError(f'--model-arg takes KEY=VALUE, got {item!r}.')
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def configure_convert_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t convert`."""
    p.description = (
        'Convert an official T2T-ViT checkpoint into a Hub-ready folder (model.safetensors, config.json, README.md), '
        'after checking that the converted model reproduces the original logits within 1e-4.')
    p.add_argument('checkpoint', nargs='?', help='official .pth.tar file, or its URL')
    p.add_argument('--model', help='NAME[.TAG], e.g. t2t_vit_14.in1k_384 (default tag: the first one)')
    p.add_argument('--out', required=True, help='folder to write (with --all: parent of one folder per model)')
    p.add_argument('--all', action='store_true', help='download and convert all 11 released checkpoints')
    p.add_argument('--model-arg', action='append', metavar='KEY=VALUE',
                   help='architecture override, e.g. depth=1 (the card then claims no accuracy)')
    p.add_argument('--source-url', help='where the checkpoint came from, for the card')
    p.add_argument('--overwrite', action='store_true', help='replace existing output folders')
    p.add_argument('--quiet', action='store_true', help='no progress bars')


def run_convert(args: argparse.Namespace) -> int:
    """Run `timm-t2t convert`; errors are raised with one clear message."""
    progress = False if args.quiet else None
    if args.all:
        if args.checkpoint or args.model:
            raise ValueError('--all converts every released checkpoint: give no CHECKPOINT or --model with it.')
        jobs = [(url, name, Path(args.out) / name, None) for name, url in release_urls().items()]
    else:
        if not args.checkpoint or not args.model:
            raise ValueError('convert needs CHECKPOINT and --model NAME[.TAG] (or --all).')
        jobs = [(args.checkpoint, args.model, Path(args.out), args.source_url)]
    for checkpoint, name, out, source_url in jobs:
        result = convert_checkpoint(
            checkpoint, name, out, model_kwargs=_parse_model_args(args.model_arg), source_url=source_url,
            overwrite=args.overwrite, progress=progress)
        print(f'{result.out_dir}: {result.model_name}, max |logit difference| {result.max_abs_diff:.3g}, '
              f'source sha256 {result.source_sha256}')
    return 0


def configure_push_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t push`."""
    p.description = (
        'Upload a converted folder to the Hugging Face Hub, or (--all) download, convert and upload all 11 released '
        'checkpoints, one repo ORG/ARCH.TAG each. Log in first (`hf auth login` or HF_TOKEN).')
    p.add_argument('folder', nargs='?', help='folder written by `timm-t2t convert`')
    p.add_argument('--repo', help='ORG/NAME to upload the folder to')
    p.add_argument('--all', action='store_true', help='convert and upload every released checkpoint')
    p.add_argument('--org', default=HF_HUB_NAMESPACE, help=f'namespace for --all (default {HF_HUB_NAMESPACE})')
    p.add_argument('--work-dir', default='t2t-vit-weights', help='where --all keeps converted folders')
    p.add_argument('--dry-run', action='store_true', help='print what would be uploaded, upload nothing')
    p.add_argument('--quiet', action='store_true', help='no progress bars')


def run_push(args: argparse.Namespace) -> int:
    """Run `timm-t2t push`; errors are raised with one clear message."""
    if args.all:
        if args.folder or args.repo:
            raise ValueError('--all publishes every released checkpoint: give no FOLDER or --repo with it.')
        plan = publish_all(args.org, args.work_dir, dry_run=args.dry_run, progress=False if args.quiet else None)
    else:
        if not args.folder or not args.repo:
            raise ValueError('push needs FOLDER and --repo ORG/NAME (or --all).')
        plan = {args.repo: push_folder(args.folder, args.repo, dry_run=args.dry_run)}
    verb = 'would upload' if args.dry_run else 'uploaded'
    for repo_id, files in plan.items():
        print(f'{verb} to {constants.ENDPOINT}/{repo_id}:')
        for path, size, sha in files:
            print(f'  {path}  {size:,} bytes  sha256 {sha}')
    return 0
