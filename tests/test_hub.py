"""pretrained=True against loopback servers: Hub path, release-URL fallback, offline, failures, concurrency.

huggingface_hub's real download code runs against `hub_standin.StandIn`. In-process tests point it at the stand-in by
patching `huggingface_hub.constants` (what HF_ENDPOINT / HF_HUB_CACHE / HF_HUB_OFFLINE set at import); the concurrency
test runs separate processes with the real environment variables.
"""
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
import timm
import torch
from huggingface_hub import constants, try_to_load_from_cache
from safetensors.torch import load_file, save_file

import timm_t2t  # noqa: F401  registers the models
from conftest import checkpoint_files, expected_file, golden_case, seeded_checkpoint
from hub_standin import StandIn
from timm_t2t.models.t2t_vit import checkpoint_filter_fn
from timm_t2t.weights.checkpoint_io import CheckpointMismatchError, ChecksumError, DownloadError, PretrainedWeightsError
from timm_t2t.weights.convert import convert_checkpoint
from timm_t2t.weights.download import RELEASE_CHECKSUMS

CASE = golden_case('tiny_release_64')  # t2t_vit_7 stem, narrow backbone, release .pth.tar layout
RELEASE = checkpoint_files(CASE)[0]
EXPECTED = expected_file(CASE)
NAME, KWARGS, REPO = 't2t_vit_7.in1k', CASE['model_kwargs'], 'timm-t2t/t2t_vit_7.in1k'
RELEASE_PATH = '/yitu-opensource/T2T-ViT/releases/download/main/71.7_T2T_ViT_7.pth.tar'
WEIGHTS = f'/{REPO}/resolve/main/model.safetensors'
TOL = 1e-4


@pytest.fixture(scope='module')
def converted(tmp_path_factory) -> Path:
    """The release-style fixture converted to a Hub folder (the round trip starts here)."""
    out = tmp_path_factory.mktemp('converted') / NAME
    convert_checkpoint(RELEASE, NAME, out, model_kwargs=KWARGS, progress=False)
    return out


@pytest.fixture
def server(converted):
    standin = StandIn().start()
    standin.files[RELEASE_PATH] = RELEASE.read_bytes()
    yield standin
    standin.stop()


@pytest.fixture
def caches(server, tmp_path, monkeypatch) -> Path:
    """huggingface_hub pointed at the stand-in, Hub and torch caches under tmp_path."""
    monkeypatch.setattr(constants, 'ENDPOINT', server.url)
    template = server.url + '/{repo_id}/resolve/{revision}/{filename}'
    monkeypatch.setattr(constants, 'HUGGINGFACE_CO_URL_TEMPLATE', template)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hf'))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    return tmp_path


@pytest.fixture
def no_retry_wait(monkeypatch):
    """huggingface_hub's downloader sleeps 1 s before each of its 5 retries of a cut transfer; skip the waits."""
    import time

    import huggingface_hub.file_download

    class NoSleep:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def sleep(seconds):
            pass

    monkeypatch.setattr(huggingface_hub.file_download, 'time', NoSleep())


def publish(server: StandIn, folder: Path, repo_id: str = REPO) -> None:
    server.repos[repo_id] = {p.name: p.read_bytes() for p in folder.iterdir()}


def release_url(server: StandIn) -> str:
    return server.url + RELEASE_PATH


def max_diff(model: torch.nn.Module) -> float:
    expected = load_file(EXPECTED)
    with torch.no_grad():
        return (model.eval()(expected['input']) - expected['logits']).abs().max().item()


def partial_files(root: Path) -> List[Path]:
    return [p for p in root.rglob('*') if p.name.endswith(('.incomplete', '.partial'))]


def blobs(root: Path) -> List[Path]:
    return [p for p in root.rglob('*') if p.parent.name == 'blobs']


def release_cached(root: Path) -> bool:
    return (root / 'torch' / 'hub' / 'checkpoints' / Path(RELEASE_PATH).name).exists()


# ---------------------------------------------------------------------------------------------------------------------
# Hub path, fallback, offline


def test_hub_round_trip(server, caches, converted):
    """convert -> serve -> pretrained=True -> the fixture's logits; the second load comes from the cache."""
    publish(server, converted)
    assert max_diff(timm.create_model(NAME, pretrained=True, **KWARGS)) <= TOL
    assert max_diff(timm.create_model('t2t_vit_7', pretrained=True, **KWARGS)) <= TOL  # default tag
    assert server.count('GET', WEIGHTS) == 1
    assert len(blobs(caches / 'hf')) == 1 and not partial_files(caches)
    assert not release_cached(caches)


def test_hf_hub_name_uses_config(server, caches, converted):
    """`hf-hub:` reads config.json: architecture and model args (the narrow backbone) come from the repo."""
    publish(server, converted)
    model = timm.create_model(f'hf-hub:{REPO}', pretrained=True)
    assert len(model.blocks) == 2 and model.embed_dim == 64
    assert max_diff(model) <= TOL


@pytest.mark.parametrize('repo_state', ['no repo', 'repo without weights'])
def test_fallback_to_release_url(server, caches, converted, caplog, repo_state):
    if repo_state == 'repo without weights':
        server.repos[REPO] = {'README.md': b'coming soon'}
    overlay = dict(url=release_url(server))  # the cfg's hf_hub_id stays; the release URL points at the stand-in
    with caplog.at_level(logging.WARNING, logger='timm_t2t.weights.pretrained'):
        model = timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)
    assert max_diff(model) <= TOL
    warnings = [r.getMessage() for r in caplog.records if r.name == 'timm_t2t.weights.pretrained']
    assert len(warnings) == 1 and '\n' not in warnings[0]
    assert REPO in warnings[0] and release_url(server) in warnings[0]
    assert release_cached(caches) and not partial_files(caches)
    timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)
    assert server.count('GET', RELEASE_PATH) == 1  # cached after the first download


def test_file_and_url_sources(server, caches):
    """pretrained_cfg_overlay file= (timm's route) and a cfg with only a url (no Hub id)."""
    assert max_diff(timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=str(RELEASE)),
                                      **KWARGS)) <= TOL
    overlay = dict(hf_hub_id=None, url=release_url(server))
    assert max_diff(timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)) <= TOL
    assert not any(path.startswith(f'/{REPO}') for _, path in server.log)


def test_offline_loads_cached_copies(server, caches, converted, monkeypatch):
    publish(server, converted)
    overlay = dict(hf_hub_id='timm-t2t/not-published', url=release_url(server))
    timm.create_model(NAME, pretrained=True, **KWARGS)
    timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)
    served = len(server.log)
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    assert max_diff(timm.create_model(NAME, pretrained=True, **KWARGS)) <= TOL
    assert max_diff(timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)) <= TOL
    assert len(server.log) == served  # no request at all
    with pytest.raises(DownloadError, match='HF_HUB_OFFLINE=1') as e:
        timm.create_model('t2t_vit_10', pretrained=True, depth=1)
    assert 'timm-t2t/t2t_vit_10.in1k' in str(e.value) and 'pretrained_cfg_overlay' in str(e.value)


# ---------------------------------------------------------------------------------------------------------------------
# Failures: one clear error, nothing partial left behind


@pytest.mark.parametrize('fault,error,expect', [
    ('truncate', DownloadError, 'should be of size'),
    ('drop', DownloadError, 'RemoteProtocolError'),
    ('corrupt', ChecksumError, 'sha256'),
])
def test_hub_download_faults(server, caches, converted, no_retry_wait, fault, error, expect):
    publish(server, converted)
    server.faults[WEIGHTS] = fault
    with pytest.raises(error) as e:
        timm.create_model(NAME, pretrained=True, **KWARGS)
    message = str(e.value)
    assert REPO in message and expect in message and 'cache' in message
    size = (converted / 'model.safetensors').stat().st_size
    if fault == 'truncate':
        assert f'{size}' in message and f'{size // 2}' in message
    assert not partial_files(caches) and not blobs(caches / 'hf')
    assert not isinstance(try_to_load_from_cache(REPO, 'model.safetensors'), str)
    del server.faults[WEIGHTS]  # the next load downloads a good copy
    assert max_diff(timm.create_model(NAME, pretrained=True, **KWARGS)) <= TOL


def test_partial_hub_downloads_are_discarded_unless_in_progress(tmp_path):
    """huggingface_hub 1.x keeps `.incomplete` blobs of a failed download; the error path removes them, but not one
    that another process is still writing (it holds huggingface_hub's lock for that blob)."""
    from filelock import FileLock

    from timm_t2t.weights.download import discard_partial_downloads
    blobs_dir = tmp_path / 'models--org--m' / 'blobs'
    locks_dir = tmp_path / '.locks' / 'models--org--m'
    blobs_dir.mkdir(parents=True)
    locks_dir.mkdir(parents=True)
    (blobs_dir / 'aaa.incomplete').write_bytes(b'x')
    (blobs_dir / 'bbb.incomplete').write_bytes(b'x')
    (blobs_dir / 'ccc').write_bytes(b'x')  # a complete blob stays
    with FileLock(str(locks_dir / 'bbb.lock')):
        discard_partial_downloads('org/m@main', tmp_path)
    assert sorted(p.name for p in blobs_dir.iterdir()) == ['bbb.incomplete', 'ccc']


def test_hub_unreachable(caches, monkeypatch):
    # No retry wait to skip: the reachability probe answers first (tests/test_hub_resilience.py times it).
    dead = 'http://127.0.0.1:9'
    monkeypatch.setattr(constants, 'ENDPOINT', dead)
    monkeypatch.setattr(constants, 'HUGGINGFACE_CO_URL_TEMPLATE', dead + '/{repo_id}/resolve/{revision}/{filename}')
    with pytest.raises(DownloadError, match='Could not reach') as e:  # the release host is tried too: dead as well
        timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(url=dead + RELEASE_PATH), **KWARGS)
    assert dead in str(e.value) and REPO in str(e.value) and 'HF_HUB_OFFLINE' in str(e.value)
    assert not partial_files(caches) and not blobs(caches)


@pytest.mark.parametrize('fault', ['truncate known size', 'truncate', 'checksum', 'drop', 'unreachable'])
def test_release_download_faults(server, caches, no_retry_wait, monkeypatch, fault):
    name = Path(RELEASE_PATH).name
    url = release_url(server)
    size = RELEASE.stat().st_size
    if fault == 'truncate known size':
        monkeypatch.setitem(RELEASE_CHECKSUMS, name, dict(size=size))
        server.faults[RELEASE_PATH] = 'truncate'
        error, expect = DownloadError, [f'size {size}', f'size {size // 2}', 'nothing was kept']
    elif fault == 'truncate':  # no published size: the short file is caught when read, then removed
        server.faults[RELEASE_PATH] = 'truncate'
        error, expect = PretrainedWeightsError, ['not a readable checkpoint', 'truncated', 'removed from the cache']
    elif fault == 'checksum':
        monkeypatch.setitem(RELEASE_CHECKSUMS, name, dict(sha256='0' * 64))
        error, expect = ChecksumError, ['expected ' + '0' * 64, name, 'Nothing was kept']
    elif fault == 'drop':
        server.faults[RELEASE_PATH] = 'drop'
        error, expect = DownloadError, ['RemoteProtocolError', 'nothing was kept', 'retry']
    else:
        url = 'http://127.0.0.1:9' + RELEASE_PATH
        error, expect = DownloadError, ['ConnectError', 'Check the connection']
    with pytest.raises(error) as e:
        timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(url=url), **KWARGS)
    assert name in str(e.value)
    for text in expect:
        assert text in str(e.value)
    assert not partial_files(caches) and not release_cached(caches)


def test_other_architecture(server, caches, tmp_path):
    """A Hub repo (or file) holding another architecture's weights: sizes named, nothing loaded."""
    other = timm.create_model('t2t_vit_t_14', depth=2)
    state_dict = checkpoint_filter_fn(load_file(seeded_checkpoint('t2t_vit_t_14', depth=2)), other)
    save_file(state_dict, tmp_path / 'model.safetensors')
    server.repos[REPO] = {'model.safetensors': (tmp_path / 'model.safetensors').read_bytes()}
    with pytest.raises(CheckpointMismatchError) as e:
        timm.create_model(NAME, pretrained=True, **KWARGS)
    message = str(e.value)
    assert REPO in message and 'does not fit t2t_vit_7' in message
    assert 'cls_token: model (1, 1, 64), checkpoint (1, 1, 384)' in message
    assert 'transformer stem, embed_dim 384, depth 2' in message and 'performer stem, embed_dim 64, depth 2' in message
    assert not partial_files(caches)
    other_file = seeded_checkpoint('t2t_vit_14', depth=2)
    with pytest.raises(CheckpointMismatchError, match=f'{other_file.name} does not fit'):
        timm.create_model(NAME, pretrained=True, **KWARGS, pretrained_cfg_overlay=dict(file=str(other_file)))


def test_missing_file(server, caches, tmp_path):
    missing = tmp_path / 'nowhere' / 'weights.pth.tar'
    with pytest.raises(FileNotFoundError, match=str(missing)):
        timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file=str(missing)), **KWARGS)
    # A repo without the weights file and no release URL to fall back to
    server.repos[REPO] = {'README.md': b'coming soon'}
    with pytest.raises(PretrainedWeightsError, match='no release URL') as e:
        timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(url=None), **KWARGS)
    assert REPO in str(e.value) and 'pretrained_cfg_overlay' in str(e.value)
    assert not partial_files(caches) and not blobs(caches)


# ---------------------------------------------------------------------------------------------------------------------
# Two processes at once, then one offline

LOAD_SCRIPT = """
import json, sys
import timm, torch
import timm_t2t
from safetensors.torch import load_file
expected = load_file(sys.argv[1])
result = {}
for key, overlay in (('hub', {}), ('release', dict(hf_hub_id='timm-t2t/not-published', url=sys.argv[2]))):
    model = timm.create_model('t2t_vit_7.in1k', pretrained=True, pretrained_cfg_overlay=overlay,
                              **json.loads(sys.argv[3])).eval()
    with torch.no_grad():
        result[key] = (model(expected['input']) - expected['logits']).abs().max().item()
print(json.dumps(result))
"""


def test_two_processes_then_offline(server, converted, tmp_path):
    """Both processes download at the same time (the stand-in holds the first GET until the other process asked for
    the file); each file is fetched once and both processes load it. A third process, offline, loads the cache."""
    publish(server, converted)
    absent = '/timm-t2t/not-published/resolve/main/model.safetensors'
    server.gates = {WEIGHTS: (WEIGHTS, 2), RELEASE_PATH: (absent, 2)}
    script = tmp_path / 'load.py'
    script.write_text(LOAD_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'HUGGINGFACE_'))}
    env.update(HF_HOME=str(tmp_path / 'hf_home'), TORCH_HOME=str(tmp_path / 'torch'),
               HF_HUB_DISABLE_PROGRESS_BARS='1', HF_ENDPOINT=server.url)
    cmd = [sys.executable, str(script), str(EXPECTED), release_url(server), json.dumps(KWARGS)]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        assert result['hub'] <= TOL and result['release'] <= TOL
    assert not server.gate_timeouts  # the downloads really overlapped
    assert server.count('GET', WEIGHTS) == 1 and server.count('GET', RELEASE_PATH) == 1
    assert len(blobs(tmp_path / 'hf_home')) == 1 and not partial_files(tmp_path)
    assert (tmp_path / 'torch' / 'hub' / 'checkpoints' / Path(RELEASE_PATH).name).read_bytes() == RELEASE.read_bytes()

    served = len(server.log)
    env.update(HF_HUB_OFFLINE='1', HF_ENDPOINT='http://127.0.0.1:9')
    offline = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert offline.returncode == 0, offline.stderr
    result = json.loads(offline.stdout.strip().splitlines()[-1])
    assert result['hub'] <= TOL and result['release'] <= TOL
    assert len(server.log) == served
