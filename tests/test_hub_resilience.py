"""pretrained=True when things go wrong: an unreachable Hub fails fast, cached copies load at once, and unreadable
cached files are removed so that the next load heals. Loopback servers only (`hub_standin.StandIn`); no test reaches
the internet: unresolvable hosts are `.invalid` names (RFC 2606), refused in-process by a patched getaddrinfo.
"""
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

import pytest
import timm
from huggingface_hub import constants, try_to_load_from_cache
from huggingface_hub.file_download import repo_folder_name

from test_hub import (  # noqa: F401  (fixtures: converted, server, caches)
    KWARGS, NAME, RELEASE_PATH, REPO, TOL, WEIGHTS, blobs, caches, converted, max_diff, partial_files,
    publish, release_cached, release_url, server)
from timm_t2t.weights.checkpoint_io import DownloadError, PretrainedWeightsError
from timm_t2t.weights.download import discard_cached_hub_file

FAST = 5.0  # seconds an unreachable Hub may take to answer


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture
def no_dns(monkeypatch):
    """Names under .invalid fail to resolve at once, in-process; `hang.invalid` hangs like a dead DNS server."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.endswith('.invalid'):
            if host.startswith('hang.'):
                time.sleep(30)
            raise socket.gaierror(socket.EAI_NONAME, 'Name or service not known')
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, 'getaddrinfo', getaddrinfo)


def point_hub_at(monkeypatch, endpoint: str) -> None:
    monkeypatch.setattr(constants, 'ENDPOINT', endpoint)
    monkeypatch.setattr(constants, 'HUGGINGFACE_CO_URL_TEMPLATE', endpoint + '/{repo_id}/resolve/{revision}/{filename}')


def load_error(url: Optional[str]) -> str:
    """The error of `pretrained=True` with `url` as the tag's release URL, checked to come as one line within 5 s."""
    start = time.monotonic()
    with pytest.raises(DownloadError) as e:
        timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(url=url), **KWARGS)
    elapsed = time.monotonic() - start
    assert elapsed <= FAST, f'{elapsed:.1f} s'
    assert '\n' not in str(e.value)
    return str(e.value)


# ---------------------------------------------------------------------------------------------------------------------
# Fail fast


@pytest.mark.parametrize('endpoint,reason', [
    ('closed port', 'Connection refused'),
    ('http://hub.invalid', 'Name or service not known'),
    ('http://hang.invalid', 'no connection to hang.invalid within 3 s'),
])
def test_unreachable_hub_fails_fast(caches, no_dns, monkeypatch, capfd, endpoint, reason):
    """Nothing cached, the release host unreachable too (tests/test_release_fallback.py has it answering): one error
    naming both, within 5 s."""
    endpoint = f'http://127.0.0.1:{closed_port()}' if endpoint == 'closed port' else endpoint
    point_hub_at(monkeypatch, endpoint)
    release = f'http://127.0.0.1:{closed_port()}{RELEASE_PATH}'
    message = load_error(release)
    for text in (endpoint, reason, release, 'Connection refused', REPO, 'not in the Hub cache', str(caches / 'hf'),
                 Path(RELEASE_PATH).name, 'HF_HUB_OFFLINE=1', 'pretrained_cfg_overlay=dict(file=PATH)'):
        assert text in message
    out, err = capfd.readouterr()
    assert 'Retry' not in out + err
    assert not partial_files(caches) and not blobs(caches) and not release_cached(caches)


def test_unreachable_hub_without_release_url(caches, monkeypatch):
    """A cfg without a release URL (a Hub-only tag): the error names the Hub alone."""
    endpoint = f'http://127.0.0.1:{closed_port()}'
    point_hub_at(monkeypatch, endpoint)
    message = load_error(None)
    assert message.startswith(f'Could not reach the Hugging Face Hub at {endpoint} (') and 'release' not in message
    assert 'HF_HUB_OFFLINE=1' in message and 'pretrained_cfg_overlay=dict(file=PATH)' in message


def test_unreachable_hub_loads_cached_copies_at_once(server, caches, converted, monkeypatch, caplog, capfd):
    """A cached Hub snapshot, and a cached release file (for a tag whose repo does not exist), load at once with one
    line saying so; no request goes out but the probe."""
    publish(server, converted)
    fallback = dict(hf_hub_id='timm-t2t/not-published', url=release_url(server))
    timm.create_model(NAME, pretrained=True, **KWARGS)
    timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=fallback, **KWARGS)
    endpoint = f'http://127.0.0.1:{closed_port()}'
    point_hub_at(monkeypatch, endpoint)
    for overlay, cached in ((None, 'the cached timm-t2t/t2t_vit_7.in1k'), (fallback, 'the cached release file')):
        caplog.clear()
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger='timm_t2t.weights.pretrained'):
            model = timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)
        assert time.monotonic() - start <= FAST
        assert max_diff(model) <= TOL
        lines = [r.getMessage() for r in caplog.records if r.name == 'timm_t2t.weights.pretrained']
        assert len(lines) == 1 and '\n' not in lines[0]
        assert f'{endpoint} cannot be reached' in lines[0] and cached in lines[0]
    assert 'Retry' not in ''.join(capfd.readouterr())


CLI_SCRIPT = """
import sys, time
import timm, timm_t2t
from timm.models import get_pretrained_cfg
from timm_t2t.cli.main import main
# The release host too, so that no request leaves the machine: the registered cfg (get_pretrained_cfg gives a copy).
timm.models._registry._model_pretrained_cfgs['t2t_vit_7'].url = sys.argv[2]
assert get_pretrained_cfg('t2t_vit_7.in1k').url == sys.argv[2]
start = time.monotonic()
rc = main(['predict', sys.argv[1], '--model', 't2t_vit_7'])
print(f'{time.monotonic() - start:.2f}')
sys.exit(rc)
"""


@pytest.mark.parametrize('endpoint', ['closed port', 'http://hub.invalid'])
def test_cli_predict_unreachable_is_one_fast_line(tmp_path, endpoint):
    """`timm-t2t predict` in its own process with HF_ENDPOINT and the release host unreachable: one line naming both,
    no retries, within 5 s of the command starting (imports excluded: they take the same time with or without
    network)."""
    from PIL import Image
    image = tmp_path / 'image.png'
    Image.new('RGB', (32, 32), (200, 40, 90)).save(image)
    endpoint = f'http://127.0.0.1:{closed_port()}' if endpoint == 'closed port' else endpoint
    env = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'HUGGINGFACE_'))}
    env.update(HF_HOME=str(tmp_path / 'hf'), TORCH_HOME=str(tmp_path / 'torch'), HF_ENDPOINT=endpoint)
    release = f'http://127.0.0.1:{closed_port()}{RELEASE_PATH}'
    proc = subprocess.run([sys.executable, '-c', CLI_SCRIPT, str(image), release], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert float(proc.stdout.strip()) <= FAST
    assert proc.stderr.count('\n') == 1 and 'Retry' not in proc.stderr and 'Traceback' not in proc.stderr
    assert proc.stderr.startswith(f'timm-t2t predict: error: Could not reach the Hugging Face Hub at {endpoint}')
    assert f'nor the official release file {release}' in proc.stderr
    assert 'HF_HUB_OFFLINE=1' in proc.stderr and '--weights FILE' in proc.stderr


# ---------------------------------------------------------------------------------------------------------------------
# Heal


def hub_cache_entries(root: Path):
    """(snapshot file, blob) of the repo's cached weights: what healing must remove."""
    folder = root / 'hf' / repo_folder_name(repo_id=REPO, repo_type='model')
    return sorted(folder.glob('snapshots/*/model.safetensors')), sorted((folder / 'blobs').glob('*'))


def assert_healed_message(message: str, snapshot: str) -> None:
    assert '\n' not in message
    for text in (REPO, 'model.safetensors', snapshot, 'not a readable checkpoint', 'removed from the cache',
                 'blobs/', 'load again'):
        assert text in message


def test_corrupt_but_consistent_hub_file_heals(server, caches, converted):
    """The server sends half the file with a Content-Length and ETag that agree (a bad upload): a clear error, the bad
    copy leaves the cache; the server fixed, the next call downloads again and matches the golden outputs."""
    publish(server, converted)
    server.faults[WEIGHTS] = 'short'
    with pytest.raises(PretrainedWeightsError) as e:
        timm.create_model(NAME, pretrained=True, **KWARGS)
    cached_dir = caches / 'hf' / repo_folder_name(repo_id=REPO, repo_type='model')
    assert_healed_message(str(e.value), str(cached_dir / 'snapshots'))
    assert hub_cache_entries(caches) == ([], [])
    assert not isinstance(try_to_load_from_cache(REPO, 'model.safetensors'), str)

    del server.faults[WEIGHTS]  # the upload is fixed (same commit: the stand-in's commit is the repo's hash)
    assert max_diff(timm.create_model(NAME, pretrained=True, **KWARGS)) <= TOL
    assert server.count('GET', WEIGHTS) == 2


@pytest.mark.parametrize('hub', ['reachable', 'unreachable'])
def test_damaged_cached_hub_file_heals(server, caches, converted, monkeypatch, hub):
    """A file that was fine when downloaded and was damaged later on disk: removed, then downloaded again."""
    publish(server, converted)
    timm.create_model(NAME, pretrained=True, **KWARGS)
    (snapshot,), (blob,) = hub_cache_entries(caches)
    data = blob.read_bytes()
    blob.write_bytes(data[:len(data) // 3])
    if hub == 'unreachable':
        point_hub_at(monkeypatch, f'http://127.0.0.1:{closed_port()}')
    with pytest.raises(PretrainedWeightsError) as e:
        timm.create_model(NAME, pretrained=True, **KWARGS)
    assert_healed_message(str(e.value), str(snapshot))
    assert hub_cache_entries(caches) == ([], [])

    point_hub_at(monkeypatch, server.url)
    assert max_diff(timm.create_model(NAME, pretrained=True, **KWARGS)) <= TOL
    assert server.count('GET', WEIGHTS) == 2


def test_damaged_cached_release_file_heals(server, caches):
    overlay = dict(hf_hub_id='timm-t2t/not-published', url=release_url(server))
    timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)
    cached = caches / 'torch' / 'hub' / 'checkpoints' / Path(RELEASE_PATH).name
    data = cached.read_bytes()
    cached.write_bytes(data[:len(data) // 2])
    with pytest.raises(PretrainedWeightsError) as e:
        timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)
    message = str(e.value)
    for text in (str(cached), release_url(server), 'not a readable checkpoint', 'removed from the cache',
                 'load again'):
        assert text in message
    assert not release_cached(caches)
    assert max_diff(timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)) <= TOL
    assert server.count('GET', RELEASE_PATH) == 2


def test_user_file_is_never_removed(tmp_path):
    bad = tmp_path / 'weights.safetensors'
    bad.write_bytes(b'not a checkpoint at all')
    with pytest.raises(PretrainedWeightsError, match='not a readable checkpoint'):
        timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=str(bad)), **KWARGS)
    assert bad.read_bytes() == b'not a checkpoint at all'


def test_heal_waits_for_a_download_in_progress(tmp_path):
    """The blob is removed under huggingface_hub's lock for it: a process writing that blob finishes first."""
    from filelock import FileLock

    folder = tmp_path / repo_folder_name(repo_id='org/m', repo_type='model')
    blob = folder / 'blobs' / ('a' * 64)
    snapshot = folder / 'snapshots' / ('c' * 40) / 'model.safetensors'
    blob.parent.mkdir(parents=True)
    snapshot.parent.mkdir(parents=True)
    blob.write_bytes(b'x')
    snapshot.symlink_to(blob)
    lock_path = tmp_path / '.locks' / folder.name / f'{blob.name}.lock'
    lock_path.parent.mkdir(parents=True)
    acquired, released = threading.Event(), []

    def download_in_progress() -> None:  # holds the blob's lock for 1 s, as huggingface_hub's downloader does
        with FileLock(str(lock_path)):
            acquired.set()
            time.sleep(1.0)
            assert blob.exists()  # untouched while the lock is held
            released.append(time.monotonic())

    thread = threading.Thread(target=download_in_progress)
    thread.start()
    acquired.wait(10)
    assert discard_cached_hub_file(snapshot, 'org/m', tmp_path)
    thread.join()
    assert released and time.monotonic() >= released[0]
    assert not blob.exists() and not snapshot.is_symlink()


def test_config_json_loads_without_num_classes(converted):
    """timm reads the class count from config.json's root; model_args leave it to the loader (transformers passes it
    itself)."""
    config = json.loads((converted / 'config.json').read_text())
    assert 'num_classes' not in config.get('model_args', {}) and config['num_classes'] == 1000
    assert max_diff(timm.create_model(f'local-dir:{converted}', pretrained=True)) <= TOL


def test_refused_release_file_stays_cached(server, caches, tmp_path):
    """A readable file that is refused (it pickles more than tensors) is not damaged: it is not removed, so that it is
    not downloaded again on every call."""
    import datetime

    import torch
    unsafe = tmp_path / 'unsafe.pth.tar'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'when': datetime.date(2021, 1, 1)}, unsafe)
    server.files[RELEASE_PATH] = unsafe.read_bytes()
    overlay = dict(hf_hub_id=None, url=release_url(server))
    for _ in range(2):
        with pytest.raises(PretrainedWeightsError, match='was refused'):
            timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)
        assert release_cached(caches)
    assert server.count('GET', RELEASE_PATH) == 1
