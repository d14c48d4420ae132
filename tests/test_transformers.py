"""A folder written by `timm-t2t convert` loads in transformers (TimmWrapper): classification, pooled features and the
image-classification pipeline, with `import timm_t2t` or through the autoload hook alone."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import load_file

import timm_t2t  # noqa: F401  registers the models
from conftest import checkpoint_files, expected_file, golden_case
from timm_t2t.weights.convert import convert_checkpoint

transformers = pytest.importorskip('transformers')  # a test extra: pip install -e '.[test]'

CASE = golden_case('tiny_performer_224')  # t2t_vit_14 stem, narrow backbone, 1000 classes at 224
NAME = 't2t_vit_14.in1k'
TOL = 1e-4


@pytest.fixture(scope='module')
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('transformers') / NAME
    convert_checkpoint(checkpoint_files(CASE)[0], NAME, out, model_kwargs=CASE['model_kwargs'], progress=False)
    return out


@pytest.fixture(scope='module')
def expected():
    return load_file(expected_file(CASE))


@pytest.fixture(scope='module')
def timm_model(folder) -> torch.nn.Module:
    return timm.create_model(f'local-dir:{folder}', pretrained=True).eval()


def test_image_classification_logits(folder, expected, timm_model):
    model = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(expected['input']).logits
        reference = timm_model(expected['input'])
    torch.testing.assert_close(logits, reference, rtol=0, atol=1e-5)
    assert (logits - expected['logits']).abs().max().item() <= TOL
    assert model.config.id2label[0] == 'tench, Tinca tinca'  # ImageNet class names, from num_classes=1000


def test_auto_model_pooled_features(folder, expected):
    model = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(expected['input'])
    assert out.pooler_output.shape == expected['pre_logits'].shape
    assert (out.pooler_output - expected['pre_logits']).abs().max().item() <= TOL


def test_pipeline_class_names(folder, timm_model, tmp_path):
    image = Image.new('RGB', (300, 260), (200, 40, 90))
    classify = transformers.pipeline('image-classification', model=str(folder))
    got = classify(image, top_k=3)
    # the same image through timm's own eval transform and the timm-loaded folder
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(timm_model))
    with torch.no_grad():
        probs, indices = timm_model(transform(image).unsqueeze(0)).softmax(-1).topk(3)
    names = timm.data.ImageNetInfo().index_to_description
    assert [g['label'] for g in got] == [names(i) for i in indices[0].tolist()]
    assert [g['score'] for g in got] == pytest.approx(probs[0].tolist(), abs=1e-5)


AUTOLOAD_SCRIPT = """
import json, sys
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification
model = AutoModelForImageClassification.from_pretrained(sys.argv[1]).eval()
expected = load_file(sys.argv[2])
with torch.no_grad():
    diff = (model(expected['input']).logits - expected['logits']).abs().max().item()
print(json.dumps(dict(diff=diff, plugin='timm_t2t' in sys.modules)))
"""


def test_autoload_alone(folder):
    """No `import timm_t2t`: transformers imports timm, and the autoload hook registers the models."""
    env = {k: v for k, v in os.environ.items() if k != 'TIMM_T2T_AUTOLOAD'}
    proc = subprocess.run([sys.executable, '-c', AUTOLOAD_SCRIPT, str(folder), str(expected_file(CASE))],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['plugin'] and result['diff'] <= TOL


def test_timm_still_loads_the_folder(folder, expected, timm_model):
    config = json.loads((folder / 'config.json').read_text())
    assert 'num_classes' not in config['model_args'] and config['num_classes'] == 1000
    with torch.no_grad():
        assert (timm_model(expected['input']) - expected['logits']).abs().max().item() <= TOL
