"""The command line's promise (issue 24): every bad input ends in one line on stderr and exit code 2, before any model
work; preprocessing follows the model that was built; `predict` shows no random classes; `--no-pretrained`.

One test per row of the issue's table, then per scope item. Everything runs in-process (`main([...])`), offline (the
Hub off, empty caches), on small inputs: seeded checkpoints of one or two blocks and images drawn here. Where a check
must come before any model work, `timm.create_model` is replaced by a trap that fails the test when called.
"""
import io
import json
import os
import re
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Dict, List, Set, Tuple

import numpy as np
import pytest
import timm
import torch
from huggingface_hub import constants
from PIL import Image
from safetensors.torch import load_file, save_file

import timm_t2t  # noqa: F401  registers the models
from conftest import seeded_checkpoint
from test_cli import reference_input, top_k
from timm_t2t.cli import demo_run, outputs
from timm_t2t.cli.main import main
from timm_t2t.cli.model_options import accepted_model_kwargs, is_t2t_name, t2t_signature
from timm_t2t.models.t2t_vit import T2TViT
from timm_t2t.weights.checkpoint_io import PretrainedWeightsError, read_checkpoint

W7 = seeded_checkpoint('t2t_vit_7', depth=1)  # 1000 classes, one block: fast to build and run
D1 = ('--model-kwargs', 'depth=1')
INPUT_ERROR_SECONDS = 3.0  # in-process: the models are imported already, so this is the checking itself


class ModelWorkStarted(BaseException):
    """Raised by the trap: a BaseException, so that no `except Exception` in the command line words it."""


@pytest.fixture(autouse=True)
def offline(tmp_path_factory, monkeypatch):
    """No test here may reach the network: the Hub is off, and the caches are empty folders."""
    caches = tmp_path_factory.mktemp('caches')
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(caches / 'hf'))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setenv('TORCH_HOME', str(caches / 'torch'))


@pytest.fixture
def no_model_work(monkeypatch):
    """Fail the test if a model is built (or a checkpoint loaded through timm)."""
    def trap(*args, **kwargs):
        raise ModelWorkStarted(f'timm.create_model{args} ran before the input was refused')
    monkeypatch.setattr(timm, 'create_model', trap)


@pytest.fixture(scope='module')
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('img') / 'photo.png'
    Image.fromarray((np.random.RandomState(0).rand(200, 300, 3) * 255).astype('uint8')).save(path)
    return path


def files_under(folder: Path) -> Set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob('*')}


def run_cli(capsys, *argv) -> Tuple[int, str, str, float]:
    start = time.perf_counter()
    rc = main([str(a) for a in argv])
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    return rc, out, err, seconds


def assert_one_line_error(rc: int, out: str, err: str, command: str, *expected: str) -> None:
    assert rc == 2, err
    assert not out
    assert err.count('\n') == 1 and 'Traceback' not in err, err
    assert err.startswith(f'timm-t2t {command}: error: '), err
    assert 'unexpected error' not in err
    assert not re.search(r'\(\d+\)', err), f'a bare internal code in: {err}'
    for text in expected:
        assert text in err, f'{text!r} not in {err!r}'


def refused(capsys, tmp_path: Path, *argv, expected: Tuple[str, ...]) -> str:
    """Run a command that must be refused: one line, exit 2, quickly, and nothing written under tmp_path."""
    before = files_under(tmp_path)
    rc, out, err, seconds = run_cli(capsys, *argv)
    assert_one_line_error(rc, out, err, str(argv[0]), *expected)
    assert seconds < INPUT_ERROR_SECONDS, f'{seconds:.1f} s to refuse'
    assert files_under(tmp_path) == before, 'something was written'
    return err


def torch_zip_of(state_dict: Dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state_dict, path)
    return path


def resnet_like_state_dict() -> Dict[str, torch.Tensor]:
    """The key layout of timm's resnet18 (small tensors: only the names and the classifier's shape matter)."""
    sd = {'conv1.weight': torch.zeros(64, 3, 7, 7), 'bn1.weight': torch.ones(64), 'bn1.bias': torch.zeros(64)}
    for layer in range(1, 5):
        sd[f'layer{layer}.0.conv1.weight'] = torch.zeros(1)
        sd[f'layer{layer}.0.bn1.weight'] = torch.zeros(1)
    sd.update({'fc.weight': torch.zeros(1000, 512), 'fc.bias': torch.zeros(1000)})
    return sd


# --------------------------------------------------------------------------------------------------------------------
# The table of issue 24, row by row


def test_row_img_size_320_predicts_at_320(image, capsys):
    """Built at 320, preprocessed at 320 (not 224): the prediction equals the model's on a hand-made 320 input."""
    rc, out, err, _ = run_cli(capsys, 'predict', image, '--model', 't2t_vit_7', '--weights', W7, '--model-kwargs',
                              'depth=1', 'img_size=320', '--top-k', 3, '--json')
    assert rc == 0, err
    model = timm.create_model('t2t_vit_7', depth=1, img_size=320, pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(W7))).eval()
    with torch.no_grad():
        expected = top_k(model(reference_input(image, size=320)), 3)
    got = json.loads(out)['predictions'][0]['top_k']
    assert [p['index'] for p in got] == [i for i, _ in expected]
    assert [p['probability'] for p in got] == pytest.approx([p for _, p in expected], abs=1e-5)
    rc, out, _, _ = run_cli(capsys, 'predict', image, '--model', 't2t_vit_7', '--weights', W7, '--model-kwargs',
                            'depth=1', 'img_size=320', '--top-k', 1)
    assert rc == 0 and 'input 320x320' in out


def test_row_depth_abc(image, tmp_path, capsys, no_model_work):
    refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7', '--weights', W7, '--model-kwargs',
            'depth=abc', expected=("--model-kwargs depth='abc': depth takes an int, not the text 'abc'", 'depth=7'))


def test_row_nonsense_arg(image, tmp_path, capsys, no_model_work):
    err = refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7', '--weights', W7, '--model-kwargs',
                  'nonsense_arg=1', expected=("t2t_vit_7 takes no argument 'nonsense_arg'", 'it takes img_size'))
    assert 'depth' in err and 'num_classes' in err


def test_row_features_out_is_a_folder(image, tmp_path, capsys, no_model_work):
    (tmp_path / 'adir').mkdir()
    refused(capsys, tmp_path, 'features', image, '--model', 't2t_vit_7', '--weights', W7, '--out', tmp_path / 'adir',
            expected=('adir is a folder: pass a file path',))


def test_row_demo_out_is_a_file(tmp_path, capsys, no_model_work):
    (tmp_path / 'README.md').write_text('# a file')
    refused(capsys, tmp_path, 'demo', '--quick', '--out', tmp_path / 'README.md',
            expected=('README.md is a file, not a folder: pass a new or empty folder',))


def test_row_weights_config_json(image, tmp_path, capsys, no_model_work):
    folder = tmp_path / 'model'
    folder.mkdir()
    (folder / 'config.json').write_text(json.dumps({'architecture': 't2t_vit_7', 'num_classes': 1000}))
    (folder / 'model.safetensors').write_bytes(W7.read_bytes())
    refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7', '--weights', folder / 'config.json',
            expected=('is not a readable checkpoint: it is a JSON file, the model config of t2t_vit_7',
                      f'Pass the folder that holds it ({folder})', 'model.safetensors beside it'))


def test_row_weights_text_file(image, tmp_path, capsys, no_model_work):
    (tmp_path / 'notes.txt').write_text('remember to download the weights\n')
    err = refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7', '--weights', tmp_path / 'notes.txt',
                  expected=("it is a text file (first line: 'remember to download the weights')",
                            'Pass a checkpoint file (.safetensors, .pth, .pth.tar, .bin)'))
    assert '101' not in err


def test_row_weights_of_another_family(image, tmp_path, capsys, no_model_work):
    path = torch_zip_of(resnet_like_state_dict(), tmp_path / 'resnet18.pth')
    err = refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7', '--weights', path,
                  expected=('resnet18.pth is not a T2T-ViT checkpoint', 'conv1.*, bn1.*, layer1.*, layer2.*',
                            'ResNet', 'load this file with the timm model it was saved from'))
    assert 'unknown stem' not in err and 'depth override' not in err


def test_row_num_classes_with_a_1000_class_checkpoint(image, tmp_path, capsys, no_model_work):
    refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7', '--weights', W7, '--model-kwargs',
            'depth=1', 'num_classes=10',
            expected=('has a classifier of 1000 classes', 'would be random', 'Drop num_classes',
                      '`timm-t2t features`'))


def test_row_top_k_above_the_classes(image, capsys):
    rc, out, err, _ = run_cli(capsys, 'predict', image, '--model', 't2t_vit_7', '--weights', W7, *D1,
                              '--top-k', 5000, '--json')
    assert rc == 0
    assert err == "timm-t2t predict: note: --top-k 5000 is more than the model's 1000 classes; showing all 1000.\n"
    assert len(json.loads(out)['predictions'][0]['top_k']) == 1000


# --------------------------------------------------------------------------------------------------------------------
# 1. Preprocessing follows the model that was built


def test_features_follow_a_non_square_img_size(image, tmp_path, capsys):
    out_file = tmp_path / 'maps.safetensors'
    rc, out, err, _ = run_cli(capsys, 'features', image, '--model', 't2t_vit_7', '--weights', W7, '--model-kwargs',
                              'depth=1', 'img_size=(96,64)', '--out', out_file)
    assert rc == 0, err
    assert 'input (1, 3, 96, 64)' in out
    saved = load_file(out_file)
    assert tuple(saved['patch_embed.attn1'].shape) == (1, 64, 24, 16)
    assert tuple(saved['blocks.0'].shape) == (1, 256, 6, 4)
    assert oct(out_file.stat().st_mode & 0o777) == oct(0o666 & ~_umask())  # not the temp file's private mode


def test_checkpoint_config_size_is_followed(image, tmp_path, capsys):
    """A save_for_hf export at 64 x 64 and an img_size override on top of it: both preprocess at the built size."""
    model = timm.create_model('t2t_vit_7', depth=1, pretrained_cfg_overlay=dict(input_size=(3, 64, 64)))
    timm.models.save_for_hf(model, tmp_path / 'export', safe_serialization=True, model_args=dict(depth=1))
    rc, out, err, _ = run_cli(capsys, 'predict', image, '--weights', tmp_path / 'export', '--top-k', 1)
    assert rc == 0 and 'input 64x64' in out, err
    rc, out, err, _ = run_cli(capsys, 'predict', image, '--weights', tmp_path / 'export', '--top-k', 1,
                              '--model-kwargs', 'img_size=96')
    assert rc == 0 and 'input 96x96' in out, err


# --------------------------------------------------------------------------------------------------------------------
# 2. Model options are checked before building


@pytest.mark.parametrize('kwarg, expected', [
    ('dept=3', "takes no argument 'dept'; did you mean depth?"),
    ('num_class=10', "takes no argument 'num_class'; did you mean num_classes"),
    ('depth=True', 'depth takes an int, not True or False'),
    ('depth=2.5', 'depth takes an int, not a number'),
    ('mlp_ratio=fast', "mlp_ratio takes a number, not the text 'fast'"),
    ('qkv_bias=yes', "qkv_bias takes True or False, not the text 'yes'"),
    ('img_size=(224,224,3)', 'img_size takes an int or a tuple of 2 ints'),
    ('global_pool=1', 'global_pool takes a string'),
    ('depth=0', 'depth must be positive'),
    ('drop_path_rate=1.5', 'drop_path_rate is a dropout rate'),
    ('pretrained=False', 'is set by the command line: use --no-pretrained'),
    ('features_only=True', 'run `timm-t2t features`'),
    ('out_indices=(1,2)', 'is for `timm-t2t features`'),
    ('in_chans=1', 'reads RGB images'),
])
def test_model_kwargs_checked_before_building(image, tmp_path, capsys, no_model_work, kwarg, expected):
    refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7', '--model-kwargs', kwarg,
            expected=(expected,))


def test_features_model_kwargs_and_other_checks(image, tmp_path, capsys, no_model_work):
    refused(capsys, tmp_path, 'features', image, '--model', 't2t_vit_7', '--weights', W7, '--model-kwargs',
            'out_indices=last', expected=('out_indices takes an int or a tuple of ints',))


def test_accepted_model_kwargs_follow_the_signature():
    accepted = accepted_model_kwargs()
    import inspect
    own = set(inspect.signature(T2TViT.__init__).parameters) - {'self', 'device', 'dtype'}
    assert own <= set(accepted) and {'scriptable', 'exportable', 'no_jit'} <= set(accepted)
    assert 'out_indices' not in accepted and 'out_indices' in accepted_model_kwargs(features=True)


def test_source_signature_equals_the_imported_one():
    """The `ast` reading of T2TViT.__init__ (what the checks use, torch-free) cannot drift from the class itself."""
    import inspect
    params = inspect.signature(T2TViT.__init__).parameters
    real = {n: (p.default, p.default is not p.empty) for n, p in params.items()
            if n != 'self' and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    assert {n: (p.default, p.has_default) for n, p in t2t_signature().items()} == real
    assert list(t2t_signature()) == list(real)
    hints = {n: inspect.formatannotation(p.annotation).replace('torch.', '') for n, p in params.items()
             if n in real and p.annotation is not p.empty}
    assert {n: p.annotation.replace('torch.', '') for n, p in t2t_signature().items()} == hints
    assert set(timm.list_models(module='t2t_vit')) == {n for n in timm.list_models() if is_t2t_name(n)}


def test_other_families_are_worded_too(image, tmp_path, capsys):
    """Names of other timm families are not checked up front; their build errors still come as one line."""
    rc, out, err, _ = run_cli(capsys, 'features', image, '--model', 'resnet18', '--no-pretrained',
                              '--model-kwargs', 'nonsense_arg=1')
    assert_one_line_error(rc, out, err, 'features', 'resnet18 cannot be built with --model-kwargs nonsense_arg=1',
                          'nonsense_arg')


# --------------------------------------------------------------------------------------------------------------------
# 3. Output paths are checked before any work; nothing half-written is left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize('case', ['missing folder', 'folder is a file', 'unwritable'])
def test_features_out_location(image, tmp_path, capsys, no_model_work, monkeypatch, case):
    (tmp_path / 'a_file').write_text('x')
    out, expected = {
        'missing folder': (tmp_path / 'no' / 'maps.safetensors', 'does not exist; create it first'),
        'folder is a file': (tmp_path / 'a_file' / 'maps.safetensors', 'a_file is a file, not a folder'),
        'unwritable': (tmp_path / 'locked' / 'maps.safetensors', 'is not writable'),
    }[case]
    if case == 'unwritable':
        out.parent.mkdir()
        real_access = os.access
        monkeypatch.setattr(os, 'access', lambda p, mode: False if Path(p) == out.parent else real_access(p, mode))
    refused(capsys, tmp_path, 'features', image, '--model', 't2t_vit_7', '--weights', W7, '--out', out,
            expected=(expected,))


@pytest.mark.parametrize('case', ['not empty', 'under a file', 'unwritable'])
def test_demo_out_location(tmp_path, capsys, no_model_work, monkeypatch, case):
    (tmp_path / 'full').mkdir()
    (tmp_path / 'full' / 'keep.txt').write_text('x')
    (tmp_path / 'a_file').write_text('x')
    out, expected = {
        'not empty': (tmp_path / 'full', 'exists and is not empty'),
        'under a file': (tmp_path / 'a_file' / 'demo', 'a_file is a file, not a folder'),
        'unwritable': (tmp_path / 'locked' / 'demo', 'is not writable'),
    }[case]
    if case == 'unwritable':
        (tmp_path / 'locked').mkdir()
        real_access = os.access
        monkeypatch.setattr(os, 'access', lambda p, mode: False if Path(p).name == 'locked' else real_access(p, mode))
    refused(capsys, tmp_path, 'demo', '--quick', '--out', out, expected=(expected,))


def test_features_failed_write_leaves_nothing(image, tmp_path, capsys, monkeypatch):
    import safetensors.torch

    def half_write(tensors, filename, metadata=None):
        Path(filename).write_bytes(b'half')
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(safetensors.torch, 'save_file', half_write)
    rc, _, err, _ = run_cli(capsys, 'features', image, '--model', 't2t_vit_7', '--weights', W7, *D1,
                            '--out', tmp_path / 'maps.safetensors')
    assert rc == 1 and 'No space left on device' in err
    assert files_under(tmp_path) == set()


def test_demo_failure_leaves_nothing(tmp_path, capsys, monkeypatch):
    def fails_midway(root, settings, seed=0):
        (root / 'train').mkdir(parents=True)
        (root / 'train' / 'half.png').write_bytes(b'x')
        raise RuntimeError('disk full')
    monkeypatch.setattr(demo_run, 'build_dataset', fails_midway)
    rc, _, err, _ = run_cli(capsys, 'demo', '--quick', '--out', tmp_path / 'new' / 'demo')
    assert rc == 1 and 'disk full' in err
    assert files_under(tmp_path) == set()


def test_staged_output_dir_fills_an_empty_folder(tmp_path):
    (tmp_path / 'empty').mkdir()
    with outputs.staged_output_dir(tmp_path / 'empty') as stage:
        (stage / 'a.txt').write_text('a')
    assert files_under(tmp_path) == {'empty', 'empty/a.txt'}


# --------------------------------------------------------------------------------------------------------------------
# 4. Weights messages say what the file is


def _png(path: Path) -> None:
    Image.new('RGB', (4, 4)).save(path, format='PNG')


def _jpeg(path: Path) -> None:
    Image.new('RGB', (4, 4)).save(path, format='JPEG')


def _zip(path: Path) -> None:
    with zipfile.ZipFile(path, 'w') as z:
        z.writestr('t2t_vit_7/model.pth', b'weights')
        z.writestr('README.txt', b'hi')


def _tar_gz(path: Path) -> None:
    data = b'weights'
    with tarfile.open(path, 'w:gz') as t:
        info = tarfile.TarInfo('release/model.safetensors')
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))


WEIGHT_FILES = [
    ('empty', 'w.pth', lambda p: p.write_bytes(b''), ['it is empty (0 bytes)', 'Download or save it again']),
    ('json', 'w.json', lambda p: p.write_text('{"lr": 0.1}'), ['it is a JSON file.', 'Pass a checkpoint file']),
    ('html', 'w.safetensors', lambda p: p.write_text('<!DOCTYPE html><html>Sign in</html>'),
     ['it is an HTML page', 'Download the file itself']),
    ('git lfs pointer', 'w.safetensors', lambda p: p.write_text(
        'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 17251000\n'),
     ['it is a Git LFS pointer', 'git lfs pull']),
    ('png image', 'w.pth', _png, ['it is a PNG image', 'Images are the IMAGE arguments']),
    ('jpeg image', 'cat.jpg', _jpeg, ['it is a JPEG image', '--weights takes a checkpoint file']),
    ('zip archive', 'w.zip', _zip, ['it is a zip archive holding t2t_vit_7/model.pth',
                                    'Extract it and pass the checkpoint inside (t2t_vit_7/model.pth)']),
    ('tar.gz archive', 'w.tar.gz', _tar_gz, ['a gzip-compressed file (a tar archive) holding release/model.safetensors',
                                             'Extract it']),
    ('numpy', 'w.npy', lambda p: np.save(p, np.zeros(3)), ['it is a NumPy array file']),
]


@pytest.mark.parametrize('name, make, expected', [c[1:] for c in WEIGHT_FILES], ids=[c[0] for c in WEIGHT_FILES])
def test_weights_file_kinds(image, tmp_path, capsys, no_model_work, name, make, expected):
    weights = tmp_path / 'in' / name
    weights.parent.mkdir()
    make(weights)
    refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7', '--weights', weights,
            expected=(f'{weights} (', 'is not a readable checkpoint: it is', *expected))


def test_other_family_safetensors(image, tmp_path, capsys, no_model_work):
    path = tmp_path / 'vit.safetensors'
    save_file({'patch_embed.proj.weight': torch.zeros(1), 'blocks.0.attn.qkv.weight': torch.zeros(1),
               'head.weight': torch.zeros(10, 4)}, str(path))
    refused(capsys, tmp_path, 'features', image, '--model', 't2t_vit_7', '--weights', path,
            expected=('is not a T2T-ViT checkpoint', 'keys blocks.*, head.*, patch_embed.*', 'ViT-style'))


def test_read_checkpoint_words_it_too(tmp_path):
    """Outside the command line (timm.create_model with file=...) the same words; the cause marks bad bytes."""
    (tmp_path / 'notes.txt').write_text('hello\n')
    with pytest.raises(PretrainedWeightsError, match=r"not a readable checkpoint: it is a text file") as e:
        read_checkpoint(tmp_path / 'notes.txt')
    assert e.value.__cause__ is not None  # what the Hub cache's healing relies on
    torch.save({'x': torch.zeros(3)}, tmp_path / 'ok.pth')
    (tmp_path / 'cut.pth').write_bytes((tmp_path / 'ok.pth').read_bytes()[:300])
    with pytest.raises(PretrainedWeightsError, match='probably truncated') as e:
        read_checkpoint(tmp_path / 'cut.pth')
    assert not re.search(r'\(\d+\)', str(e.value))


def test_other_family_through_create_model(tmp_path):
    path = torch_zip_of(resnet_like_state_dict(), tmp_path / 'resnet18.pth')
    with pytest.raises(PretrainedWeightsError) as e:
        timm.create_model('t2t_vit_7', depth=1, pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    message = str(e.value)
    assert 'no T2T-ViT tensors but keys conv1.*, bn1.*, layer1.*' in message and '1000 classes' in message
    assert 'it is not a T2T-ViT checkpoint' in message and 'depth override' not in message


# --------------------------------------------------------------------------------------------------------------------
# 5. predict refuses meaningless output


def test_predict_refuses_num_classes_0(image, tmp_path, capsys, no_model_work):
    refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7', '--weights', W7, '--model-kwargs', 'depth=1',
            'num_classes=0', expected=('num_classes=0 removes the classifier', '`timm-t2t features`'))


def test_predict_refuses_num_classes_with_a_pretrained_tag(image, tmp_path, capsys, no_model_work):
    refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7.in1k', '--model-kwargs', 'num_classes=10',
            expected=('pretrained t2t_vit_7.in1k has a classifier of 1000 classes', 'would be random'))


def test_features_take_a_num_classes_override(image, capsys):
    rc, _, err, _ = run_cli(capsys, 'features', image, '--model', 't2t_vit_7', '--weights', W7, '--model-kwargs',
                            'depth=1', 'num_classes=10')
    assert rc == 0, err


def test_top_k_note_only_when_asked(image, tmp_path, capsys):
    torch.manual_seed(0)
    path = tmp_path / 'three.safetensors'
    model = timm.create_model('t2t_vit_7', depth=1, num_classes=3)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    rc, out, err, _ = run_cli(capsys, 'predict', image, '--model', 't2t_vit_7', *D1, '--weights', path, '--json')
    assert rc == 0 and err == ''  # the default of 5 is clamped quietly
    assert len(json.loads(out)['predictions'][0]['top_k']) == 3
    rc, out, err, _ = run_cli(capsys, 'predict', image, '--model', 't2t_vit_7', *D1, '--weights', path,
                              '--top-k', 4)
    assert rc == 0 and err.count('\n') == 1 and '--top-k 4 is more than the model\'s 3 classes' in err


# --------------------------------------------------------------------------------------------------------------------
# 6. --no-pretrained


def test_no_pretrained_runs_offline(image, tmp_path, capsys):
    rc, out, err, _ = run_cli(capsys, 'predict', image, '--model', 't2t_vit_7', '--no-pretrained', *D1, '--top-k', 2)
    assert rc == 0, err
    assert out.startswith('t2t_vit_7 (random weights, --no-pretrained), input 224x224')
    assert err == 'timm-t2t predict: note: random weights (--no-pretrained): the classes shown mean nothing.\n'
    # an architecture without released weights, and the feature maps
    rc, out, err, _ = run_cli(capsys, 'features', image, '--model', 't2t_vit_14_wide', '--no-pretrained', *D1)
    assert rc == 0 and 'blocks.0' in out, err
    assert files_under(tmp_path) == set()


def test_no_pretrained_with_weights_is_refused(image, tmp_path, capsys, no_model_work):
    refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_7', '--weights', W7, '--no-pretrained',
            expected=('--no-pretrained asks for random weights: give one of them',))


def test_weightless_architecture_points_to_no_pretrained(image, tmp_path, capsys, no_model_work):
    refused(capsys, tmp_path, 'predict', image, '--model', 't2t_vit_14_wide',
            expected=('has no released weights', '--no-pretrained'))


def test_offline_without_cache_points_to_no_pretrained(image, tmp_path, capsys):
    rc, out, err, _ = run_cli(capsys, 'predict', image, '--model', 't2t_vit_7')
    assert_one_line_error(rc, out, err, 'predict', 'HF_HUB_OFFLINE', '--weights FILE', '--no-pretrained')


# --------------------------------------------------------------------------------------------------------------------
# Path errors are found before torch is imported


def test_path_errors_need_no_torch(image, tmp_path):
    """In a fresh process that cannot import torch at all, the path checks still answer (they come first)."""
    import subprocess
    import sys
    blocker = tmp_path / 'blocker'
    blocker.mkdir()
    (blocker / 'torch.py').write_text('raise ImportError("torch must not be imported for a path error")\n')
    (tmp_path / 'adir').mkdir()
    env = dict(os.environ, PYTHONPATH=str(blocker), HF_HUB_OFFLINE='1')
    cases: List[List[str]] = [
        ['features', str(image), '--model', 't2t_vit_7', '--out', str(tmp_path / 'adir')],
        ['predict', str(image), '--model', 't2t_vit_7', '--weights', str(image)],
        ['demo', '--out', str(image)],
    ]
    for argv in cases:
        proc = subprocess.run([sys.executable, '-m', 'timm_t2t', *argv], capture_output=True, text=True, env=env,
                              timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count('\n') == 1 and 'error: ' in proc.stderr and 'must not be imported' not in proc.stderr


@pytest.mark.parametrize('case', ['depth_abc', 'nonsense_arg', 'other_family', 'num_classes_safetensors',
                                  'num_classes_pth'])
def test_model_checks_need_no_torch(image, tmp_path, case):
    """`--model-kwargs` and the checkpoint's keys and classifier are checked before torch is imported (issue 24: an
    input error answers within 3 s, and importing torch alone takes about 4 s on a small machine)."""
    import subprocess
    import sys
    sd = timm.create_model('t2t_vit_7', depth=1).state_dict()
    argv, expected = {
        'depth_abc': (['--no-pretrained', '--model-kwargs', 'depth=abc'], "depth takes an int, not the text 'abc'"),
        'nonsense_arg': (['--no-pretrained', '--model-kwargs', 'nonsense_arg=1'],
                         "t2t_vit_7 takes no argument 'nonsense_arg'"),
        'other_family': (['--weights', str(torch_zip_of(resnet_like_state_dict(), tmp_path / 'resnet18.pth'))],
                         'resnet18.pth is not a T2T-ViT checkpoint: it has keys conv1.*, bn1.*, layer1.*'),
        'num_classes_safetensors': (['--weights', str(tmp_path / 'w7.safetensors'), '--model-kwargs',
                                     'num_classes=10'], 'has a classifier of 1000 classes'),
        'num_classes_pth': (['--weights', str(torch_zip_of(sd, tmp_path / 'w7.pth')), '--model-kwargs',
                             'num_classes=10'], 'has a classifier of 1000 classes'),
    }[case]
    save_file(sd, str(tmp_path / 'w7.safetensors'))
    blocker = tmp_path / 'blocker'  # a torch that cannot be imported: the checks must answer without it
    blocker.mkdir()
    (blocker / 'torch.py').write_text('raise ImportError("torch must not be imported for an input error")\n')
    env = dict(os.environ, PYTHONPATH=str(blocker), HF_HUB_OFFLINE='1')
    proc = subprocess.run([sys.executable, '-m', 'timm_t2t', 'predict', str(image), '--model', 't2t_vit_7', *argv],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count('\n') == 1 and proc.stderr.startswith('timm-t2t predict: error: '), proc.stderr
    assert expected in proc.stderr and 'must not be imported' not in proc.stderr, proc.stderr
