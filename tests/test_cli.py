"""The `timm-t2t` command line: list, predict, features, the delegated commands, bad input, and the demo.

Weights are seeded random checkpoints at the real sizes (conftest.seeded_checkpoint, loaded with `pretrained=True` and
`file=`) or checkpoints written here; nothing
reaches the network (the Hub-reachable branch of the demo runs against the loopback stand-in). Expected values are
computed independently of the CLI: images preprocessed by hand as the spec says (resize the shorter side to
floor(S / crop_pct) bicubic, center crop, ImageNet mean/std) and run through the model directly.
"""
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pytest
import timm
import torch
from huggingface_hub import constants
from PIL import Image
from safetensors.torch import load_file

import timm_t2t  # noqa: F401  registers the models
from conftest import gmacs_here, seeded_checkpoint
from hub_standin import StandIn
from timm_t2t.cli import demo_run, listing
from timm_t2t.cli.demo import QUICK
from timm_t2t.cli.errors import CliError
from timm_t2t.cli.main import DELEGATED, main

F7 = seeded_checkpoint('t2t_vit_7')
F14_D2 = seeded_checkpoint('t2t_vit_14', depth=2)
MEAN = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
REPO_ROOT = Path(__file__).resolve().parents[1]

# Spec section 1 (params, trainable and with the frozen buffers) and section 5 (MACs the official code computes;
# `gmacs_here` gives this package's), landscape section 2.
SPEC = {
    't2t_vit_7.in1k': (4_255_694, 4_310_222, 1.147, 224, 71.7),
    't2t_vit_10.in1k': (5_834_702, 5_889_230, 1.516, 224, 75.2),
    't2t_vit_12.in1k': (6_887_374, 6_941_902, 1.763, 224, 76.5),
    't2t_vit_14.in1k': (21_465_806, 21_545_550, 4.783, 224, 81.5),
    't2t_vit_14.in1k_384': (21_465_806, 21_691_470, 16.37, 384, 83.3),
    't2t_vit_19.in1k': (39_085_070, 39_177_422, 8.480, 224, 81.9),
    't2t_vit_24.in1k': (64_000_974, 64_105_934, 13.662, 224, 82.3),
    't2t_vit_t_14.in1k': (21_465_422, 21_541_070, 6.089, 224, 81.7),
    't2t_vit_t_19.in1k': (39_084_686, 39_172_942, 9.785, 224, 82.4),
    't2t_vit_t_24.in1k': (64_000_590, 64_101_454, 14.967, 224, 82.6),
    't2t_vit_14_resnext': (21_465_806, 21_545_550, 4.783, 224, None),
    't2t_vit_14_wide': (25_000_910, 25_156_302, None, 224, None),
}
ALL_NAMES = set(SPEC) | {'t2t_vit_24.tl_in1k'}


def run_cli(capsys, *argv: str) -> Tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def reference_input(path: Path, size: int = 224, crop_pct: float = 0.9) -> torch.Tensor:
    """Spec section 6 eval preprocessing, by hand: (1, 3, size, size)."""
    img = Image.open(path).convert('RGB')
    scale = math.floor(size / crop_pct)
    w, h = img.size
    nw, nh = (scale, int(scale * h / w)) if w <= h else (int(scale * w / h), scale)
    img = img.resize((nw, nh), Image.BICUBIC)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.).permute(2, 0, 1)
    return ((x - MEAN) / STD).unsqueeze(0)


def top_k(logits: torch.Tensor, k: int) -> List[Tuple[int, float]]:
    probs, idx = logits.softmax(-1)[0].topk(k)
    return list(zip(idx.tolist(), probs.tolist()))


def check_predictions(got: Dict[str, Any], expected: List[Tuple[int, float]], labels: Sequence[str] = ()) -> None:
    assert [p['index'] for p in got['top_k']] == [i for i, _ in expected]
    for p, (i, prob) in zip(got['top_k'], expected):
        assert p['probability'] == pytest.approx(prob, abs=1e-5)
        if labels:
            assert p['label'] == labels[i]


@pytest.fixture(scope='module')
def images(tmp_path_factory) -> Dict[str, Path]:
    d = tmp_path_factory.mktemp('images')
    rng = np.random.RandomState(0)
    paths = {
        'wide': d / 'wide.png',    # 300 x 200, landscape
        'tall': d / 'tall.jpg',    # 180 x 260, portrait
        'gray': d / 'gray.png',    # grayscale, converted to RGB
    }
    Image.fromarray((rng.rand(200, 300, 3) * 255).astype('uint8')).save(paths['wide'])
    grad = np.linspace(0, 255, 180 * 260 * 3).reshape(260, 180, 3).astype('uint8')
    Image.fromarray(grad).save(paths['tall'], quality=95)
    Image.fromarray((rng.rand(224, 224) * 255).astype('uint8'), mode='L').save(paths['gray'])
    paths['text'] = d / 'notes.png'
    paths['text'].write_text('not an image')
    return paths


@pytest.fixture(scope='module')
def model7() -> torch.nn.Module:
    """t2t_vit_7 with the seeded weights, loaded the documented way (not through the CLI)."""
    return timm.create_model('t2t_vit_7', pretrained=True, pretrained_cfg_overlay=dict(file=str(F7))).eval()


# --------------------------------------------------------------------------------------------------------------------
# list


@pytest.fixture(scope='module')
def list_rows(tmp_path_factory) -> Dict[str, Dict[str, Any]]:
    """`list --json` with a Hub cache holding t2t_vit_7.in1k and a torch cache holding the 75.2 release file."""
    tmp = tmp_path_factory.mktemp('caches')
    snapshot = tmp / 'hf' / 'models--timm-t2t--t2t_vit_7.in1k' / 'snapshots' / ('a' * 40)
    snapshot.mkdir(parents=True)
    (snapshot / 'model.safetensors').write_bytes(b'x')
    (snapshot.parents[1] / 'refs').mkdir()
    (snapshot.parents[1] / 'refs' / 'main').write_text('a' * 40)
    (tmp / 'torch' / 'hub' / 'checkpoints').mkdir(parents=True)
    (tmp / 'torch' / 'hub' / 'checkpoints' / '75.2_T2T_ViT_10.pth.tar').write_bytes(b'x')
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, 'HF_HUB_CACHE', str(tmp / 'hf'))
        mp.setenv('TORCH_HOME', str(tmp / 'torch'))
        rows = listing._model_rows()
    return {r['name']: r for r in rows}


def test_list_json_matches_spec(list_rows, capsys):
    assert set(list_rows) == ALL_NAMES
    for name, (params, params_all, gmacs, res, top1) in SPEC.items():
        row = list_rows[name]
        assert (row['params'], row['params_with_buffers'], row['img_size'], row['top1']) == (
            params, params_all, res, top1), name
        if gmacs is not None:
            assert row['gmacs'] == pytest.approx(gmacs_here(name, gmacs, res), abs=2e-3), name
    assert list_rows['t2t_vit_14.in1k']['top5'] == pytest.approx(95.666)
    # token labeling: the auxiliary head (512 x 1000 + 1000) on top of t2t_vit_24
    assert list_rows['t2t_vit_24.tl_in1k']['params'] == 64_000_974 + 513_000
    assert list_rows['t2t_vit_24.tl_in1k']['top1'] == 84.2
    assert list_rows['t2t_vit_14.in1k']['hf_hub_id'] == 'timm-t2t/t2t_vit_14.in1k'
    assert list_rows['t2t_vit_14.in1k']['url'].endswith('/releases/download/main/81.5_T2T_ViT_14.pth.tar')
    assert list_rows['t2t_vit_14_wide']['hf_hub_id'] is None and list_rows['t2t_vit_14_wide']['url'] is None
    cached = {name: r['cached'] for name, r in list_rows.items() if r['cached']}
    assert cached == {'t2t_vit_7.in1k': 'hub', 't2t_vit_10.in1k': 'release'}


def test_list_text_and_json_output(capsys):
    rc, out, err = run_cli(capsys, 'list')
    assert rc == 0 and not err
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith('t2t_vit')}
    assert set(lines) == ALL_NAMES
    gmacs_7, gmacs_384 = gmacs_here('t2t_vit_7', 1.147), gmacs_here('t2t_vit_14', 16.37, 384)
    assert lines['t2t_vit_7.in1k'][:7] == ['t2t_vit_7.in1k', '4.26M', '4.31M', f'{gmacs_7:.2f}', '224', '71.7', '90.89']
    assert lines['t2t_vit_14.in1k_384'][3:6] == [f'{gmacs_384:.2f}', '384', '83.3']
    assert lines['t2t_vit_14_wide'][5:7] == ['-', '-']
    rc, out, _ = run_cli(capsys, 'list', '--json')
    assert rc == 0 and {r['name'] for r in json.loads(out)} == ALL_NAMES


# --------------------------------------------------------------------------------------------------------------------
# predict


def test_predict_matches_reference_preprocessing(images, model7, capsys):
    paths = [images['wide'], images['tall'], images['gray']]
    rc, out, err = run_cli(capsys, 'predict', *paths, '--model', 't2t_vit_7', '--weights', F7, '--top-k', 3,
                           '--batch-size', 2, '--json')
    assert rc == 0, err
    result = json.loads(out)
    assert result['model'] == 't2t_vit_7' and len(result['predictions']) == 3
    labels = timm.data.ImageNetInfo().label_descriptions()
    for got, path in zip(result['predictions'], paths):
        assert got['image'] == str(path)
        with torch.no_grad():
            check_predictions(got, top_k(model7(reference_input(path)), 3), labels)

    # batching does not change the answer; the text form shows the same classes
    rc, out8, _ = run_cli(capsys, 'predict', *paths, '--model', 't2t_vit_7', '--weights', F7, '--top-k', 3, '--json')
    assert json.loads(out8)['predictions'] == result['predictions']
    rc, text, _ = run_cli(capsys, 'predict', images['wide'], '--model', 't2t_vit_7', '--weights', F7, '--top-k', 2)
    assert rc == 0
    first = result['predictions'][0]['top_k'][0]
    assert str(images['wide']) in text and f"[{first['index']}] {first['label']}" in text
    assert f"{100 * first['probability']:6.2f}%" in text


def test_predict_finetuned_checkpoint_keeps_its_head(images, tmp_path, capsys):
    """A plain state dict with 3 classes and 1 block: the head is loaded (not replaced), labels are indices."""
    torch.manual_seed(0)
    model = timm.create_model('t2t_vit_7', depth=1, num_classes=3).eval()
    torch.save(model.state_dict(), tmp_path / 'finetuned.pth')
    rc, out, err = run_cli(capsys, 'predict', images['wide'], '--model', 't2t_vit_7', '--model-kwargs', 'depth=1',
                           '--weights', tmp_path / 'finetuned.pth', '--top-k', 5, '--json')
    assert rc == 0, err
    got = json.loads(out)['predictions'][0]
    assert len(got['top_k']) == 3  # top-k clamped to the class count
    with torch.no_grad():
        check_predictions(got, top_k(model(reference_input(images['wide'])), 3), ['0', '1', '2'])


def test_predict_save_for_hf_folder(images, tmp_path, capsys):
    """timm's export layout: config.json names the architecture, size, crop and labels; no --model needed."""
    torch.manual_seed(1)
    overlay = dict(input_size=(3, 64, 64), crop_pct=1.0, num_classes=2)
    model = timm.create_model('t2t_vit_7', depth=1, pretrained_cfg_overlay=overlay).eval()
    timm.models.save_for_hf(model, tmp_path / 'export', safe_serialization=True,
                            model_config=dict(label_names=['cat', 'dog']), model_args=dict(depth=1))
    rc, out, err = run_cli(capsys, 'predict', images['tall'], '--weights', tmp_path / 'export', '--json')
    assert rc == 0, err
    with torch.no_grad():
        expected = top_k(model(reference_input(images['tall'], size=64, crop_pct=1.0)), 2)
    check_predictions(json.loads(out)['predictions'][0], expected, ['cat', 'dog'])

    rc, _, err = run_cli(capsys, 'predict', images['tall'], '--weights', tmp_path / 'export' / 'model.safetensors',
                         '--model', 't2t_vit_14')
    assert rc == 2 and 'saved from t2t_vit_7' in err and '--model t2t_vit_7' in err


def test_predict_infers_resolution_from_pos_embed(images, capsys):
    """A 384 checkpoint without config: the model is built at 384 (24 x 24 tokens), not resampled to 224."""
    rc, out, err = run_cli(capsys, 'predict', images['wide'], '--model', 't2t_vit_14', '--model-kwargs', 'depth=1',
                           '--weights', seeded_checkpoint('t2t_vit_14', depth=1, img_size=384), '--top-k', 1)
    assert rc == 0, err
    assert 'input 384x384' in out


# --------------------------------------------------------------------------------------------------------------------
# features


def test_features_every_tap_and_saved(images, model7, tmp_path, capsys):
    out_file = tmp_path / 'maps.safetensors'
    rc, out, err = run_cli(capsys, 'features', images['wide'], '--model', 't2t_vit_7', '--weights', F7,
                           '--out', out_file)
    assert rc == 0, err
    names = ['patch_embed.attn1', 'patch_embed.attn2'] + [f'blocks.{i}' for i in range(7)]
    shapes = [(1, 64, 56, 56), (1, 64, 28, 28)] + [(1, 256, 14, 14)] * 7
    for name, shape in zip(names, shapes):
        assert re.search(rf'{re.escape(name)}\s+stride\s+\d+\s+{re.escape(str(shape))}', out), name
    saved = load_file(out_file)
    assert set(saved) == set(names)
    with torch.no_grad():
        expected = model7.forward_intermediates(reference_input(images['wide']), intermediates_only=True)
    for name, shape, ref in zip(names, shapes, expected):
        assert tuple(saved[name].shape) == shape
        torch.testing.assert_close(saved[name], ref, atol=1e-5, rtol=0)
    assert not list(tmp_path.glob('.*partial'))


# --------------------------------------------------------------------------------------------------------------------
# bad input: one line, exit code 2, no traceback


def _truncated_safetensors(tmp: Path) -> Path:
    path = tmp / 'truncated.safetensors'
    path.write_bytes(F7.read_bytes()[:4096])
    return path


BAD_INPUT = [
    ('missing image', lambda i, t: ['predict', t / 'nope.png', '--model', 't2t_vit_7', '--weights', F7],
     'nope.png: no such file'),
    ('not an image', lambda i, t: ['predict', i['text'], '--model', 't2t_vit_7', '--weights', F7],
     'is not an image Pillow can read'),
    ('folder as image', lambda i, t: ['features', t, '--model', 't2t_vit_7'], 'is a folder'),
    ('unknown model', lambda i, t: ['predict', i['wide'], '--model', 't2t_vit_77'],
     "unknown model 't2t_vit_77' (did you mean 't2t_vit_7'?)"),
    ('unknown tag', lambda i, t: ['predict', i['wide'], '--model', 't2t_vit_7.in22k'],
     "'t2t_vit_7' has no pretrained tag 'in22k': use one of t2t_vit_7.in1k"),
    ('no released weights', lambda i, t: ['predict', i['wide'], '--model', 't2t_vit_14_wide'],
     'has no released weights: pass --weights FILE'),
    ('wrong architecture', lambda i, t: ['predict', i['wide'], '--model', 't2t_vit_14', '--weights', F7],
     'does not fit t2t_vit_14'),
    ('wrong depth (features)', lambda i, t: ['features', i['wide'], '--model', 't2t_vit_14', '--weights', F14_D2],
     'model tensors are missing from the checkpoint'),
    ('missing weights', lambda i, t: ['predict', i['wide'], '--model', 't2t_vit_7', '--weights', t / 'w.pth'],
     'no such checkpoint file'),
    ('weights not a checkpoint', lambda i, t: ['predict', i['wide'], '--model', 't2t_vit_7', '--weights', i['text']],
     'notes.png'),  # weights.checkpoint_io.read_checkpoint words it; see tests/test_hub*.py for its messages
    ('truncated safetensors', lambda i, t: ['predict', i['wide'], '--model', 't2t_vit_7', '--weights',
                                            _truncated_safetensors(t)], 'is not a readable safetensors file'),
    ('no model for a bare checkpoint', lambda i, t: ['predict', i['wide'], '--weights', F7], '--model is required'),
    ('features out folder missing', lambda i, t: ['features', i['wide'], '--model', 't2t_vit_7', '--weights', F7,
                                                  '--out', t / 'no' / 'f.safetensors'], 'does not exist'),
    ('top-k 0', lambda i, t: ['predict', i['wide'], '--model', 't2t_vit_7', '--top-k', '0'], 'at least 1'),
]


@pytest.mark.parametrize('make_argv, message', [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_one_line(images, tmp_path, capsys, make_argv, message):
    argv = make_argv(images, tmp_path)
    rc, out, err = run_cli(capsys, *argv)
    assert rc == 2
    assert not out
    assert err.count('\n') == 1 and 'Traceback' not in err
    assert err.startswith(f'timm-t2t {argv[0]}: error: ')
    assert message in err


def test_debug_shows_the_exception(images, tmp_path):
    with pytest.raises(CliError, match='no such file'):
        main(['--debug', 'predict', str(tmp_path / 'nope.png'), '--model', 't2t_vit_7'])
    with pytest.raises(CliError, match='unknown model'):
        main(['predict', str(images['wide']), '--model', 'nope', '--debug'])


def test_unexpected_error_says_so(monkeypatch, capsys):
    def broken(args):
        raise ZeroDivisionError('boom')
    monkeypatch.setattr(listing, 'cmd_list', broken)
    rc, _, err = run_cli(capsys, 'list')
    assert rc == 1 and err.count('\n') == 1
    assert 'unexpected error: ZeroDivisionError: boom' in err and '--debug' in err


def test_bad_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(['predict', '--model', 't2t_vit_7', '--model-kwargs', 'depth=1', 'image.png'])
    assert e.value.code == 2 and 'give images before --model-kwargs' in capsys.readouterr().err
    assert main([]) == 2  # no command: help, exit 2


# --------------------------------------------------------------------------------------------------------------------
# delegated commands


@pytest.mark.parametrize('command, option', [('convert', '--all'), ('push', '--repo'), ('bench', '--models'),
                                             ('demo', '--quick')])
def test_delegated_help(command, option, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, '--help'])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith(f'usage: timm-t2t {command}') and option in out


def test_delegated_module_missing(monkeypatch, capsys):
    monkeypatch.setitem(DELEGATED, 'bench', ('timm_t2t.no_such_module', 'configure_parser', 'run', 'x'))
    rc, _, err = run_cli(capsys, 'bench', '--models', 'x')
    assert rc == 2 and '`timm-t2t bench` is unavailable' in err and 'timm_t2t.no_such_module' in err


def test_delegated_errors_are_one_line(tmp_path, capsys):
    rc, _, err = run_cli(capsys, 'convert', '--out', tmp_path / 'x')  # neither CHECKPOINT nor --all
    assert rc == 2 and err.count('\n') == 1 and err.startswith('timm-t2t convert: error: ')


# --------------------------------------------------------------------------------------------------------------------
# end to end, in fresh processes


def test_console_script_and_module(images, capsys):
    script = Path(sys.executable).with_name('timm-t2t')
    assert script.is_file(), 'the console script is installed by `pip install -e .`'
    argv = ['predict', str(images['wide']), str(images['tall']), '--model', 't2t_vit_7', '--weights', str(F7),
            '--json']
    proc = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rc, out, _ = run_cli(capsys, *argv)
    assert json.loads(proc.stdout) == json.loads(out)

    proc = subprocess.run([sys.executable, '-m', 'timm_t2t', '--version'], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == f'timm-t2t {timm_t2t.__version__}'


def test_offline_without_cache_is_one_line(images, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE='1', HF_HOME=str(tmp_path / 'hf'), TORCH_HOME=str(tmp_path / 'torch'))
    proc = subprocess.run([sys.executable, '-m', 'timm_t2t', 'predict', str(images['wide']), '--model', 't2t_vit_7'],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and proc.stdout == ''
    assert proc.stderr.count('\n') == 1 and 'Traceback' not in proc.stderr
    assert 'HF_HUB_OFFLINE=1' in proc.stderr and '--weights FILE' in proc.stderr


# --------------------------------------------------------------------------------------------------------------------
# demo


def test_demo_quick_learns_saves_and_reloads(tmp_path, capsys, monkeypatch):
    # The Hub step must not reach the internet: an endpoint where nothing listens, an empty cache.
    monkeypatch.setattr(constants, 'ENDPOINT', 'http://127.0.0.1:9')
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hf'))
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    out_dir = tmp_path / 'demo'
    rc, out, err = run_cli(capsys, 'demo', '--quick', '--out', out_dir)
    assert rc == 0, err
    for step in ('[1/4] data', '[2/4] train', '[3/4] checkpoint', '[4/4] predict', 'Hub: ', 'Summary: '):
        assert step in out
    assert 'Hub: offline' in out and '127.0.0.1:9' in out
    epochs = [float(a) for a in re.findall(r'val acc\s+([\d.]+)%', out)]
    assert len(epochs) == QUICK.epochs
    final = float(re.search(r'Summary: validation accuracy ([\d.]+)%', out).group(1))
    assert final == epochs[-1] >= 50.0  # 5 classes: chance is 20 %
    assert f'reloaded checkpoint {final:.1f}%' in out

    # the saved checkpoint, through `predict` on every validation image, scores what the demo reported
    ckpt = out_dir / 'checkpoint'
    assert json.loads((ckpt / 'config.json').read_text())['label_names'] == list(demo_run.CLASSES)
    val = sorted((out_dir / 'data' / 'val').glob('*/*.png'))
    assert len(val) == QUICK.val_per_class * len(demo_run.CLASSES)
    rc, out, err = run_cli(capsys, 'predict', *val, '--weights', ckpt, '--top-k', 1, '--batch-size', 64, '--json')
    assert rc == 0, err
    hits = [p['top_k'][0]['label'] == Path(p['image']).parent.name for p in json.loads(out)['predictions']]
    assert 100.0 * sum(hits) / len(hits) == pytest.approx(final, abs=2.0)

    rc, _, err = run_cli(capsys, 'demo', '--quick', '--out', out_dir)
    assert rc == 2 and 'not empty' in err


def test_demo_textures_differ_by_class():
    import random
    imgs = {c: np.asarray(demo_run.draw_texture(c, 64, random.Random(3)), dtype=np.float32) for c in demo_run.CLASSES}
    for c, a in imgs.items():
        assert a.shape == (64, 64, 3) and a.std() > 20  # a texture, not a flat colour
    with pytest.raises(ValueError, match='unknown texture class'):
        demo_run.draw_texture('spiral', 64, random.Random(0))


def test_hub_reachability(monkeypatch):
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    assert demo_run.hub_unreachable_reason() == 'HF_HUB_OFFLINE is set'
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
    monkeypatch.setattr(constants, 'ENDPOINT', 'http://127.0.0.1:9')  # nothing listens on the discard port
    assert 'unreachable' in demo_run.hub_unreachable_reason(timeout=2.0)


def test_demo_shows_pretrained_when_the_hub_answers(images, model7, tmp_path, monkeypatch):
    server = StandIn().start()
    try:
        server.repos['timm-t2t/t2t_vit_7.in1k'] = {'model.safetensors': F7.read_bytes()}
        monkeypatch.setattr(constants, 'ENDPOINT', server.url)
        monkeypatch.setattr(constants, 'HUGGINGFACE_CO_URL_TEMPLATE',
                            server.url + '/{repo_id}/resolve/{revision}/{filename}')
        monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hf'))
        monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', False)
        monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
        lines: List[str] = []
        demo_run._show_pretrained(images['wide'], lines.append)
    finally:
        server.stop()
    assert len(lines) == 1
    with torch.no_grad():
        (index, prob), = top_k(model7(reference_input(images['wide'])), 1)
    label = timm.data.ImageNetInfo().index_to_description(index)
    assert lines[0].startswith("Hub: timm.create_model('t2t_vit_7', pretrained=True) loaded timm-t2t/t2t_vit_7.in1k")
    assert f'{label} ({100 * prob:.1f}%)' in lines[0]
