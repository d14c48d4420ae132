"""The release fallback when the Hub cannot be reached: two loopback servers, the Hub (closed, or a name that does not
resolve) and the release host (`hub_standin.StandIn` serving the official-layout file).

* Hub unreachable, release host up, nothing cached: the release file loads within 5 s, with one warning line; one
  probe and one download of it, then the cache.
* Both unreachable: one error naming both endpoints and the ways out.
* The release file damaged on the way: a clear error, nothing left in the cache; the next load heals.
* `HF_HUB_OFFLINE=1`: no request to either server.

No test reaches the internet: `.invalid` names are refused in-process (`no_dns`), every URL is on 127.0.0.1.
"""
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List

import pytest
import timm
from huggingface_hub import constants

from hub_standin import StandIn
from test_hub import (  # noqa: F401  (fixtures: converted, server, caches, no_retry_wait)
    KWARGS, NAME, RELEASE, RELEASE_PATH, REPO, TOL, blobs, caches, converted, max_diff, no_retry_wait, partial_files,
    publish, release_cached, release_url, server)
from test_hub_resilience import FAST, closed_port, load_error, no_dns, point_hub_at  # noqa: F401  (fixture: no_dns)
from timm_t2t.weights.checkpoint_io import ChecksumError, DownloadError, PretrainedWeightsError
from timm_t2t.weights.download import RELEASE_CHECKSUMS

LOGGER = 'timm_t2t.weights.pretrained'


@pytest.fixture
def closed_hub(converted, monkeypatch) -> str:
    """A Hub stand-in that served the repo and was then shut down: its port refuses connections."""
    hub = StandIn().start()
    publish(hub, converted)
    endpoint = hub.url
    hub.stop()
    point_hub_at(monkeypatch, endpoint)
    return endpoint


def warnings_of(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


@pytest.mark.parametrize('hub', ['closed', 'unresolvable'])
def test_release_file_loads_when_the_hub_is_unreachable(server, caches, closed_hub, no_dns, monkeypatch, caplog,
                                                        capfd, hub):
    endpoint = closed_hub
    if hub == 'unresolvable':
        endpoint = 'http://hub.invalid'
        point_hub_at(monkeypatch, endpoint)
    overlay = dict(url=release_url(server))  # the cfg's Hub id stays; its release URL points at the stand-in
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        model = timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)
    elapsed = time.monotonic() - start
    assert elapsed < FAST, f'{elapsed:.1f} s'
    assert max_diff(model) <= TOL  # converted on load: the official outputs
    (line,) = warnings_of(caplog)
    assert '\n' not in line
    for text in (endpoint, 'cannot be reached', REPO, 'not in the Hub cache', release_url(server), 'official release'):
        assert text in line
    assert 'Retry' not in ''.join(capfd.readouterr())
    assert (server.count('HEAD', RELEASE_PATH), server.count('GET', RELEASE_PATH)) == (1, 1)  # one probe, one GET
    assert release_cached(caches) and not partial_files(caches) and not blobs(caches)

    caplog.clear()  # the next load: the cached release file, no request to the release host
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert max_diff(timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)) <= TOL
    (line,) = warnings_of(caplog)
    assert 'loading the cached release file' in line
    assert len([m for m, p in server.log if p == RELEASE_PATH]) == 2


@pytest.mark.parametrize('release', ['closed', 'unresolvable', 'DNS hangs'])
def test_both_unreachable_is_one_error_naming_both(caches, closed_hub, no_dns, release):
    host = {'closed': f'127.0.0.1:{closed_port()}', 'unresolvable': 'release.invalid',
            'DNS hangs': 'hang.invalid'}[release]
    url = f'http://{host}{RELEASE_PATH}'
    reason = {'closed': 'Connection refused', 'unresolvable': 'Name or service not known',
              'DNS hangs': 'no connection to hang.invalid within 3 s'}[release]
    message = load_error(url)
    for text in (f'Could not reach the Hugging Face Hub at {closed_hub} (', 'Connection refused',
                 f'nor the official release file {url} (', reason, REPO, str(caches / 'hf'),
                 str(caches / 'torch' / 'hub' / 'checkpoints'), 'HF_HUB_OFFLINE=1', 'HF_ENDPOINT',
                 'pretrained_cfg_overlay=dict(file=PATH)'):
        assert text in message
    assert not partial_files(caches) and not blobs(caches) and not release_cached(caches)


@pytest.mark.parametrize('damage', ['corrupt, checksum published', 'truncated, no checksum published'])
def test_damaged_release_file_leaves_nothing_cached(server, caches, closed_hub, no_retry_wait, monkeypatch, damage):
    name = Path(RELEASE_PATH).name
    overlay = dict(url=release_url(server))
    if damage.startswith('corrupt'):
        data = RELEASE.read_bytes()
        monkeypatch.setitem(RELEASE_CHECKSUMS, name, dict(size=len(data), sha256=hashlib.sha256(data).hexdigest()))
        server.faults[RELEASE_PATH] = 'corrupt'
        error, expect = ChecksumError, ['sha256', 'expected', 'corrupted', 'Nothing was kept']
    else:
        server.faults[RELEASE_PATH] = 'truncate'
        error, expect = PretrainedWeightsError, ['not a readable checkpoint', 'removed from the cache', 'load again']
    with pytest.raises(error) as e:
        timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)
    message = str(e.value)
    assert '\n' not in message and name in message
    for text in expect:
        assert text in message
    assert not release_cached(caches) and not partial_files(caches)

    del server.faults[RELEASE_PATH]  # the host serves a good copy again: the next load downloads and loads it
    assert max_diff(timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=overlay, **KWARGS)) <= TOL
    assert server.count('GET', RELEASE_PATH) == 2


def test_offline_reaches_neither_server(server, caches, converted, monkeypatch):
    hub = StandIn().start()
    try:
        publish(hub, converted)
        point_hub_at(monkeypatch, hub.url)
        monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
        with pytest.raises(DownloadError, match='HF_HUB_OFFLINE=1'):
            timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(url=release_url(server)), **KWARGS)
        assert hub.log == [] and server.log == []
    finally:
        hub.stop()
    assert not release_cached(caches) and not blobs(caches)


LOAD_SCRIPT = """
import json, sys, time
import timm, timm_t2t
timm.models._registry._model_pretrained_cfgs['t2t_vit_7'].url = sys.argv[1]  # the release host: the stand-in
start = time.monotonic()
model = timm.create_model('t2t_vit_7.in1k', pretrained=True, **json.loads(sys.argv[2]))
print(f'{time.monotonic() - start:.2f}')
"""


def test_fallback_in_a_fresh_process_is_one_warning_line(server, tmp_path):
    """What a user sees with HF_ENDPOINT refused and the release host up: the model within 5 s of the call, and one
    line on stderr (the warning; no retries, no progress bar when not a terminal)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'HUGGINGFACE_'))}
    env.update(HF_HOME=str(tmp_path / 'hf'), TORCH_HOME=str(tmp_path / 'torch'),
               HF_ENDPOINT=f'http://127.0.0.1:{closed_port()}')
    proc = subprocess.run([sys.executable, '-c', LOAD_SCRIPT, release_url(server), json.dumps(KWARGS)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert float(proc.stdout.strip()) < FAST
    assert proc.stderr.count('\n') == 1, proc.stderr
    assert 'cannot be reached' in proc.stderr and f'official release file {release_url(server)}' in proc.stderr
    assert (tmp_path / 'torch' / 'hub' / 'checkpoints' / Path(RELEASE_PATH).name).read_bytes() == RELEASE.read_bytes()
