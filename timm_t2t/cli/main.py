"""`timm-t2t`: the T2T-ViT command line (also `python -m timm_t2t`).

    timm-t2t list [--json]                        every architecture and pretrained tag
    timm-t2t predict IMAGE... --model NAME[.TAG]  top-k classes, preprocessing from the model's pretrained cfg
    timm-t2t features IMAGE --model NAME          shapes of every feature map, optionally saved as safetensors
    timm-t2t recipes [NAME]                       the official training recipes (train.py --config files)
    timm-t2t demo                                 fine-tune t2t_vit_7 on generated images, offline, CPU
    timm-t2t convert | push | bench | bench-deploy   weights conversion, Hub publishing, benchmarks

Bad input (a missing or unreadable file, an unknown model or tag, a checkpoint of another architecture) ends with one
line on stderr and exit code 2; `--debug` shows the traceback instead. `convert`, `push`, `bench` and `demo` live in
their own modules, imported only when chosen.

Help and `--version` import neither torch nor timm: this module imports them only inside the commands, and
`register_models()` imports the model module (which registers the T2T-ViT models with timm) just before a command
that needs them runs. The package itself skips that import when it is imported to start the command line
(`timm_t2t._launch`).
"""
import argparse
import difflib
import importlib
import json
import logging
import os
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from .args import add_model_kwargs_argument

if TYPE_CHECKING:
    import torch.nn as nn
    from PIL import Image

__all__ = ['main', 'CliError', 'load_model', 'open_images', 'predict_images', 'register_models']

EXIT_BAD_INPUT = 2  # argparse's exit code for bad arguments; used for every user error
EXIT_FAILURE = 1  # anything unexpected

# Subcommands that live in other modules: (parser module, its configure fn, run fn, help); the run fn is a function
# of the parser module, or `module:function` to import only when the command runs. Imported only when chosen; the
# parser modules are free of torch and timm, so `COMMAND --help` is instant.
DELEGATED: Dict[str, Tuple[str, str, str, str]] = {
    'demo': ('timm_t2t.cli.demo', 'configure_parser', 'timm_t2t.cli.demo_run:run',
             'fine-tune t2t_vit_7 on a generated image set, reload the checkpoint and predict (offline, CPU)'),
    'convert': ('timm_t2t.cli.weights', 'configure_convert_parser', 'run_convert',
                'convert an official checkpoint into a Hub-ready folder, checked against the original'),
    'push': ('timm_t2t.cli.weights', 'configure_push_parser', 'run_push',
             'upload converted folders to the Hugging Face Hub'),
    'bench': ('timm_t2t.cli.bench', 'configure_parser', 'timm_t2t.bench.speed:run',
              'benchmark T2T-ViT against timm ViTs (speed, memory)'),
    'bench-deploy': ('timm_t2t.cli.bench', 'configure_deploy_parser', 'timm_t2t.bench.deploy:run',
                     'time the exported models in ONNX Runtime and OpenVINO beside timm ViTs'),
}
# Commands that run without the models (no torch or timm import at all).
WITHOUT_MODELS = {'recipes'}


class CliError(Exception):
    """Bad input: printed as one line saying what is wrong and what to do, exit code 2."""


# --------------------------------------------------------------------------------------------------------------------
# Models and checkpoints


def _check_model_name(name: str, has_weights_file: bool) -> None:
    """Fail with a helpful line for unknown models, unknown tags, and weightless architectures without --weights."""
    import timm
    from timm.models import get_pretrained_cfg, split_model_name_tag

    arch, tag = split_model_name_tag(name)
    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models('t2t_vit*') or timm.list_models(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ''
        raise CliError(
            f"unknown model '{name}'{hint}: run `timm-t2t list` for the T2T-ViT names (any timm model name works too).")
    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:  # timm: "Invalid pretrained tag"
        tags = ', '.join(timm.list_pretrained(f'{arch}.*')) or 'none'
        raise CliError(f"'{arch}' has no pretrained tag '{tag}': use one of {tags}.") from None
    if not has_weights_file and not (cfg and cfg.has_weights):
        raise CliError(f"'{name}' has no released weights: pass --weights FILE with a checkpoint trained for it.")


def _weights_file(weights: str) -> Path:
    """The checkpoint file a --weights argument names (a file, or a folder written by timm's `save_for_hf`)."""
    path = Path(weights)
    if path.is_dir():
        for filename in ('model.safetensors', 'pytorch_model.bin'):
            if (path / filename).is_file():
                return path / filename
        raise CliError(f'{weights} is a folder without model.safetensors or pytorch_model.bin: pass the checkpoint '
                       f'file itself, or a folder written by timm.models.save_for_hf.')
    if not path.is_file():
        raise CliError(f'{weights}: no such checkpoint file; check the path (.safetensors, .pth, .pth.tar, or a '
                       f'save_for_hf folder).')
    return path


def _checkpoint_shapes(path: Path) -> Dict[str, Tuple[int, ...]]:
    """Tensor shapes of a checkpoint, in its own key names (safetensors: header only)."""
    if path.suffix == '.safetensors':
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework='pt') as f:
                return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        except Exception as e:  # safetensors raises its own error type for a bad header
            raise CliError(f'{path} is not a readable safetensors file ({_one_line(e)}): it is probably truncated '
                           f'or not a checkpoint; download or save it again.') from e
    from ..weights.checkpoint_io import read_checkpoint  # no code from a pickle runs
    obj = read_checkpoint(path)
    for key in ('state_dict_ema', 'model_ema', 'state_dict', 'model'):  # the layouts checkpoint_filter_fn accepts
        if isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    return {k[len('module.'):] if k.startswith('module.') else k: tuple(v.shape)
            for k, v in obj.items() if hasattr(v, 'shape')}


def _overlay_from_shapes(name: str, path: Path) -> Dict[str, Any]:
    """Pretrained-cfg overrides so that a checkpoint without a config loads whole: its class count and resolution.

    timm drops the head when `num_classes` differs from the pretrained cfg's, so a fine-tuned head (say 10 classes)
    must be declared in the overlay to be loaded rather than silently replaced by a random one.
    """
    import timm
    from timm.models import resolve_pretrained_cfg, split_model_name_tag

    cfg = resolve_pretrained_cfg(name).to_dict()
    shapes = _checkpoint_shapes(path)
    overlay: Dict[str, Any] = {}
    classifier = cfg.get('classifier') or 'head'
    head = shapes.get(f'{classifier if isinstance(classifier, str) else classifier[0]}.weight')
    if head and len(head) == 2 and head[0] != cfg.get('num_classes'):
        overlay['num_classes'] = head[0]
    pos = shapes.get('pos_embed')
    is_t2t = split_model_name_tag(name)[0] in timm.list_models(module='t2t_vit')
    if is_t2t and pos and len(pos) == 3:
        # T2T-ViT: a class token plus one token per 16 x 16 pixels
        side = int(round((pos[1] - 1) ** 0.5))
        size = (cfg['input_size'][0], 16 * side, 16 * side)
        if side * side == pos[1] - 1 and size != tuple(cfg['input_size']):
            overlay['input_size'] = size
    return overlay


def load_model(
        name: Optional[str],
        weights: Optional[str] = None,
        features_only: bool = False,
        **kwargs: Any,
) -> 'nn.Module':
    """Create a model for the command line, in eval mode, with its weights.

    Args:
        name: Model name (`arch`, `arch.tag`, or timm's `hf-hub:` / `local-dir:` forms). May be None when `weights`
            has a `config.json` beside it (timm's `save_for_hf` layout), which then names the architecture.
        weights: Checkpoint file or `save_for_hf` folder, loaded through `timm.create_model(..., pretrained=True,
            pretrained_cfg_overlay=dict(file=...))` and the checkpoint filter; None loads the pretrained tag.
        features_only: Build the feature extractor (every tap when `out_indices` is not given).
        **kwargs: More `timm.create_model` arguments.

    Returns:
        The model.

    Raises:
        CliError: Unknown model or tag, missing file, or a checkpoint config naming another architecture.
    """
    import timm
    from timm.models import split_model_name_tag

    overlay: Dict[str, Any] = {}
    if weights is not None:
        path = _weights_file(weights)
        if (path.parent / 'config.json').is_file():
            # timm's own export layout: architecture, model args, preprocessing and label names.
            from timm.models._hub import load_model_config_from_path  # what create_model('local-dir:...') uses
            cfg, arch, model_args = load_model_config_from_path(path.parent)
            if name is None:
                name = arch
            elif split_model_name_tag(name)[0] != arch:
                raise CliError(f'{weights} was saved from {arch} (see config.json beside it), not {name}: pass '
                               f'--model {arch}, or no --model.')
            overlay.update({k: v for k, v in cfg.items() if k not in ('file', 'source', 'hf_hub_id', 'url')})
            kwargs = {**model_args, **kwargs}
        elif name is None:
            raise CliError(f'--model is required: {weights} has no config.json beside it to name the architecture.')
        if name.partition(':')[1]:
            raise CliError(f'--weights cannot be combined with a hf-hub:/local-dir: model name ({name}): give one.')
        _check_model_name(name, has_weights_file=True)
        if not overlay:
            overlay = _overlay_from_shapes(name, path)
        overlay['file'] = str(path)
    elif name is None:
        raise CliError('--model is required: a name from `timm-t2t list`, e.g. --model t2t_vit_14.')
    elif not name.partition(':')[1]:
        _check_model_name(name, has_weights_file=False)
    if features_only and 'out_indices' not in kwargs:
        # Every tap (the model's default is the last 3; create_model drops out_indices=None): count them on meta.
        import torch
        with torch.device('meta'):
            num_taps = len(timm.create_model(name, pretrained_cfg_overlay=overlay or None, **kwargs).feature_info)
        kwargs['out_indices'] = tuple(range(num_taps))
    try:
        model = timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay=overlay or None, features_only=features_only, **kwargs)
    except Exception as e:
        from ..weights.checkpoint_io import DownloadError
        if weights is None and isinstance(e, DownloadError):
            raise CliError(f'{_one_line(e)} On the command line: --weights FILE.') from e
        raise
    return model.eval()


# --------------------------------------------------------------------------------------------------------------------
# Images and predictions


def open_images(paths: Sequence[str]) -> List[Path]:
    """Check that every path is an image Pillow can identify (header only), before any model is built.

    Raises:
        CliError: A missing path, a folder, or a file that is not an image.
    """
    from PIL import Image, UnidentifiedImageError

    checked = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise CliError(f'{p}: no such file; check the image path.')
        if path.is_dir():
            raise CliError(f'{p} is a folder: pass image files (e.g. {p}/*.jpg).')
        try:
            with Image.open(path) as img:
                img.size  # noqa: B018  identifying the format reads the header
        except (UnidentifiedImageError, OSError) as e:
            raise CliError(f'{p} is not an image Pillow can read ({_one_line(e)}): pass a JPEG, PNG, WebP, ... file.')
        checked.append(path)
    return checked


def _read_rgb(path: Path) -> 'Image.Image':
    from PIL import Image
    try:
        with Image.open(path) as img:
            return img.convert('RGB')
    except OSError as e:  # truncated or corrupted pixel data, found only when decoding
        raise CliError(f'{path} could not be decoded ({_one_line(e)}): the file is probably truncated or corrupted.')


def _label_names(model: 'nn.Module') -> Callable[[int], str]:
    """Class index -> name: the checkpoint's label names, else ImageNet's (by class count), else the index."""
    from timm.data import ImageNetInfo, infer_imagenet_subset

    names = (getattr(model, 'pretrained_cfg', None) or {}).get('label_names')
    if names:
        return lambda i: str(names[i])
    subset = infer_imagenet_subset(model)
    if subset:
        return ImageNetInfo(subset).index_to_description
    return str


def predict_images(
        model: 'nn.Module',
        paths: Sequence[Path],
        top_k: int = 5,
        batch_size: int = 8,
) -> List[Dict[str, Any]]:
    """Top-k predictions per image, preprocessed as the model's pretrained cfg says (timm's eval transform).

    Returns:
        One dict per image: `image`, and `top_k`, a list of {`index`, `label`, `probability`}.
    """
    import torch
    from timm.data import create_transform, resolve_model_data_config

    transform = create_transform(**resolve_model_data_config(model))
    label = _label_names(model)
    k = min(top_k, model.num_classes)
    results = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        x = torch.stack([transform(_read_rgb(p)) for p in chunk])
        with torch.inference_mode():
            probs, indices = model(x).softmax(dim=-1).topk(k, dim=-1)
        for path, p_row, i_row in zip(chunk, probs.tolist(), indices.tolist()):
            results.append(dict(image=str(path), top_k=[
                dict(index=i, label=label(i), probability=round(p, 6)) for p, i in zip(p_row, i_row)]))
    return results


# --------------------------------------------------------------------------------------------------------------------
# Subcommands


def _model_rows() -> List[Dict[str, Any]]:
    """One row per registered T2T-ViT architecture and pretrained tag."""
    import torch
    import timm
    from timm.models import get_pretrained_cfg

    from ..weights.convert import RELEASE_ACCURACY, count_gmacs
    from ..weights.download import cached_hub_weights, cached_release

    rows = []
    for arch in timm.list_models(module='t2t_vit'):
        for name in timm.list_pretrained(f'{arch}.*') or [arch]:
            cfg = get_pretrained_cfg(name)
            with torch.device('meta'):  # shapes only: no memory, no init
                model = timm.create_model(name)
            params = sum(p.numel() for p in model.parameters())
            buffers = sum(b.numel() for b in model.buffers())  # the frozen pos_embed and Performer features
            top1, top5 = RELEASE_ACCURACY.get(name, (None, None))
            cached = None
            if cfg.hf_hub_id and cached_hub_weights(cfg.hf_hub_id):
                cached = 'hub'
            elif cfg.url and cached_release(cfg.url):
                cached = 'release'
            rows.append(dict(
                name=name,
                architecture=arch,
                tag=cfg.tag,
                params=params,
                params_with_buffers=params + buffers,
                # every matmul incl. attention, counted by torch's flop counter on the meta device (spec section 5)
                gmacs=round(count_gmacs(model, cfg.input_size), 3),
                img_size=cfg.input_size[-1],
                top1=top1,
                top5=top5,
                hf_hub_id=cfg.hf_hub_id,
                url=cfg.url or None,
                cached=cached,
            ))
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    rows = _model_rows()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    fmt = '{:<22} {:>8} {:>9} {:>7} {:>4} {:>6} {:>6}  {}'
    print(fmt.format('model', 'params', 'w/ fixed', 'GMACs', 'res', 'top-1', 'top-5', 'cached'))
    for r in rows:
        print(fmt.format(
            r['name'], f"{r['params'] / 1e6:.2f}M", f"{r['params_with_buffers'] / 1e6:.2f}M", f"{r['gmacs']:.2f}",
            r['img_size'], _num(r['top1'], 1), _num(r['top5'], 2), r['cached'] or '-'))
    print('\n' + textwrap.fill(
        'params: trainable; w/ fixed: plus the frozen pos_embed and Performer features (the official count). '
        'GMACs: one image, every matmul incl. attention. top-1: official README; top-5: re-measured from the same '
        'weights (timm PR #2426, PaddleViT at 384). Weights: Hugging Face Hub repo timm-t2t/<model>, else the '
        'official release file (https://github.com/yitu-opensource/T2T-ViT/releases); --json lists both. '
        'cached: found in the local Hub or release cache (checked without network).', width=100))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if args.top_k < 1 or args.batch_size < 1:
        raise CliError('--top-k and --batch-size must be at least 1.')
    paths = open_images(args.images)
    model = load_model(args.model, args.weights, **dict(args.model_kwargs))
    results = predict_images(model, paths, top_k=args.top_k, batch_size=args.batch_size)
    name = getattr(model, 'pretrained_cfg', {}).get('architecture') or args.model
    if args.json:
        print(json.dumps(dict(model=name, weights=args.weights, predictions=results), indent=1))
        return 0
    size = model.pretrained_cfg['input_size']
    print(f'{name} ({args.weights or "pretrained weights"}), input {size[1]}x{size[2]}')
    for r in results:
        print(r['image'])
        for p in r['top_k']:
            print(f"  {100 * p['probability']:6.2f}%  [{p['index']}] {p['label']}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    import torch
    from timm.data import create_transform, resolve_model_data_config

    path = open_images([args.image])[0]
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        raise CliError(f'--out {args.out}: folder {out.parent} does not exist; create it first.')
    model = load_model(args.model, args.weights, features_only=True, **dict(args.model_kwargs))
    data_cfg = resolve_model_data_config(model)
    x = create_transform(**data_cfg)(_read_rgb(path)).unsqueeze(0)
    with torch.inference_mode():
        maps = model(x)
    info = model.feature_info.get_dicts()
    name = model.pretrained_cfg.get('architecture') or args.model
    print(f'{name}: {len(maps)} feature maps of {path} (input {tuple(x.shape)})')
    for i, (d, m) in enumerate(zip(info, maps)):
        print(f"  {i:>2}  {d['module']:<18} stride {d['reduction']:>2}  {tuple(m.shape)}")
    if out is not None:
        from safetensors.torch import save_file
        tensors = {d['module']: m.contiguous() for d, m in zip(info, maps)}
        meta = dict(model=str(name), image=str(path), input_size=json.dumps(list(x.shape)))
        # Written beside the target and renamed into place: no half-written file on failure.
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f'.{out.name}.', suffix='.partial')
        os.close(fd)
        try:
            save_file(tensors, tmp, metadata=meta)
            os.replace(tmp, out)
        finally:
            Path(tmp).unlink(missing_ok=True)
        print(f'saved {len(tensors)} tensors (keys: the module names above) to {out}')
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    """Names and paths of the shipped train.py recipes, or one path (no torch or timm import)."""
    from ..recipes import list_recipes, recipe_path

    if args.name:
        print(recipe_path(args.name))  # the path alone: `train.py --config "$(timm-t2t recipes NAME)"`
        return 0
    recipes = list_recipes()
    if args.json:
        print(json.dumps({name: str(path) for name, path in recipes.items()}, indent=1))
        return 0
    width = max(map(len, recipes))
    for name, path in recipes.items():
        print(f'{name:<{width}}  {path}')
    return 0


# --------------------------------------------------------------------------------------------------------------------
# Parser and entry point


def register_models() -> None:
    """Register the T2T-ViT models with timm (imports torch and timm; a no-op once done)."""
    importlib.import_module('timm_t2t.models.t2t_vit')


def _num(value: Optional[float], digits: int) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def _one_line(error: BaseException) -> str:
    text = ' '.join(str(error).split())
    return text or type(error).__name__


def _is_user_error(error: BaseException) -> bool:
    if isinstance(error, (CliError, FileNotFoundError, ValueError)):
        return True
    try:
        from ..weights.checkpoint_io import PretrainedWeightsError
    except Exception:  # the weights module is broken: then nothing it raises is a user error either
        return False
    return isinstance(error, PretrainedWeightsError)


def _command_of(argv: Sequence[str]) -> Optional[str]:
    """The subcommand named in argv (the global options take no values), so that only its module is imported."""
    return next((a for a in argv if not a.startswith('-')), None)


def _unavailable(command: str, module_name: str, error: BaseException) -> CliError:
    return CliError(f'`timm-t2t {command}` is unavailable: {module_name} could not be loaded ({_one_line(error)}); '
                    f'reinstall the package (pip install -e .) or rerun with --debug.')


def _deferred(command: str, module_name: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A command function that imports its module (torch, timm, ...) only when the command runs."""
    def run(args: argparse.Namespace) -> int:
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise _unavailable(command, module_name, e) from e
        return getattr(module, name)(args)
    return run


def _add_delegated(sub: argparse.ArgumentParser, command: str) -> None:
    module_name, configure, run, _ = DELEGATED[command]
    try:
        module = importlib.import_module(module_name)
        getattr(module, configure)(sub)
        run_module, _, run_name = run.rpartition(':')
        sub.set_defaults(func=_deferred(command, run_module, run_name) if run_module else getattr(module, run))
    except (ImportError, AttributeError) as e:
        error = _unavailable(command, module_name, e)

        def unavailable(args: argparse.Namespace) -> int:
            raise error
        unavailable.accepts_any_arguments = True  # its own options are unknown: say why instead of rejecting them
        sub.set_defaults(func=unavailable)


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The argument parser; only the module of `command` (if delegated) is imported to configure it."""
    from .. import __version__

    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite --debug given before the subcommand.
    common.add_argument('--debug', action='store_true', default=argparse.SUPPRESS,
                        help='show the full traceback of errors and info logs')

    parser = argparse.ArgumentParser(
        prog='timm-t2t', description='Tokens-to-Token ViT (T2T-ViT) models for timm: list, predict, features, recipes, '
                                     'demo, and the weights and benchmark tools.')
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    parser.add_argument('--debug', action='store_true', help='show the full traceback of errors and info logs')
    subs = parser.add_subparsers(dest='command', metavar='COMMAND')

    p = subs.add_parser('list', parents=[common], help='every T2T-ViT architecture and pretrained tag',
                        description='Every registered T2T-ViT architecture and pretrained tag: parameters, GMACs, '
                                    'resolution, ImageNet accuracy, weights source, cached or not. No network.')
    p.add_argument('--json', action='store_true', help='machine-readable output')
    p.set_defaults(func=cmd_list)

    weights_help = ('checkpoint to load instead of the pretrained tag (.safetensors, .pth, .pth.tar, official release '
                    'files, a save_for_hf folder), through the model\'s checkpoint filter')
    kwargs_help = 'architecture overrides for timm.create_model, as in timm\'s scripts, e.g. depth=6 (for a checkpoint ' \
                  'trained with them)'
    p = subs.add_parser('predict', parents=[common], help='classify images',
                        description='Classify images with a T2T-ViT model. Preprocessing follows the model\'s '
                                    'pretrained cfg (timm.data.resolve_model_data_config + create_transform); class '
                                    'names are ImageNet\'s, or a fine-tuned checkpoint\'s own (config.json beside it).')
    p.add_argument('images', nargs='+', metavar='IMAGE', help='image files')
    p.add_argument('--model', help='NAME[.TAG], e.g. t2t_vit_14 or t2t_vit_14.in1k_384 (optional when --weights has '
                                   'a config.json beside it)')
    p.add_argument('--weights', metavar='FILE', help=weights_help)
    add_model_kwargs_argument(p, kwargs_help, positional='images')
    p.add_argument('--top-k', type=int, default=5, help='classes per image (default 5)')
    p.add_argument('--batch-size', type=int, default=8, help='images per forward pass (default 8)')
    p.add_argument('--json', action='store_true', help='machine-readable output')
    p.set_defaults(func=cmd_predict)

    p = subs.add_parser('features', parents=[common], help='feature map shapes (features_only=True)',
                        description='Run the feature extractor (timm.create_model(..., features_only=True)) on one '
                                    'image and print every feature map: the stem\'s token maps (stride 4 and 8) and '
                                    'every block (stride 16).')
    p.add_argument('image', metavar='IMAGE', help='image file')
    p.add_argument('--model', help='NAME[.TAG] (optional when --weights has a config.json beside it)')
    p.add_argument('--weights', metavar='FILE', help=weights_help)
    add_model_kwargs_argument(p, kwargs_help, positional='the image')
    p.add_argument('--out', metavar='FILE.safetensors', help='save the maps, keyed by module name')
    p.set_defaults(func=cmd_features)

    p = subs.add_parser('recipes', parents=[common], help='the official training recipes as train.py configs',
                        description='The official ImageNet-1k training recipe of every released checkpoint, as a '
                                    'timm train.py config file shipped with the package. With NAME, print only its '
                                    'path: train.py --config "$(timm-t2t recipes t2t_vit_14.in1k)" ...')
    p.add_argument('name', nargs='?', metavar='NAME',
                   help='ARCH.TAG, e.g. t2t_vit_14.in1k_384 (ARCH alone: its default tag, in1k)')
    p.add_argument('--json', action='store_true', help='machine-readable output: {name: path}')
    p.set_defaults(func=cmd_recipes)

    for name, (_, _, _, help_text) in DELEGATED.items():
        sub = subs.add_parser(name, parents=[common], help=help_text)
        if name == command:
            _add_delegated(sub, name)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the `timm-t2t` command line.

    Args:
        argv: Arguments without the program name; default `sys.argv[1:]`.

    Returns:
        Exit code: 0 on success, 2 for bad input, 1 for unexpected failures.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(getattr(args, 'func', None), 'accepts_any_arguments', False):
        parser.error(f'unrecognized arguments: {" ".join(unknown)}')
    if getattr(args, 'func', None) is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    if args.debug:
        logging.basicConfig(level=logging.INFO)
    try:
        if args.command not in WITHOUT_MODELS:
            register_models()
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print('timm-t2t: interrupted', file=sys.stderr)
        return 130
    except Exception as e:
        if args.debug:
            raise
        if _is_user_error(e):
            print(f'timm-t2t {args.command}: error: {_one_line(e)}', file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f'timm-t2t {args.command}: unexpected error: {type(e).__name__}: {_one_line(e)} '
              f'(rerun with --debug for the traceback)', file=sys.stderr)
        return EXIT_FAILURE


if __name__ == '__main__':
    sys.exit(main())
