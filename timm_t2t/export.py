"""Export a model to ONNX or OpenVINO IR, checked against the model itself: the one export path of the package.

`export_model` writes the file with `torch.onnx.export` (an OpenVINO IR is converted from that ONNX graph with
`openvino.convert_model`, the route OpenVINO's Open Model Zoo takes for T2T-ViT-14), loads it in its runtime (ONNX
Runtime, or OpenVINO at f32 precision), runs a random batch through it and through the model's eager forward, and
returns the largest logit difference. Everything is written in a temporary folder beside the destination and renamed
into place only when the check passed, so a failed export leaves nothing half-written and an existing file untouched.

Used by `timm-t2t export` (`timm_t2t.cli.export`) and the deployment benchmark (`timm_t2t.bench.deploy`). Depends on
nothing else of the package; torch is imported when a model is exported, the runtimes when they are needed.
"""
import importlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional, Tuple, Union

if TYPE_CHECKING:
    import numpy as np
    import torch
    import torch.nn as nn

__all__ = [
    'FORMATS', 'EXPORTERS', 'OPSETS', 'RUNTIME_NAMES', 'TOLERANCE', 'DEPLOY_EXTRA',
    'ExportError', 'MissingRuntimeError', 'ExportMismatchError',
    'check_destination', 'check_runtimes', 'model_input_size', 'export_model', 'open_runtime',
]

FORMATS: Dict[str, str] = {'onnx': '.onnx', 'openvino': '.xml'}  # format -> file suffix
EXPORTERS = ('torchscript', 'dynamo')  # torch.onnx.export(dynamo=False) and (dynamo=True)
# The TorchScript-based exporter at opset 17 (as timm's onnx_export.py); the torch.export-based one writes opset-18
# Split, so it needs 18.
OPSETS: Dict[str, int] = {'torchscript': 17, 'dynamo': 18}
RUNTIME_NAMES: Dict[str, str] = {'onnx': 'ONNX Runtime', 'openvino': 'OpenVINO'}
TOLERANCE = 1e-4  # largest f32 logit difference an exported file may have from the eager model
DEPLOY_EXTRA = "pip install 'timm-t2t[deploy]'"
INPUT_NAME, OUTPUT_NAME = 'input', 'logits'

PathLike = Union[str, os.PathLike]


class ExportError(Exception):
    """An export that cannot be done as asked (a bad destination, a missing runtime); the message says what to do."""


class MissingRuntimeError(ExportError):
    """A package the export or its check needs is not installed; the message names the extra that brings it."""


class ExportMismatchError(ExportError):
    """The exported file computes other logits than the model (beyond `TOLERANCE`); nothing was written.

    Attributes:
        max_abs_diff: The largest absolute logit difference found.
    """

    def __init__(self, message: str, max_abs_diff: float) -> None:
        super().__init__(message)
        self.max_abs_diff = max_abs_diff


def _required_modules(format: str, exporter: str, verify: bool) -> List[Tuple[str, str]]:
    """(module, what it is needed for) for an export."""
    modules = [('onnx', 'torch.onnx.export writes ONNX with it')]
    if exporter == 'dynamo':
        modules.append(('onnxscript', 'the dynamo exporter translates the graph with it'))
    if format == 'openvino':
        modules.append(('openvino', 'it converts the ONNX graph to an IR and runs it'))
    elif verify:
        modules.append(('onnxruntime', 'it runs the exported file to check it'))
    return modules


def _check_choice(format: str, exporter: Optional[str] = None) -> None:
    if format not in FORMATS:
        raise ExportError(f'unknown format {format!r}: use one of {", ".join(FORMATS)}.')
    if exporter is not None and exporter not in EXPORTERS:
        raise ExportError(f'unknown exporter {exporter!r}: use one of {", ".join(EXPORTERS)}.')


def check_runtimes(format: str, exporter: str = 'torchscript', verify: bool = True) -> None:
    """Import what exporting to `format` (and checking the file) needs, so that a missing package fails up front.

    Args:
        format: 'onnx' or 'openvino'.
        exporter: 'torchscript' or 'dynamo'.
        verify: Whether the exported file will be run (ONNX Runtime for ONNX; OpenVINO always runs its IR).

    Raises:
        ExportError: Unknown format or exporter.
        MissingRuntimeError: A needed package cannot be imported; the message names it and the `deploy` extra.
    """
    _check_choice(format, exporter)
    missing = []
    for module, why in _required_modules(format, exporter, verify):
        try:
            importlib.import_module(module)
        except ImportError as e:
            # A broken install (a failing native library) says why; a plain absence needs no more words.
            detail = '' if isinstance(e, ModuleNotFoundError) and e.name == module else f'; {type(e).__name__}: {e}'
            missing.append(f'{module} ({why}{detail})')
    if missing:
        verb = 'is' if len(missing) == 1 else 'are'
        raise MissingRuntimeError(f'{" and ".join(missing)} {verb} not installed. Install the deployment extra: '
                                  f'{DEPLOY_EXTRA}')


def check_destination(path: PathLike, format: str) -> Path:
    """Check that an export to `path` can be written, before any work is done.

    Args:
        path: The file to write (`.onnx` for ONNX, `.xml` for an OpenVINO IR, whose `.bin` goes beside it).
        format: 'onnx' or 'openvino'.

    Returns:
        `path` as a Path.

    Raises:
        ExportError: A suffix that does not fit the format, a folder as path, a missing or unwritable folder.
    """
    _check_choice(format)
    path, suffix = Path(path), FORMATS[format]
    if path.suffix.lower() != suffix:
        what = 'an OpenVINO IR is an .xml file (its weights go to the .bin beside it)' if format == 'openvino' else \
            'an ONNX file ends in .onnx'
        raise ExportError(f'{path}: {what}; name it {path.with_suffix(suffix).name}.')
    if path.is_dir():
        raise ExportError(f'{path} is a folder: give the file to write, e.g. {path / ("model" + suffix)}.')
    folder = path.parent
    if not folder.is_dir():
        raise ExportError(f'cannot write {path}: folder {folder} does not exist; create it first.')
    try:  # what the export itself does first: the only reliable answer (permissions, read-only mounts, root)
        Path(tempfile.mkdtemp(dir=folder, prefix=f'.{path.name}.', suffix='.partial')).rmdir()
    except OSError as e:
        raise ExportError(f'cannot write {path}: folder {folder} is not writable ({e.strerror or e}).') from e
    return path


def model_input_size(model: 'nn.Module') -> Tuple[int, int, int]:
    """(C, H, W) the model is built for: its patch embedding's image size where it has one (the pretrained cfg keeps
    its own size when the model is built with `img_size=`), else its pretrained cfg's `input_size`."""
    cfg_size = tuple((getattr(model, 'pretrained_cfg', None) or {}).get('input_size') or (3, 224, 224))
    chans = int(getattr(model, 'in_chans', cfg_size[0]))
    img_size = getattr(getattr(model, 'patch_embed', None), 'img_size', None)
    height, width = (img_size if img_size is not None else cfg_size[1:])
    return chans, int(height), int(width)


def _export_onnx(model: 'nn.Module', path: Path, example: 'torch.Tensor', exporter: str, dynamic: bool) -> None:
    import torch

    kwargs = dict(input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=OPSETS[exporter],
                  dynamo=exporter == 'dynamo', verbose=False)
    if exporter == 'dynamo':
        # One self-contained file: T2T-ViT's weights are far below ONNX's 2 GB limit for weights inside the file.
        kwargs['external_data'] = False
        if dynamic:
            kwargs['dynamic_shapes'] = ({0: torch.export.Dim('batch', min=1)},)
    elif dynamic:
        kwargs['dynamic_axes'] = {INPUT_NAME: {0: 'batch'}, OUTPUT_NAME: {0: 'batch'}}
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(path), **kwargs)


def _to_openvino(onnx_path: Path, xml_path: Path) -> None:
    import openvino as ov

    # compress_to_fp16=False: save_model stores f16 weights by default, which the f32 check would (rightly) refuse.
    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)


def open_runtime(runtime: str, path: Path, threads: Optional[int] = None) -> Tuple[Callable, str]:
    """A callable running an exported file on the CPU, and the precision it runs at.

    Args:
        runtime: 'onnxruntime', 'openvino-f32' or 'openvino-default' (the device's default precision hint, bf16 on
            CPUs with bf16 units).
        path: The ONNX file (any runtime) or OpenVINO IR (the OpenVINO ones).
        threads: Threads of the runtime (the deployment benchmark sets them), or its default.

    Returns:
        (a function from an input batch (numpy) to the logits, the precision: 'f32', 'bf16', ...).
    """
    if runtime == 'onnxruntime':
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
        name = session.get_inputs()[0].name
        return (lambda x: session.run(None, {name: x})[0]), 'f32'
    import openvino as ov
    config: Dict[str, object] = {}
    if threads is not None:
        config.update(INFERENCE_NUM_THREADS=threads, PERFORMANCE_HINT='LATENCY')
    if runtime == 'openvino-f32':
        config['INFERENCE_PRECISION_HINT'] = 'f32'
    compiled = ov.Core().compile_model(str(path), 'CPU', config)
    hint = compiled.get_property('INFERENCE_PRECISION_HINT')
    precision = hint.get_type_name() if hasattr(hint, 'get_type_name') else str(hint)
    return (lambda x: compiled(x)[0]), precision


def _run_exported(path: Path, format: str, x: 'np.ndarray') -> 'np.ndarray':
    """Logits of the exported file for `x`, in its runtime on the CPU at f32 (the OpenVINO default hint may run bf16
    where the CPU has bf16 units, which is not what is checked)."""
    return open_runtime('onnxruntime' if format == 'onnx' else 'openvino-f32', path)[0](x)


def _move_into_place(staging: Path, path: Path) -> None:
    """Rename the staged files into `path`'s folder: companions (the IR's .bin) first, the file named `path` last, so
    that once it appears, what it references is there."""
    main = staging / path.name
    for f in sorted(staging.iterdir()):
        if f.is_file() and f != main:
            os.replace(f, path.parent / f.name)
    os.replace(main, path)


def export_model(
        model: 'nn.Module',
        path: PathLike,
        format: str = 'onnx',
        *,
        exporter: str = 'torchscript',
        batch: Optional[int] = None,
        input_size: Optional[Tuple[int, int, int]] = None,
        verify: bool = True,
        tolerance: float = TOLERANCE,
        seed: int = 0,
) -> Optional[float]:
    """Export `model` to an ONNX file or an OpenVINO IR, check it against the eager model, and put it in place.

    The model is exported in eval mode (its mode is restored afterwards) with one input `input` (N, C, H, W) and one
    output `logits`. The ONNX file is written by `torch.onnx.export` (opset 17 for the TorchScript-based exporter, 18
    for the dynamo one); an OpenVINO IR (`.xml` plus `.bin` beside it, f32 weights) is converted from it by
    `openvino.convert_model`. With `verify`, the file is loaded in its runtime (ONNX Runtime's CPU provider, or
    OpenVINO's CPU plugin at f32) and run on a seeded random batch; with a dynamic batch, one of another size than the
    traced one, so that the batch dimension is shown to be dynamic. Files are staged in a temporary folder beside
    `path` and renamed into place only after the check passed.

    Args:
        model: The model (CPU, float32).
        path: File to write: `.onnx`, or `.xml` for OpenVINO.
        format: 'onnx' or 'openvino'.
        exporter: 'torchscript' (`dynamo=False`) or 'dynamo' (`dynamo=True`, torch.export).
        batch: Fixed batch size; None exports a dynamic batch dimension.
        input_size: (C, H, W); default `model_input_size(model)`.
        verify: Run the file and compare with the eager model; False only exports (callers that check the file
            themselves, e.g. in every runtime they time).
        tolerance: Largest logit difference accepted.
        seed: Seed of the random check batch.

    Returns:
        The largest absolute logit difference between the exported file and the eager model; None without `verify`.

    Raises:
        ExportError: Unknown format or exporter, or a destination that cannot be written (see `check_destination`).
        MissingRuntimeError: A package the export needs is not installed.
        ExportMismatchError: The exported file's logits differ by more than `tolerance` (or have another shape).
    """
    import torch

    if batch is not None and batch < 1:
        raise ExportError(f'batch must be at least 1, got {batch}.')
    path = check_destination(path, format)
    check_runtimes(format, exporter, verify)
    chans, height, width = input_size or model_input_size(model)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device('cpu')
    generator = torch.Generator().manual_seed(seed)
    # Traced at batch 2 when dynamic: a batch of 1 invites exporters to treat the dimension as a constant.
    example = torch.randn(batch or 2, chans, height, width, generator=generator).to(device)
    check = torch.randn(batch or 3, chans, height, width, generator=generator)

    was_training = model.training
    model.eval()
    staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.partial'))
    try:
        staged = staging / path.name
        if format == 'openvino':
            intermediate = staging / 'onnx' / f'{path.stem}.onnx'  # a sub-folder: not moved into place
            intermediate.parent.mkdir()
            _export_onnx(model, intermediate, example, exporter, dynamic=batch is None)
            _to_openvino(intermediate, staged)
        else:
            _export_onnx(model, staged, example, exporter, dynamic=batch is None)
        diff = None
        if verify:
            with torch.no_grad():
                expected = model(check.to(device)).float().cpu().numpy()
            out = _run_exported(staged, format, check.numpy())
            runtime = RUNTIME_NAMES[format]
            if out.shape != expected.shape:
                raise ExportMismatchError(
                    f'{runtime} gives logits of shape {tuple(out.shape)} for a batch of {tuple(check.shape)}, the '
                    f'model {tuple(expected.shape)}: the exported graph is wrong; nothing was written to {path}.',
                    float('inf'))
            diff = float(abs(out - expected).max())
            if not diff <= tolerance:  # also NaN
                raise ExportMismatchError(
                    f'{runtime} logits differ from the model\'s by up to {diff:.2e}, above {tolerance:g}: the exported '
                    f'graph computes something else; nothing was written to {path}.', diff)
        _move_into_place(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        model.train(was_training)
    return diff
