"""The `timm-t2t predict` and `features` commands: their arguments, image checks, top-k predictions, feature maps.

Free of torch and timm at module level: building the parser (and `--help`) stays fast.
"""
import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Sequence

from .args import add_model_kwargs_argument
from .errors import CliError, one_line
from .loading import load_model

if TYPE_CHECKING:
    import torch.nn as nn
    from PIL import Image

__all__ = ['configure_predict_parser', 'configure_features_parser', 'cmd_predict', 'cmd_features', 'open_images',
           'predict_images']

WEIGHTS_HELP = ('checkpoint to load instead of the pretrained tag (.safetensors, .pth, .pth.tar, official release '
                'files, a save_for_hf folder), through the model\'s checkpoint filter')
MODEL_KWARGS_HELP = ('architecture overrides for timm.create_model, as in timm\'s scripts, e.g. depth=6 (for a '
                     'checkpoint trained with them)')


def configure_predict_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t predict`."""
    p.description = ('Classify images with a T2T-ViT model. Preprocessing follows the model\'s pretrained cfg '
                     '(timm.data.resolve_model_data_config + create_transform); class names are ImageNet\'s, or a '
                     'fine-tuned checkpoint\'s own (config.json beside it).')
    p.add_argument('images', nargs='+', metavar='IMAGE', help='image files')
    p.add_argument('--model', help='NAME[.TAG], e.g. t2t_vit_14 or t2t_vit_14.in1k_384 (optional when --weights has '
                                   'a config.json beside it)')
    p.add_argument('--weights', metavar='FILE', help=WEIGHTS_HELP)
    add_model_kwargs_argument(p, MODEL_KWARGS_HELP, positional='images')
    p.add_argument('--top-k', type=int, default=5, help='classes per image (default 5)')
    p.add_argument('--batch-size', type=int, default=8, help='images per forward pass (default 8)')
    p.add_argument('--json', action='store_true', help='machine-readable output')
    p.set_defaults(func=cmd_predict)


def configure_features_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t features`."""
    p.description = ('Run the feature extractor (timm.create_model(..., features_only=True)) on one image and print '
                     'every feature map: the stem\'s token maps (stride 4 and 8) and every block (stride 16).')
    p.add_argument('image', metavar='IMAGE', help='image file')
    p.add_argument('--model', help='NAME[.TAG] (optional when --weights has a config.json beside it)')
    p.add_argument('--weights', metavar='FILE', help=WEIGHTS_HELP)
    add_model_kwargs_argument(p, MODEL_KWARGS_HELP, positional='the image')
    p.add_argument('--out', metavar='FILE.safetensors', help='save the maps, keyed by module name')
    p.set_defaults(func=cmd_features)


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
            raise CliError(f'{p} is not an image Pillow can read ({one_line(e)}): pass a JPEG, PNG, WebP, ... file.')
        checked.append(path)
    return checked


def _read_rgb(path: Path) -> 'Image.Image':
    from PIL import Image
    try:
        with Image.open(path) as img:
            return img.convert('RGB')
    except OSError as e:  # truncated or corrupted pixel data, found only when decoding
        raise CliError(f'{path} could not be decoded ({one_line(e)}): the file is probably truncated or corrupted.')


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
