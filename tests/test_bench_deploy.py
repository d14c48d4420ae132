"""Smoke test of `timm-t2t bench-deploy` (timm_t2t.bench.deploy): tiny inputs, one round, ONNX Runtime only (in the
`test` extra; OpenVINO is in the `bench` extra). No timing is asserted."""
import argparse
import json
from pathlib import Path

import pytest

from timm_t2t import export
from timm_t2t.bench import deploy
from timm_t2t.cli.bench import configure_deploy_parser


def test_bench_deploy_writes_rows_targets_and_exactness(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    configure_deploy_parser(parser)
    args = parser.parse_args([
        '--models', 't2t_vit_7,deit_tiny_patch16_224', '--runtimes', 'onnxruntime', '--img-size', '64',
        '--batch-size', '2', '--rounds', '1', '--min-time', '0', '--threads', '1', '--out-dir', str(tmp_path)])
    exported = []

    def spy(model, path, format='onnx', **kwargs):  # the package's one export path (`timm-t2t export`'s)
        exported.append((Path(path).name, format))
        return export.export_model(model, path, format, **kwargs)

    monkeypatch.setattr(deploy, 'export_model', spy)
    assert deploy.run(args) == 0
    assert exported == [('t2t_vit_7.onnx', 'onnx'), ('deit_tiny_patch16_224.onnx', 'onnx')]
    report = json.loads((tmp_path / 'bench-deploy.json').read_text())
    assert [(r['model'], r['runtime']) for r in report['rows']] == [
        ('t2t_vit_7', 'onnxruntime'), ('deit_tiny_patch16_224', 'onnxruntime')]
    for r in report['rows']:
        assert r['img_per_s_median'] > 0 and r['exact'] == 'pass' and r['max_abs_diff'] <= 1e-4
    by_pair = {(t['model'], t['runtime']): t for t in report['targets']}
    t7 = by_pair[('t2t_vit_7', 'onnxruntime')]
    assert t7['ratio'] > 0 and t7['ratio_quartiles'] == [t7['ratio'], t7['ratio']]  # one round: no spread
    assert by_pair[('t2t_vit_14', 'onnxruntime')]['result'] == 'not measured'
    assert by_pair[('t2t_vit_7', 'openvino-f32')]['result'] == 'not measured'
    table = (tmp_path / 'bench-deploy.md').read_text()
    assert '| t2t_vit_7 / deit_tiny_patch16_224 images/s, onnxruntime |' in table
    assert table in capsys.readouterr().out


def test_bench_deploy_refuses_bad_arguments(capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser()
    configure_deploy_parser(parser)
    assert deploy.run(parser.parse_args(['--runtimes', 'tensorrt'])) == 2
    assert 'Bad arguments' in capsys.readouterr().err
