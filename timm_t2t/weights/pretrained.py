"""What `pretrained=True` runs: the Hub first, the official release file as fallback; fail fast, heal the cache.

* Hub first, through timm's own loader (`hf_hub_id` of the tag). When the Hub repo (or its weights file) does not
  exist, the official release file is downloaded and converted on load by the model's checkpoint filter.
* Fail fast: when the Hub cannot be reached at all (name resolution, refused, connect timeout; probed once, about
  3 s at most), nothing is retried: a cached Hub snapshot or release file is loaded at once with one line saying so;
  with nothing cached, the tag's official release host is probed the same way (once, about 3 s at most) and, when it
  answers, the release file is downloaded and loaded with one line saying so. When neither answers, one error names
  both endpoints, what is cached and the ways out. Transfers that start keep huggingface_hub's retries.
  `HF_HUB_OFFLINE=1` skips all of this: no network at all, cached copies only.
* Heal: a cached weights file (Hub blob or release file) that cannot be read is removed from the cache, under the
  lock its downloader takes, and the error says so: the next load downloads it again.

This module does not import the model module (which imports it): the model passes its checkpoint filter in.
"""
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import torch
import torch.nn as nn
from huggingface_hub import constants
from huggingface_hub.utils import EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

from timm.models import resolve_pretrained_cfg

from .checkpoint_io import (
    DownloadError, PathLike, PretrainedWeightsError, check_state_dict, first_line, read_checkpoint)
from .download import (
    cached_hub_weights, cached_release, discard_cached_hub_file, discard_cached_release, discard_partial_downloads,
    download_release, release_cache_dir, unreachable_reason, verify_hub_download)

__all__ = ['build_pretrained']

_logger = logging.getLogger(__name__)

FilterFn = Callable[[Dict[str, Any], nn.Module], Dict[str, torch.Tensor]]
REACH_TIMEOUT = 3.0  # seconds the reachability probe may take: the whole answer stays within 5 s


def _weights_source(cfg: Dict[str, Any]) -> str:
    # Mirrors timm's `_resolve_pretrained_source` order (timm/models/_builder.py), which is private.
    if cfg.get('source') in ('hf-hub', 'local-dir'):
        return cfg['source']
    for source, key in (('state_dict', 'state_dict'), ('file', 'file'), ('hf-hub', 'hf_hub_id'), ('url', 'url')):
        if cfg.get(key):
            return source
    return ''


def _checked_filter(filter_fn: FilterFn, source: str, strict: bool) -> FilterFn:
    def checked(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
        state_dict = filter_fn(state_dict, model)
        if strict:
            check_state_dict(state_dict, model, source)
        return state_dict
    return checked


class _Builder:
    """`build(load, **kwargs)` bound to the call's kwargs, checkpoint filter and strictness."""

    def __init__(self, build: Callable[..., nn.Module], kwargs: Dict[str, Any], filter_fn: FilterFn) -> None:
        self.build = build
        self.kwargs = kwargs
        self.filter_fn = filter_fn
        self.strict = kwargs.get('pretrained_strict', True)
        self.cache_dir: Optional[PathLike] = kwargs.get('cache_dir')

    def __call__(self, described: str, overlay: Optional[Dict[str, Any]] = None) -> nn.Module:
        """Build and load; `described` names the weights in errors, `overlay` adds to the pretrained cfg overlay."""
        kwargs = dict(self.kwargs)
        if overlay:
            kwargs['pretrained_cfg_overlay'] = dict(kwargs.get('pretrained_cfg_overlay') or {}, **overlay)
        checked = _checked_filter(self.filter_fn, described, self.strict)
        return self.build(True, pretrained_filter_fn=checked, **kwargs)


def build_pretrained(build: Callable[..., nn.Module], variant: str, filter_fn: FilterFn, **kwargs: Any) -> nn.Module:
    """Build a model and load its pretrained weights: the Hub first, the official release file as fallback.

    Weight sources follow timm (`state_dict`, `file`, `hf-hub:`/`local-dir:` names, then the cfg's `hf_hub_id`, then
    its `url`). For a cfg `hf_hub_id` whose repo (or weights file) does not exist, the cfg's release `url` is
    downloaded with `download_release` and loaded as a `file`, with a one-line warning. When the Hub cannot be
    reached, a cached Hub snapshot or release file is loaded at once (one line says so), else the release file is
    downloaded when its host answers (one line says so), else one error comes, within about 3 s per endpoint probed.
    A cached file that cannot be read is removed from the cache before the error is raised.

    Args:
        build: `build(pretrained, **kwargs)`, timm's `build_model_with_cfg` bound to the architecture.
        variant: Architecture name.
        filter_fn: The architecture's checkpoint filter (`checkpoint_filter_fn`); loaded state dicts are also checked
            to fit the model exactly unless `pretrained_strict=False`.
        **kwargs: Model and build kwargs as given to the entrypoint.

    Returns:
        The model with its weights loaded.

    Raises:
        FileNotFoundError: A `file` source that does not exist.
        PretrainedWeightsError: Unreachable server, download, checksum, unreadable file or fit problems, each with
            the file, what differs and what to do.
    """
    cfg = resolve_pretrained_cfg(
        variant, kwargs.get('pretrained_cfg'), kwargs.get('pretrained_cfg_overlay')).to_dict()
    source = _weights_source(cfg)
    builder = _Builder(build, kwargs, filter_fn)

    if source == 'file':
        return _build_from_file(builder, Path(cfg['file']))
    if source == 'url':
        return _build_from_release(builder, cfg['url'])
    if source != 'hf-hub':
        return builder(str(cfg.get('file') if source == 'local-dir' else f'the {source or "given"} weights'))
    return _build_from_hub(builder, cfg['hf_hub_id'], cfg.get('url'))


def _build_from_hub(builder: _Builder, hub_id: str, url: Optional[str]) -> nn.Module:
    cache_dir = builder.cache_dir
    cached = cached_hub_weights(hub_id, cache_dir)
    if not constants.HF_HUB_OFFLINE:
        # Fail fast. huggingface_hub retries a failed connection with backoff (about 23 s per file in 2.x, and timm
        # asks for two files) before it falls back to the cache, and has no public switch for "probe once": one
        # HEAD through its own HTTP client, without retries, tells an unreachable server from a slow one.
        reason = unreachable_reason(constants.ENDPOINT, REACH_TIMEOUT)
        if reason:
            return _build_unreachable(builder, hub_id, url, cached, reason)

    described = f'{hub_id} on {constants.ENDPOINT}'
    try:
        model = builder(described)
    except PretrainedWeightsError:
        raise
    except Exception as e:
        fresh = cached_hub_weights(hub_id, cache_dir)
        if fresh:
            if not cached:
                verify_hub_download(hub_id, fresh)
            _heal_hub_file(hub_id, fresh, cache_dir, e)  # raises when the cached file is unreadable
        # A 404 for the repo or for its weights file; not a gated repo, not an offline / unreachable cache miss.
        not_on_hub = (isinstance(e, RepositoryNotFoundError) and not isinstance(e, GatedRepoError)) or (
            isinstance(e, EntryNotFoundError) and not isinstance(e, LocalEntryNotFoundError))
        if not_on_hub and url:
            _logger.warning(
                f'{hub_id} is not on the Hugging Face Hub ({constants.ENDPOINT}): loading the official release '
                f'{url} instead, converted on load.')
            return _build_from_release(builder, url)
        if isinstance(e, LocalEntryNotFoundError) and url and cached_release(url, cache_dir):
            _logger.warning(f'{hub_id} is not cached and {constants.ENDPOINT} cannot be reached: loading the cached '
                            f'release file {cached_release(url, cache_dir)}.')
            return _build_from_release(builder, url)
        if not_on_hub or _is_download_error(e):
            discard_partial_downloads(hub_id, cache_dir)
            raise _hub_error(e, hub_id, not_on_hub, url, cache_dir) from e
        raise
    if not cached:
        fresh = cached_hub_weights(hub_id, cache_dir)
        if fresh:
            verify_hub_download(hub_id, fresh)
    return model


def _build_unreachable(
        builder: _Builder,
        hub_id: str,
        url: Optional[str],
        cached: Optional[str],
        reason: str,
) -> nn.Module:
    """The Hub is unreachable: the cached snapshot, else the cached release file, else the release file downloaded
    when its host answers the same one-shot probe, else one clear error naming both endpoints."""
    cache_dir = builder.cache_dir
    if cached:
        _logger.warning(f'{constants.ENDPOINT} cannot be reached ({reason}): loading the cached {hub_id} ({cached}).')
        return _build_from_file(builder, Path(cached), hub_id=hub_id)
    release = cached_release(url, cache_dir) if url else None
    if release:
        _logger.warning(f'{constants.ENDPOINT} cannot be reached ({reason}) and {hub_id} is not in the Hub cache: '
                        f'loading the cached release file {release}.')
        return _build_from_release(builder, url)
    hub_cache = cache_dir or constants.HF_HUB_CACHE
    ways_out = ('Ways out: check the connection, proxy and HF_ENDPOINT; on a machine without network set '
                'HF_HUB_OFFLINE=1 (cached models then load with no network attempt); or')
    if not url:
        raise DownloadError(
            f'Could not reach the Hugging Face Hub at {constants.ENDPOINT} ({reason}) to download the weights of '
            f'{hub_id}, and they are not in the Hub cache ({hub_cache}). {ways_out} pass '
            f'pretrained_cfg_overlay=dict(file=PATH) with a downloaded weights file.')
    # A network that blocks or cannot resolve the Hub may still reach the release host (a proxy, a regional block):
    # one probe of it, as for the Hub, before giving up.
    release_reason = unreachable_reason(url, REACH_TIMEOUT)
    if release_reason is None:
        _logger.warning(f'{constants.ENDPOINT} cannot be reached ({reason}) and {hub_id} is not in the Hub cache: '
                        f'loading the official release file {url} instead, converted on load.')
        return _build_from_file(builder, download_release(url, cache_dir), url=url)
    folder = release_cache_dir(cache_dir)
    raise DownloadError(
        f'Could not reach the Hugging Face Hub at {constants.ENDPOINT} ({reason}) nor the official release file '
        f'{url} ({release_reason}) to download the weights of {hub_id}; they are not in the Hub cache ({hub_cache}), '
        f'nor is the release file {os.path.basename(url)} in {folder}. {ways_out} download the release file '
        f'elsewhere and pass pretrained_cfg_overlay=dict(file=PATH) (or put it in {folder}).')


def _is_download_error(error: BaseException) -> bool:
    # OSError covers huggingface_hub's HTTP and size-consistency errors; the HTTP client's own errors (httpx) are
    # matched by module so that other failures (a bad model kwarg) pass through.
    module = type(error).__module__.split('.')[0]
    clients = ('huggingface_hub', 'httpx', 'httpx2', 'httpcore', 'httpcore2')
    return isinstance(error, (OSError, EntryNotFoundError)) or module in clients


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
            f'({first_line(error)}), and they are not in the cache ({cache}). Check the connection, proxy and '
            f'HF_ENDPOINT; on a machine without network set HF_HUB_OFFLINE=1, or pass '
            f'pretrained_cfg_overlay=dict(file=PATH).')
    return DownloadError(
        f'Downloading the weights (model.safetensors) of {hub_id} from {constants.ENDPOINT} failed '
        f'({type(error).__name__}: {first_line(error)}). Nothing partial was kept in the cache ({cache}); retry, '
        f'and check the connection if it repeats.')


def _unreadable_detail(path: Path) -> Optional[str]:
    """Why the bytes of `path` do not form a checkpoint (truncated, corrupted), or None when they do.

    A readable file that is refused (an unsafe pickle, not a state dict) is not damaged: removing it would only make
    every load download it again.
    """
    try:
        read_checkpoint(path)
    except PretrainedWeightsError as e:
        return first_line(e.__cause__) if e.__cause__ is not None else None
    return None


def _heal_hub_file(hub_id: str, path: str, cache_dir: Optional[PathLike], error: BaseException) -> None:
    """Raise (after removing it from the cache) when the cached Hub file `path` is unreadable; else return."""
    detail = _unreadable_detail(Path(path))
    if detail is None:
        return
    blob = os.path.realpath(path)  # before the link goes
    removed = discard_cached_hub_file(path, hub_id.partition('@')[0], cache_dir)
    what = (f'It was removed from the cache (snapshot link and blob {blob}); load again to download it afresh'
            if removed else f'Another process holds the cache lock of {blob}: delete {path} and {blob} once it is '
                            f'done, then load again')
    raise PretrainedWeightsError(
        f'{os.path.basename(path)} of {hub_id} (from {constants.ENDPOINT}) in the Hub cache ({path}) is not a '
        f'readable checkpoint ({detail}): the file was damaged on the server, on the way, or on disk. {what}. If it '
        f'fails again, the file on the Hub itself is bad: tell the repo owner, or pass '
        f'pretrained_cfg_overlay=dict(file=PATH).') from error


def _build_from_release(builder: _Builder, url: str) -> nn.Module:
    cache_dir = builder.cache_dir
    if cached_release(url, cache_dir) is None and not constants.HF_HUB_OFFLINE:
        reason = unreachable_reason(url, REACH_TIMEOUT)  # fail fast, as for the Hub (see _build_from_hub)
        if reason:
            raise DownloadError(
                f'Could not reach {url} ({reason}), and {os.path.basename(url)} is not cached in '
                f'{release_cache_dir(cache_dir)}. Check the connection and proxy; or download the file yourself and '
                f'pass pretrained_cfg_overlay=dict(file=PATH).')
    return _build_from_file(builder, download_release(url, cache_dir), url=url)


def _build_from_file(
        builder: _Builder,
        path: Path,
        url: Optional[str] = None,
        hub_id: Optional[str] = None,
) -> nn.Module:
    """Build with `path` as the weights `file`, mapping read errors to a message naming the file.

    A cached file (a release file downloaded from `url`, or the Hub cache's copy of `hub_id`) that turns out
    unreadable is removed from the cache; a file the user named is never touched.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f'Pretrained weights file {path} does not exist: check the path given in pretrained_cfg_overlay["file"].')
    source = f'{path}' + (f' (downloaded from {url})' if url else f' (cached from {hub_id})' if hub_id else '')
    try:
        # source=None: a `hf-hub:` name's cfg says source='hf-hub', which timm would prefer over `file`.
        return builder(source, dict(file=str(path), source=None))
    except PretrainedWeightsError:
        raise
    except Exception as e:
        # timm reads `file` sources with weights_only=True and argparse.Namespace allowed; re-read the file to name
        # what is wrong with it (a damaged file or an unsafe pickle) instead of a bare torch error.
        if hub_id:
            _heal_hub_file(hub_id, str(path), builder.cache_dir, e)
        try:
            read_checkpoint(path)
        except PretrainedWeightsError as read_error:
            hint = ''
            if url and read_error.__cause__ is not None:  # damaged bytes, not a refused pickle
                if discard_cached_release(path):
                    hint = f' It came from {url} and has been removed from the cache; load again to download it again.'
                else:
                    hint = f' Another process holds its cache lock: delete {path} once it is done, then load again.'
            raise PretrainedWeightsError(f'{read_error}{hint}') from e
        raise
