"""Conversion with proof, model cards, publishing, batch mode, and the token-labeling auxiliary head."""
import argparse
import hashlib
import json
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from huggingface_hub import ModelCard
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import timm_t2t  # noqa: F401  registers the models
from conftest import checkpoint_files, expected_file, fixture_cases, gmacs_here, golden_case, seeded_checkpoint
from hub_standin import StandIn
from timm_t2t.cli import weights as cli_weights
from timm_t2t.weights import convert, publish
from timm_t2t.weights.checkpoint_io import CheckpointMismatchError, PretrainedWeightsError, read_checkpoint
from timm_t2t.weights.convert import convert_checkpoint

TOL = 1e-4
RELEASE_CASE = golden_case('tiny_release_64')  # t2t_vit_7 stem, narrow backbone, release .pth.tar layout
RELEASE = checkpoint_files(RELEASE_CASE)[0]
RELEASE_KWARGS = RELEASE_CASE['model_kwargs']
# Token labeling on t2t_vit_24's Performer stem: the 224 px golden case, its backbone narrowed the same way
TL_CASE = golden_case('tiny_performer_224')
TL_KWARGS = {k: v for k, v in TL_CASE['model_kwargs'].items() if k != 'num_classes'}
TL_DIM = TL_KWARGS['embed_dim']


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def logits_diff(model: torch.nn.Module, case: dict) -> float:
    expected = load_file(expected_file(case))
    with torch.no_grad():
        return (model.eval()(expected['input']) - expected['logits']).abs().max().item()


def leftovers(parent: Path, name: str):
    return [p for p in parent.iterdir() if name in p.name]


# ---------------------------------------------------------------------------------------------------------------------
# Converter


def test_convert_release_fixture(tmp_path):
    src = RELEASE
    out = tmp_path / 't2t_vit_7.in1k'
    result = convert_checkpoint(src, 't2t_vit_7.in1k', out, model_kwargs=RELEASE_KWARGS, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    assert result.max_abs_diff <= TOL and result.source_sha256 == sha256(src)

    with safe_open(str(out / 'model.safetensors'), 'pt') as f:
        keys = set(f.keys())
    assert {'patch_embed.attn1.kqv.weight', 'patch_embed.attn1.w', 'patch_embed.attn2.mlp.fc1.weight',
            'patch_embed.proj.weight', 'pos_embed', 'blocks.0.attn.qkv.weight', 'head.weight'} <= keys
    assert not any(k.startswith(('tokens_to_token', 'module.')) for k in keys)

    config = json.loads((out / 'config.json').read_text())
    assert config['architecture'] == 't2t_vit_7' and config['num_classes'] == 1000
    assert config['model_args']['depth'] == 2 and config['model_args']['embed_dim'] == 64
    assert config['pretrained_cfg']['license'] == 'bsd-3-clause-clear'
    assert 'url' not in config['pretrained_cfg'] and 'hf_hub_id' not in config['pretrained_cfg']

    card = ModelCard.load(out / 'README.md')
    assert card.data.license == 'bsd-3-clause-clear' and card.data.library_name == 'timm'
    assert card.data.datasets == ['imagenet-1k'] and 'timm' in card.data.tags
    assert 'https://arxiv.org/abs/2101.11986' in card.text and sha256(src) in card.text
    assert '`state_dict_ema` entry' in card.text and 'max |logit difference| = ' in card.text
    assert 'Not applicable' in card.text and not card.data.eval_results  # a narrow backbone is not the released model

    # The folder loads through timm alone and reproduces the official outputs.
    assert logits_diff(timm.create_model(f'local-dir:{out}', pretrained=True), RELEASE_CASE) <= TOL


def test_convert_384(tmp_path):
    """The 384 tag sets the image size (position table of 577 tokens) without an img_size argument."""
    out = tmp_path / '384'
    source = seeded_checkpoint('t2t_vit_14', depth=1, img_size=384)
    convert_checkpoint(source, 't2t_vit_14.in1k_384', out, model_kwargs=dict(depth=1), progress=False)
    config = json.loads((out / 'config.json').read_text())
    assert config['pretrained_cfg']['input_size'] == [3, 384, 384]
    with safe_open(str(out / 'model.safetensors'), 'pt') as f:
        assert f.get_slice('pos_embed').get_shape() == [1, 577, 384]
    reference = timm.create_model('t2t_vit_14', depth=1, img_size=384)
    reference.load_state_dict(load_file(source))  # plain load_state_dict: no filter, no conversion
    x = torch.randn(1, 3, 384, 384)
    with torch.no_grad():
        converted = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
        torch.testing.assert_close(converted(x), reference.eval()(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize('name,size,gmacs', [
    ('t2t_vit_14.in1k', 224, 4.783), ('t2t_vit_t_14.in1k', 224, 6.089), ('t2t_vit_14.in1k_384', 384, 16.37)])
def test_gmacs_match_spec(name, size, gmacs):
    model = timm.create_model(name, device='meta')
    assert convert.count_gmacs(model, (3, size, size)) == pytest.approx(gmacs_here(name, gmacs, size), abs=0.002)
    with pytest.raises(ValueError, match='meta device'):
        convert.count_gmacs(timm.create_model('t2t_vit_7', depth=1), (3, 64, 64))


def test_convert_refuses_other_architecture(tmp_path):
    out = tmp_path / 'out'
    with pytest.raises(CheckpointMismatchError) as e:
        convert_checkpoint(seeded_checkpoint('t2t_vit_14', depth=2), 't2t_vit_7.in1k', out, progress=False)
    assert f"{seeded_checkpoint('t2t_vit_14', depth=2).name} does not fit t2t_vit_7" in str(e.value)
    assert 'cls_token: model (1, 1, 256), checkpoint (1, 1, 384)' in str(e.value)
    assert not out.exists() and not leftovers(tmp_path, 'out')


def test_convert_refuses_when_proof_fails(tmp_path, monkeypatch):
    """A writer that changes one weight: the proof catches it, nothing is written."""
    real_save = convert.save_for_hf

    def bad_save(model, directory, **kwargs):
        real_save(model, directory, **kwargs)
        tensors = load_file(Path(directory) / 'model.safetensors')
        tensors['head.bias'] = tensors['head.bias'] + 1e-2
        save_file(tensors, Path(directory) / 'model.safetensors')

    monkeypatch.setattr(convert, 'save_for_hf', bad_save)
    out = tmp_path / 'out'
    with pytest.raises(PretrainedWeightsError, match='Refusing to write') as e:
        convert_checkpoint(RELEASE, 't2t_vit_7.in1k', out,
                           model_kwargs=RELEASE_KWARGS, progress=False)
    assert '0.01' in str(e.value) and 'limit 0.0001' in str(e.value)
    assert not out.exists() and not leftovers(tmp_path, 'out')


def test_convert_existing_output(tmp_path):
    src = RELEASE
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'old.txt').write_text('old')
    with pytest.raises(FileExistsError, match='--overwrite'):
        convert_checkpoint(src, 't2t_vit_7.in1k', out, model_kwargs=RELEASE_KWARGS, progress=False)
    convert_checkpoint(src, 't2t_vit_7.in1k', out, model_kwargs=RELEASE_KWARGS, overwrite=True, progress=False)
    assert sorted(p.name for p in out.iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    assert [p.name for p in tmp_path.iterdir()] == ['out']


class _Marker:
    """Unpickling this would create a file: proof that no code ran."""
    path = ''

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_bad_checkpoints(tmp_path):
    missing = tmp_path / 'missing.pth.tar'
    with pytest.raises(FileNotFoundError, match=str(missing)):
        convert_checkpoint(missing, 't2t_vit_7.in1k', tmp_path / 'a', progress=False)

    truncated = tmp_path / 'truncated.pth.tar'
    truncated.write_bytes((RELEASE).read_bytes()[:1_000_000])
    with pytest.raises(PretrainedWeightsError, match='truncated or corrupted') as e:
        convert_checkpoint(truncated, 't2t_vit_7.in1k', tmp_path / 'b', progress=False)
    assert 'truncated.pth.tar (1,000,000 bytes)' in str(e.value)

    marker = tmp_path / 'code-ran'
    _Marker.path = str(marker)
    unsafe = tmp_path / 'unsafe.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'extra': _Marker()}, unsafe)
    with pytest.raises(PretrainedWeightsError, match='refused') as e:
        read_checkpoint(unsafe)
    assert 'arbitrary code' in str(e.value) and not marker.exists()
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_unknown_names(tmp_path):
    src = RELEASE
    with pytest.raises(ValueError, match='not a T2T-ViT model'):
        convert_checkpoint(src, 'resnet50', tmp_path / 'x')
    with pytest.raises(ValueError, match='known tags: in1k'):
        convert_checkpoint(src, 't2t_vit_7.in21k', tmp_path / 'x')


# ---------------------------------------------------------------------------------------------------------------------
# Publishing and batch mode


@pytest.fixture(scope='module')
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('push') / 't2t_vit_7.in1k'
    convert_checkpoint(RELEASE, 't2t_vit_7.in1k', out, model_kwargs=RELEASE_KWARGS,
                       progress=False)
    return out


def push_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cli_weights.configure_push_parser(p)
    return p.parse_args(list(argv))


def test_push_dry_run(folder, capsys, monkeypatch):
    monkeypatch.setattr(publish, 'HfApi', None)  # a dry run never talks to the Hub
    assert cli_weights.run_push(push_args(str(folder), '--repo', 'someone/t2t', '--dry-run')) == 0
    out = capsys.readouterr().out
    assert 'would upload to' in out and 'someone/t2t' in out
    for name in ('model.safetensors', 'config.json', 'README.md'):
        path = folder / name
        assert f'{name}  {path.stat().st_size:,} bytes  sha256 {sha256(path)}' in out


def test_push_uploads_folder(folder, monkeypatch):
    calls = []

    class FakeApi:
        def create_repo(self, repo_id, **kwargs):
            calls.append(('create_repo', repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(('upload_folder', kwargs['repo_id'], kwargs))

    monkeypatch.setattr(publish, 'HfApi', FakeApi)
    files = publish.push_folder(folder, 'someone/t2t')
    assert [c[:2] for c in calls] == [('create_repo', 'someone/t2t'), ('upload_folder', 'someone/t2t')]
    assert calls[0][2]['exist_ok'] is True and calls[1][2]['folder_path'] == str(folder)
    assert sorted(f[0] for f in files) == ['README.md', 'config.json', 'model.safetensors']


def test_push_errors(tmp_path, folder):
    (tmp_path / 'config.json').write_text('{}')
    with pytest.raises(FileNotFoundError, match='model.safetensors, README.md') as e:
        publish.push_folder(tmp_path, 'someone/t2t', dry_run=True)
    assert 'timm-t2t convert' in str(e.value)
    with pytest.raises(ValueError, match='ORG/NAME'):
        publish.push_folder(folder, 'no-slash', dry_run=True)
    with pytest.raises(ValueError, match='--all'):
        cli_weights.run_push(push_args('--all', '--repo', 'a/b'))


def test_publish_all_dry_run(tmp_path, monkeypatch, capsys):
    """Batch mode from a release URL (stand-in): download, convert, list; a second run reuses the folder. The
    full-size t2t_vit_7 (seeded weights) in the release layout gets the published figures on its card."""
    release = tmp_path / '71.7_T2T_ViT_7.pth.tar'
    torch.save({'state_dict_ema': load_file(seeded_checkpoint('t2t_vit_7')),
                'args': argparse.Namespace(model='T2t_vit_7'), 'epoch': 309}, release)
    server = StandIn().start()
    try:
        server.files['/main/71.7_T2T_ViT_7.pth.tar'] = release.read_bytes()
        url = server.url + '/main/71.7_T2T_ViT_7.pth.tar'
        monkeypatch.setattr(publish, 'release_urls', lambda: {'t2t_vit_7.in1k': url})
        monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
        monkeypatch.setattr(publish, 'HfApi', None)
        work = tmp_path / 'work'
        args = push_args('--all', '--org', 'someone', '--work-dir', str(work), '--dry-run', '--quiet')
        assert cli_weights.run_push(args) == 0
        assert cli_weights.run_push(args) == 0
        assert server.count('GET', '/main/71.7_T2T_ViT_7.pth.tar') == 1
    finally:
        server.stop()
    out = capsys.readouterr().out
    assert out.count('would upload to') == 2 and 'someone/t2t_vit_7.in1k' in out

    card = ModelCard.load(work / 't2t_vit_7.in1k' / 'README.md')
    values = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert values == {'top-1 accuracy': 71.7, 'top-5 accuracy': 90.886}  # landscape.md: README top-1, PR #2426 top-5
    # spec: 4.3M, and 1.147 GMACs counted in the official code
    assert '**Params (M):** 4.31' in card.text and f"**GMACs:** {gmacs_here('t2t_vit_7', 1.147):.2f}" in card.text
    assert '**Image size:** 224 x 224' in card.text and f'**Source:** {url}' in card.text
    assert sha256(release) in card.text
    converted = timm.create_model(f'local-dir:{work / "t2t_vit_7.in1k"}', pretrained=True)
    reference = timm.create_model('t2t_vit_7')
    reference.load_state_dict(load_file(seeded_checkpoint('t2t_vit_7')))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(converted.eval()(x), reference.eval()(x), rtol=0, atol=1e-5)


def test_release_urls_cover_all_checkpoints():
    urls = convert.release_urls()
    assert len(urls) == 11 and urls['t2t_vit_24.tl_in1k'].endswith('/84.2_T2T_ViT_24.pth.tar')
    assert urls['t2t_vit_14.in1k_384'].endswith('/83.3_T2T_ViT_14.pth.tar')
    assert set(urls) == set(convert.RELEASE_ACCURACY)


# ---------------------------------------------------------------------------------------------------------------------
# Token labeling: the auxiliary head


@pytest.fixture(scope='module')
def tl_checkpoint(tmp_path_factory):
    """The 224 px Performer golden case plus an aux head, in the release layout."""
    state_dict = load_file(checkpoint_files(TL_CASE)[0])
    g = torch.Generator().manual_seed(0)
    aux = dict(weight=torch.randn(1000, TL_DIM, generator=g) * 0.05, bias=torch.randn(1000, generator=g))
    state_dict.update({'aux_head.weight': aux['weight'], 'aux_head.bias': aux['bias']})
    path = tmp_path_factory.mktemp('tl') / '84.2_T2T_ViT_24.pth.tar'
    torch.save({'state_dict_ema': state_dict, 'args': argparse.Namespace(model='T2t_vit_24')}, path)
    return path, aux


def test_token_labeling_inference(tl_checkpoint):
    path, aux = tl_checkpoint
    model = timm.create_model('t2t_vit_24.tl_in1k', pretrained=True, **TL_KWARGS,
                              pretrained_cfg_overlay=dict(file=str(path))).eval()
    expected = load_file(expected_file(TL_CASE))
    with torch.no_grad():
        tokens = model.forward_features(expected['input'])
        logits = model.forward_head(tokens)
    assert (tokens[:, 0] - expected['pre_logits']).abs().max() <= TOL  # the backbone is the official one
    # head(cls) + 0.5 * max over patch tokens of aux_head(patch tokens) (TokenLabeling lvvit.py, timm volo.py)
    aux_scores = F.linear(tokens[:, 1:], aux['weight'], aux['bias']).max(dim=1).values
    assert (logits - (expected['logits'] + 0.5 * aux_scores)).abs().max() <= TOL
    assert not torch.allclose(logits, expected['logits'], atol=1e-2)  # the aux head matters


def test_token_labeling_checkpoint_into_plain_model(tl_checkpoint):
    path, _ = tl_checkpoint
    with pytest.raises(CheckpointMismatchError) as e:
        timm.create_model('t2t_vit_24', pretrained=True, **TL_KWARGS, pretrained_cfg_overlay=dict(file=str(path)))
    assert 'aux_head.weight' in str(e.value) and "'t2t_vit_24.tl_in1k'" in str(e.value)
    assert 'use_aux_head=True' in str(e.value)


def test_aux_head_classifier_api(tl_checkpoint):
    path, _ = tl_checkpoint
    model = timm.create_model('t2t_vit_24.tl_in1k', pretrained=True, num_classes=10, **TL_KWARGS,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert model.head.out_features == 10 and model.aux_head.out_features == 10  # both re-initialised
    x = torch.randn(2, 3, 224, 224)
    assert model(x).shape == (2, 10)
    model.reset_classifier(5)
    assert model.aux_head.out_features == 5 and model(x).shape == (2, 5)
    model.reset_classifier(0)
    assert model.aux_head is None and model(x).shape == (2, TL_DIM)
    assert timm.create_model('t2t_vit_24', **TL_KWARGS).aux_head is None


def test_token_labeling_conversion(tl_checkpoint, tmp_path):
    path, _ = tl_checkpoint
    out = tmp_path / 'tl'
    convert_checkpoint(path, 't2t_vit_24.tl_in1k', out, model_kwargs=TL_KWARGS, progress=False)
    config = json.loads((out / 'config.json').read_text())
    assert config['pretrained_cfg']['classifier'] == ['head', 'aux_head']
    assert config['model_args']['use_aux_head'] is True
    with safe_open(str(out / 'model.safetensors'), 'pt') as f:
        assert f.get_slice('aux_head.weight').get_shape() == [1000, TL_DIM]
    card = ModelCard.load(out / 'README.md')
    assert 'token-labeling' in card.data.tags and 'aux_head' in card.text
    direct = timm.create_model('t2t_vit_24.tl_in1k', pretrained=True, **TL_KWARGS,
                               pretrained_cfg_overlay=dict(file=str(path))).eval()
    loaded = timm.create_model(f'local-dir:{out}', pretrained=True).eval()
    assert loaded.aux_head is not None
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), direct(x), rtol=0, atol=TOL)


# Conversion writes Hub folders for released weights only (t2t_vit_14_resnext and _wide have none).
RELEASED_CASES = [c for c in fixture_cases() if convert.release_urls().keys() & {f"{c['arch']}.{t}" for t in ('in1k',)}]


@pytest.mark.parametrize('case', RELEASED_CASES, ids=[c['id'] for c in RELEASED_CASES])
def test_convert_every_golden_case(case, tmp_path):
    """Every golden case of a released architecture converts, and the folder alone gives the official outputs."""
    out = tmp_path / 'out'
    convert_checkpoint(checkpoint_files(case)[0], case['arch'], out, model_kwargs=case['model_kwargs'], progress=False)
    assert logits_diff(timm.create_model(f'local-dir:{out}', pretrained=True), case) <= TOL
