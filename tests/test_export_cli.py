"""`timm-t2t export` and `timm_t2t.export.export_model`: ONNX and OpenVINO IR files that their runtimes run, with the
official implementation's outputs; one-line errors that leave nothing behind.

The exports use the in-repo golden cases (narrow, 64 px: seconds each); the files written are run here independently
of the command's own check, on the golden input (another batch size than the traced one), against the official
logits. OpenVINO comes with the `deploy` and `test` extras; its cases skip where it is not installed.
"""
import sys
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest
import timm
from safetensors.torch import load_file

import timm_t2t  # noqa: F401  registers the models
from conftest import checkpoint_files, expected_file, golden_case
from timm_t2t import export
from timm_t2t.cli.main import main

TOL = 1e-4
DEPLOY_EXTRA = "pip install 'timm-t2t[deploy]'"


def case_args(name: str) -> List[str]:
    """`--weights FILE --img-size N --model-kwargs ...` of a golden case."""
    case = golden_case(name)
    kwargs = {k: v for k, v in case['model_kwargs'].items() if k != 'img_size'}
    return [case['arch'], '--weights', str(checkpoint_files(case)[0]), '--img-size',
            str(case['model_kwargs']['img_size']), '--model-kwargs', *[f'{k}={v}' for k, v in kwargs.items()]]


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> Tuple[int, str, str]:
    """main(argv) -> (exit code, stdout, stderr); argparse's usage errors (SystemExit) included."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


def run_file(path: Path, x: np.ndarray) -> np.ndarray:
    """The exported file's logits, run here in its runtime (not through the package)."""
    if path.suffix == '.onnx':
        import onnxruntime as ort
        session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
        return session.run(None, {'input': x})[0]
    import openvino as ov
    return ov.Core().compile_model(str(path), 'CPU', {'INFERENCE_PRECISION_HINT': 'f32'})(x)[0]


def printed_diff(out: str) -> float:
    line = next(line for line in out.splitlines() if line.startswith('max abs logit difference'))
    return float(line.split(': ')[1].split()[0])


@pytest.mark.parametrize('case, filename, options', [
    ('tiny_performer_64', 'model.onnx', []),
    ('tiny_performer_64', 'model.xml', []),
    ('tiny_transformer_64', 'model.onnx', ['--exporter', 'dynamo', '--batch', '2']),
], ids=['onnx', 'openvino', 'onnx-dynamo-fixed-batch'])
def test_export_runs_in_its_runtime_with_the_official_logits(tmp_path, capsys, case, filename, options):
    if filename.endswith('.xml'):
        pytest.importorskip('openvino', reason=f'OpenVINO is in the deploy extra: {DEPLOY_EXTRA}')
    out_file = tmp_path / filename
    rc, out, err = run_cli(capsys, 'export', *case_args(case), '--out', out_file, *options)
    assert rc == 0, err
    assert printed_diff(out) <= TOL
    expected = sorted([filename, 'model.bin'] if filename.endswith('.xml') else [filename])
    assert sorted(p.name for p in tmp_path.iterdir()) == expected  # nothing staged is left

    golden = load_file(expected_file(golden_case(case)))
    x = golden['input'].numpy()  # a batch of 2: not the traced size when the batch is dynamic
    if '--batch' not in options:
        x = np.concatenate([x, x[:1]])  # 3: the batch dimension is dynamic
    logits = run_file(out_file, x)
    assert logits.shape == (len(x), 1000)
    assert np.abs(logits[:2] - golden['logits'].numpy()).max() <= TOL


def test_fixed_batch_is_fixed(tmp_path, capsys):
    import onnx
    rc, _, err = run_cli(capsys, 'export', *case_args('tiny_performer_64'), '--out', tmp_path / 'm.onnx',
                         '--batch', '3')
    assert rc == 0, err
    dims = onnx.load(str(tmp_path / 'm.onnx')).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [3, 3, 64, 64]


# ---------------------------------------------------------------------------------------------------------------------
# Errors: one line, a non-zero exit, nothing written


def assert_one_line_and_nothing_written(rc: int, out: str, err: str, folder: Path, expected_rc: int = 2,
                                        before: Tuple[str, ...] = ()) -> None:
    assert rc == expected_rc, err
    assert not out.strip()
    assert err.count('\n') == 1 and err.startswith('timm-t2t export: error: '), err
    assert 'Traceback' not in err
    assert sorted(p.name for p in folder.iterdir()) == sorted(before)  # no partial file, no staging folder


@pytest.mark.parametrize('argv, message', [
    (['--format', 'tflite'], "invalid choice: 'tflite'"),
    (['--frmat', 'onnx'], 'unrecognized arguments: --frmat onnx'),
    (['--batch', '0'], 'must be at least 1'),
    (['--exporter', 'fx'], "invalid choice: 'fx'"),
], ids=['format', 'unknown-option', 'batch', 'exporter'])
def test_bad_option(tmp_path, capsys, argv, message):
    rc, out, err = run_cli(capsys, 'export', 't2t_vit_7', '--out', tmp_path / 'm.onnx', *argv)
    assert_one_line_and_nothing_written(rc, out, err, tmp_path)
    assert message in err and '--help' in err


def test_bad_input(tmp_path, capsys):
    for argv, message in (
            (['--no-pretrained', '--out', tmp_path / 'm.xml', '--format', 'onnx'],
             'an ONNX file ends in .onnx; name it m.onnx'),
            (['--no-pretrained', '--out', tmp_path / 'm.onnx', '--format', 'openvino'], 'an OpenVINO IR is an .xml'),
            (['--no-pretrained', '--out', tmp_path / 'model'], 'name the file NAME.onnx or NAME.xml'),
            (['--out', tmp_path / 'm.onnx', '--weights', tmp_path / 'nope.safetensors'], 'no such checkpoint file'),
            (['--no-pretrained', '--out', tmp_path / 'm.onnx', '--weights', checkpoint_files(golden_case(
                'tiny_performer_64'))[0]], '--no-pretrained'),
            (['--no-pretrained', '--out', tmp_path / 'm.onnx', '--model-kwargs', 'depht=1'], 'depht'),
    ):
        rc, out, err = run_cli(capsys, 'export', 't2t_vit_7', *argv)
        assert_one_line_and_nothing_written(rc, out, err, tmp_path)
        assert message in err
    rc, out, err = run_cli(capsys, 'export', 'no_such_model', '--no-pretrained', '--out', tmp_path / 'm.onnx')
    assert_one_line_and_nothing_written(rc, out, err, tmp_path)
    assert "unknown model 'no_such_model'" in err


@pytest.mark.parametrize('filename, modules', [
    ('m.onnx', ['onnxruntime']), ('m.xml', ['openvino']), ('m.onnx', ['onnx', 'onnxruntime'])])
def test_missing_runtime_names_the_extra(tmp_path, capsys, monkeypatch, filename, modules):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError, as when not installed
    rc, out, err = run_cli(capsys, 'export', 't2t_vit_7', '--no-pretrained', '--out', tmp_path / filename)
    assert_one_line_and_nothing_written(rc, out, err, tmp_path)
    assert err.startswith(f'timm-t2t export: error: {modules[0]} (')
    assert all(f'{m} (' in err for m in modules)
    assert ('are' if len(modules) > 1 else 'is') + ' not installed' in err and DEPLOY_EXTRA in err


def _can_create_in(folder: Path) -> bool:
    try:
        (folder / '.timm-t2t-probe').touch()
    except OSError:
        return False
    (folder / '.timm-t2t-probe').unlink()
    return True


@pytest.fixture
def unwritable(tmp_path) -> Path:
    """A folder this process cannot create files in: read-only by mode, or (as root, who ignores modes) /sys."""
    folder = tmp_path / 'read-only'
    folder.mkdir()
    folder.chmod(0o500)
    yield folder if not _can_create_in(folder) else Path('/sys')
    folder.chmod(0o700)


def test_unwritable_paths(tmp_path, capsys, unwritable):
    if _can_create_in(unwritable):
        pytest.skip(f'{unwritable} is writable here: no folder this user cannot write to')
    a_file = tmp_path / 'file.txt'
    a_file.write_text('x')
    for out_file, message in (
            (tmp_path / 'missing' / 'm.onnx', 'does not exist'),
            (a_file / 'm.onnx', 'file.txt'),
            (unwritable / 'm.onnx', str(unwritable)),
            (tmp_path, 'is a folder'),
    ):
        rc, out, err = run_cli(capsys, 'export', 't2t_vit_7', '--no-pretrained', '--out', out_file, '--format', 'onnx')
        assert_one_line_and_nothing_written(rc, out, err, tmp_path, before=('file.txt', 'read-only'))
        assert message in err
    assert not any((tmp_path / 'read-only').iterdir())


def test_mismatch_fails_and_keeps_the_old_file(tmp_path, capsys, monkeypatch):
    """Logits beyond 1e-4: exit 1, one line with the difference, and nothing replaces what was there."""
    (tmp_path / 'm.onnx').write_bytes(b'old')
    run = export._run_exported
    monkeypatch.setattr(export, '_run_exported', lambda *args: run(*args) + 1e-3)
    rc, out, err = run_cli(capsys, 'export', 't2t_vit_7', '--no-pretrained', '--out', tmp_path / 'm.onnx',
                           '--model-kwargs', 'depth=1', 'img_size=64')
    assert_one_line_and_nothing_written(rc, out, err, tmp_path, expected_rc=1, before=('m.onnx',))
    assert 'differ from the model\'s by up to 1.00e-03, above 0.0001' in err and 'nothing was written' in err
    assert (tmp_path / 'm.onnx').read_bytes() == b'old'


def test_failed_conversion_leaves_nothing(tmp_path, monkeypatch):
    """A conversion that dies after writing part of the IR: neither .xml nor .bin appear, the staging folder goes."""
    pytest.importorskip('openvino', reason=f'OpenVINO is in the deploy extra: {DEPLOY_EXTRA}')

    def half_written(onnx_path: Path, xml_path: Path) -> None:
        xml_path.with_suffix('.bin').write_bytes(b'\0' * 100)
        raise MemoryError('killed half-way')

    monkeypatch.setattr(export, '_to_openvino', half_written)
    model = timm.create_model('t2t_vit_7', depth=1, img_size=64).eval()
    with pytest.raises(MemoryError):
        export.export_model(model, tmp_path / 'm.xml', 'openvino')
    assert not any(tmp_path.iterdir())


def test_export_model_api(tmp_path):
    """The library call: the difference it returns, the model's mode restored, and `verify=False` (the benchmark's
    use: it checks the file in each runtime it times)."""
    model = timm.create_model('t2t_vit_7', depth=1, img_size=64).train()
    diff = export.export_model(model, tmp_path / 'm.onnx')
    assert 0 <= diff <= TOL and model.training
    assert export.export_model(model, tmp_path / 'u.onnx', verify=False) is None
    assert (tmp_path / 'u.onnx').stat().st_size > 0
    assert export.model_input_size(model) == (3, 64, 64)
    with pytest.raises(export.ExportError, match='batch must be at least 1'):
        export.export_model(model, tmp_path / 'b.onnx', batch=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['m.onnx', 'u.onnx']


def test_pretrained_is_the_default(tmp_path, capsys, monkeypatch):
    """As predict and features: without --no-pretrained or --weights the tag's weights are loaded (here: offline and
    not cached, so the one-line error of a missing download, before anything is written)."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hf'))
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    rc, out, err = run_cli(capsys, 'export', 't2t_vit_7', '--out', out_dir / 'm.onnx')
    assert_one_line_and_nothing_written(rc, out, err, out_dir)
    assert 'HF_HUB_OFFLINE=1' in err and '--no-pretrained' in err
