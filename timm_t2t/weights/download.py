"""Weights files in the caches: release downloads, Hub cache look-ups, reachability, healing.

* `download_release`: an official release file, downloaded once into timm's URL cache, atomically and under a lock.
* `cached_hub_weights` / `cached_release`: what is cached, without network.
* `unreachable_reason`: whether a server answers at all, within a bounded time (see `fail fast` in `pretrained.py`).
* `discard_cached_hub_file` / `discard_cached_release`: remove an unreadable cached file, under the lock its
  downloader takes, so that the next load downloads it again.
"""
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import urlparse

import torch
from filelock import FileLock, Timeout
from huggingface_hub import constants, get_session, try_to_load_from_cache
from huggingface_hub.file_download import http_get, repo_folder_name
from huggingface_hub.utils import WeakFileLock, are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

from .checkpoint_io import ChecksumError, DownloadError, PathLike, PretrainedWeightsError, file_digest, first_line

__all__ = [
    'RELEASE_CHECKSUMS', 'release_cache_dir', 'cached_release', 'download_release', 'cached_hub_weights',
    'unreachable_reason',
    'discard_cached_hub_file', 'discard_cached_release',
]

_SHA256 = re.compile(r'[0-9a-f]{64}')
HUB_WEIGHTS_FILES = ('model.safetensors', 'pytorch_model.bin')  # what timm's Hub loader tries, in its order

# Release files with a published size and checksum: OpenVINO's Open Model Zoo pins the 81.5 file
# (models/public/t2t-vit-14/model.yml). Downloads of any file listed here are verified.
RELEASE_CHECKSUMS: Dict[str, Dict[str, Any]] = {
    '81.5_T2T_ViT_14.pth.tar': dict(
        size=86_212_823,
        sha384='98c8ae06a1e9997f3e83ad2dfbac49985bf7bd7723eb64e4b8462338163be02657998f0bd9f8997367417003caeaf7a1',
    ),
}


def release_cache_dir(cache_dir: Optional[PathLike] = None) -> Path:
    """Where release files are cached: where timm's `url` source caches (`<torch hub dir>/checkpoints`), or
    `cache_dir` as given."""
    return Path(cache_dir) if cache_dir else Path(torch.hub.get_dir()) / 'checkpoints'


def cached_release(url: str, cache_dir: Optional[PathLike] = None) -> Optional[Path]:
    """The cached copy of a release file, or None."""
    path = release_cache_dir(cache_dir) / os.path.basename(urlparse(url).path)
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
    folder = release_cache_dir(cache_dir)
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
                f'Downloading {url} failed ({type(e).__name__}: {first_line(e)}); nothing was kept in {folder}. '
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
            digest = file_digest(path, algorithm)
            if digest != known[algorithm]:
                raise ChecksumError(
                    f'{url} has {algorithm} {digest}, expected {known[algorithm]} for {name}: the download is '
                    f'corrupted or the release file was replaced. Nothing was kept; retry, and report it if it '
                    f'persists.')


def cached_hub_weights(hub_id: str, cache_dir: Optional[PathLike] = None) -> Optional[str]:
    """Path of the cached weights file timm would load for a Hub id, or None."""
    repo_id, _, revision = hub_id.partition('@')
    for filename in HUB_WEIGHTS_FILES:
        path = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir, revision=revision or None)
        if isinstance(path, str):
            return path
    return None


def verify_hub_download(hub_id: str, path: str) -> None:
    """Check a fresh Hub download against its LFS sha256 (the blob name); remove it when it differs."""
    blob = os.path.realpath(path)
    expected = os.path.basename(blob)
    if not _SHA256.fullmatch(expected):
        return  # not stored by content hash (no symlinks, or a non-LFS file): nothing to compare with
    digest = file_digest(blob)
    if digest == expected:
        return
    for p in {path, blob}:
        Path(p).unlink(missing_ok=True)
    raise ChecksumError(
        f'{os.path.basename(path)} of {hub_id} from {constants.ENDPOINT} is corrupted: sha256 {digest}, the Hub '
        f'lists {expected}. The bad copy was removed from the cache; load again to download it again. If this '
        f'repeats, something on the network path (proxy, mirror) alters the file.')


def discard_partial_downloads(hub_id: str, cache_dir: Optional[PathLike]) -> None:
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


# --------------------------------------------------------------------------------------------------------------------
# Reachability


# Connection-phase failures of huggingface_hub's HTTP client (httpx in huggingface_hub 1.x, httpx2 in 2.x): matched by
# class name so that both clients' exception trees are covered without importing either.
_UNREACHABLE = ('ConnectError', 'ConnectTimeout', 'ProxyError', 'UnsupportedProtocol')


def unreachable_reason(url: str, timeout: float = 3.0) -> Optional[str]:
    """Why `url`'s server cannot be reached now, or None when it answers (any HTTP status) within `timeout` seconds.

    One HEAD request through huggingface_hub's own HTTP client (its proxy, TLS and header settings), without retries.
    Only connection failures count (name resolution, refused, connect timeout, proxy): a server that answers slowly
    or with an error is reachable, and its downloads keep huggingface_hub's retries. The request runs in a daemon
    thread because name resolution (getaddrinfo) has no timeout of its own.

    Args:
        url: Any URL on the server, e.g. `huggingface_hub.constants.ENDPOINT`.
        timeout: Seconds to wait at most.
    """
    outcome: List[Optional[str]] = []

    def probe() -> None:
        try:
            get_session().head(url, timeout=timeout, follow_redirects=False)
            outcome.append(None)
        except Exception as e:  # anything not a connection failure means something answered
            names = {t.__name__ for t in type(e).__mro__}
            outcome.append(f'{type(e).__name__}: {first_line(e)}' if names & set(_UNREACHABLE) else None)

    thread = threading.Thread(target=probe, name='timm-t2t-reachability', daemon=True)
    thread.start()
    thread.join(timeout)
    if outcome:
        return outcome[0]
    host = urlparse(url).netloc or url
    return f'no connection to {host} within {timeout:g} s'


# --------------------------------------------------------------------------------------------------------------------
# Healing: unreadable cached files are removed so that the next load downloads them again


def discard_cached_hub_file(path: PathLike, repo_id: str, cache_dir: Optional[PathLike] = None) -> bool:
    """Remove a cached Hub file (its snapshot link and its blob) under huggingface_hub's lock for that blob.

    The lock is the one huggingface_hub's downloader holds while it writes that blob, so a download of the same file
    in progress in another process finishes first. The repo's `refs/` stay: the next load asks the Hub for the file
    again and downloads it afresh.

    Args:
        path: The snapshot path (`.../snapshots/<commit>/<file>`), as `try_to_load_from_cache` returns it.
        repo_id: 'org/name' of the repo.
        cache_dir: The Hub cache; default huggingface_hub's.

    Returns:
        True when removed; False when another process held the lock for 30 s (the file is then left alone).
    """
    blob = os.path.realpath(path)
    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    lock = cache / '.locks' / repo_folder_name(repo_id=repo_id, repo_type='model') / f'{os.path.basename(blob)}.lock'
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        with WeakFileLock(str(lock), timeout=30):
            for p in {str(path), blob}:
                Path(p).unlink(missing_ok=True)
    except Timeout:
        return False
    return True


def discard_cached_release(path: PathLike) -> bool:
    """Remove a cached release file under the lock `download_release` takes; False when it stayed locked 30 s."""
    try:
        with FileLock(str(path) + '.lock', timeout=30):
            Path(path).unlink(missing_ok=True)
    except Timeout:
        return False
    return True
