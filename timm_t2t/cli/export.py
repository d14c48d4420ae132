"""The `timm-t2t export` command: a model to an ONNX file or an OpenVINO IR, checked in its runtime.

    timm-t2t export MODEL[.TAG] --out PATH [--format onnx|openvino] [--batch N] [--exporter torchscript|dynamo]

The work is `timm_t2t.export.export_model`; this module wires the arguments, spelled and loaded as in `predict` and
`features` (`--weights`, `--pretrained`/`--no-pretrained`, `--model-kwargs`, through `loading.load_model`), plus
`--img-size` and `--num-classes` (timm's script names; shorthands of `--model-kwargs img_size=N num_classes=N`).
Free of torch, timm and the runtimes at module level: `--help` stays instant.
"""
import argparse
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Optional, Sequence, Tuple

from ..export import (  # free of torch and the runtimes at module level
    EXPORTERS, FORMATS, OPSETS, RUNTIME_NAMES, TOLERANCE, ExportError, ExportMismatchError, check_destination,
    check_runtimes, export_model, model_input_size)
from .args import add_model_kwargs_argument, add_pretrained_argument
from .errors import EXIT_BAD_INPUT, EXIT_FAILURE, CliError
from .loading import check_weights_argument, load_model
from .outputs import check_output_file

__all__ = ['configure_parser', 'run_export']

WEIGHTS_HELP = ('checkpoint to load instead of the pretrained tag (.safetensors, .pth, .pth.tar, official release '
                'files, a save_for_hf folder), through the model\'s checkpoint filter')
MODEL_KWARGS_HELP = ('architecture overrides for timm.create_model, as in timm\'s scripts, e.g. depth=6 (for a '
                     'checkpoint trained with them)')


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a whole number, got {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be at least 1, got {value}')
    return value


def _one_line_usage_errors(p: argparse.ArgumentParser) -> None:
    """Make the command's usage errors one line, as its other errors are (argparse prints the usage first).

    Unrecognized options are reported here too: left to the top-level parser they would print its usage.
    """
    def error(message: str) -> NoReturn:
        p.exit(EXIT_BAD_INPUT, f'{p.prog}: error: {message} (see {p.prog} --help)\n')

    parse_known_args = p.parse_known_args

    def parse_known_args_strict(
            args: Optional[Sequence[str]] = None,
            namespace: Optional[argparse.Namespace] = None,
    ) -> Tuple[argparse.Namespace, List[str]]:
        namespace, extras = parse_known_args(args, namespace)
        if extras:
            error(f'unrecognized arguments: {" ".join(extras)}')
        return namespace, extras

    p.error = error  # type: ignore[method-assign]
    p.parse_known_args = parse_known_args_strict  # type: ignore[method-assign]


def configure_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t export`."""
    p.description = (
        'Export a model to ONNX (torch.onnx.export) or to an OpenVINO IR (converted from that ONNX graph), then load '
        'the file in its runtime (ONNX Runtime, or OpenVINO at f32), run a random batch through it and through the '
        'model, and print the largest logit difference; above 1e-4 the command fails and writes nothing. The file is '
        'written under a temporary name and renamed into place. The runtimes come with '
        "pip install 'timm-t2t[deploy]'.")
    p.add_argument('model', nargs='?', metavar='MODEL[.TAG]',
                   help='e.g. t2t_vit_14 or t2t_vit_14.in1k_384 (optional when --weights has a config.json beside it)')
    p.add_argument('--out', required=True, metavar='PATH',
                   help='file to write: NAME.onnx, or NAME.xml for OpenVINO (its weights go to NAME.bin beside it)')
    p.add_argument('--format', choices=tuple(FORMATS), default=None,
                   help='onnx or openvino (default: from the suffix of --out, .onnx or .xml)')
    p.add_argument('--weights', metavar='FILE|DIR', help=WEIGHTS_HELP)
    add_pretrained_argument(p)
    p.add_argument('--img-size', type=_positive_int, metavar='N',
                   help='input size N x N the model is built for (default: its pretrained cfg\'s)')
    p.add_argument('--num-classes', type=_positive_int, metavar='N',
                   help='classes of the head (another count than the weights\' gives a new, random head)')
    add_model_kwargs_argument(p, MODEL_KWARGS_HELP, positional='MODEL')
    p.add_argument('--batch', type=_positive_int, metavar='N',
                   help='fixed batch size (default: a dynamic batch dimension)')
    p.add_argument('--exporter', choices=EXPORTERS, default='torchscript',
                   help='torch.onnx.export route: torchscript (dynamo=False, opset 17, as timm\'s onnx_export.py; '
                        'default) or dynamo (torch.export, opset 18)')
    p.set_defaults(func=run_export)
    _one_line_usage_errors(p)


def _format_of(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    suffix = Path(args.out).suffix.lower()
    for fmt, fmt_suffix in FORMATS.items():
        if suffix == fmt_suffix:
            return fmt
    raise CliError(f'--out {args.out}: name the file NAME.onnx or NAME.xml (OpenVINO IR), or give --format.')


def _model_kwargs(args: argparse.Namespace) -> Dict[str, Any]:
    kwargs: Dict[str, Any] = dict(args.model_kwargs)
    if args.img_size is not None:
        kwargs['img_size'] = args.img_size
    if args.num_classes is not None:
        kwargs['num_classes'] = args.num_classes
    return kwargs


def run_export(args: argparse.Namespace) -> int:
    """Run `timm-t2t export`: check the arguments, destination and runtimes, build the model, export and check.

    Returns:
        0 when the file is written and its logits are within 1e-4 of the model's; 1 when they are not (nothing is
        written). Bad input raises `CliError` (exit 2).
    """
    # Everything that can fail is checked before the model is built (and its weights downloaded).
    fmt = _format_of(args)
    if args.model is None and args.weights is None:
        raise CliError('MODEL is required: a name from `timm-t2t list`, e.g. `timm-t2t export t2t_vit_14 --out '
                       't2t_vit_14.onnx`.')
    check_weights_argument(args.weights, args.pretrained)
    check_output_file(args.out)
    try:
        out = check_destination(args.out, fmt)
    except ExportError as e:
        raise CliError(f'--out {e}') from e
    try:
        check_runtimes(fmt, args.exporter)
    except ExportError as e:
        raise CliError(str(e)) from e
    model = load_model(args.model, args.weights, pretrained=args.pretrained, **_model_kwargs(args))
    name = (getattr(model, 'pretrained_cfg', None) or {}).get('architecture') or args.model
    source = args.weights or ('pretrained weights' if args.pretrained else 'random weights')
    chans, height, width = model_input_size(model)
    with warnings.catch_warnings():
        if not getattr(args, 'debug', False):
            # The TorchScript-based exporter warns about its deprecation and about traced Python values; the check
            # below is what tells whether the file is right.
            warnings.simplefilter('ignore')
        try:
            diff = export_model(model, out, fmt, exporter=args.exporter, batch=args.batch)
        except ExportMismatchError as e:
            print(f'timm-t2t export: error: {e}', file=sys.stderr)
            return EXIT_FAILURE
        except ExportError as e:
            raise CliError(str(e)) from e
    batch = f'batch {args.batch}' if args.batch else 'dynamic batch'
    extra = f' + {out.with_suffix(".bin").name}' if fmt == 'openvino' else ''
    print(f'{name} ({source}) -> {out}{extra}: {fmt}, {args.exporter} exporter opset {OPSETS[args.exporter]}, '
          f'input {batch} x {chans} x {height} x {width}')
    print(f'max abs logit difference from PyTorch in {RUNTIME_NAMES[fmt]}: {diff:.2e} '
          f'(<= {TOLERANCE:g}: ok)')
    return 0
