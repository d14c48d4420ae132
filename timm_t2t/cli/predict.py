"""The `timm-t2t predict` and `features` commands: their arguments, input checks, top-k predictions, feature maps.

Bad input is found in two steps, both before the model is built: `check_predict_input` / `check_features_input` run
before torch is even imported (numbers, images, `--weights`, `--out`), `loading.load_model` checks what needs timm
(names, `--model-kwargs`, the checkpoint's keys). Preprocessing follows the model that was built (its input size),
so `--model-kwargs img_size=...` works. Free of torch and timm at module level: building the parser (and `--help`)
stays fast.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from .args import add_model_kwargs_argument, add_pretrained_argument
from .errors import CliError, one_line
from .loading import check_model_without_torch, check_weights_argument, load_model
from .model_options import check_reserved_model_kwargs
from .outputs import check_output_file, write_file_atomically

if TYPE_CHECKING:
    import torch.nn as nn
    from PIL import Image

__all__ = ['configure_predict_parser', 'configure_features_parser', 'cmd_predict', 'cmd_features', 'open_images',
           'predict_images', 'model_data_config', 'check_predict_input', 'check_features_input']

WEIGHTS_HELP = ('checkpoint to load instead of the pretrained tag (.safetensors, .pth, .pth.tar, official release '
                'files, a save_for_hf folder), through the model\'s checkpoint filter')
MODEL_KWARGS_HELP = ('architecture overrides for timm.create_model, as in timm\'s scripts, e.g. depth=6 (for a '
                     'checkpoint trained with them) or img_size=320 (images are then preprocessed at that size); '
                     'checked against the model\'s arguments before it is built')
DEFAULT_TOP_K = 5


def configure_predict_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t predict`."""
    p.description = ('Classify images with a T2T-ViT model. Preprocessing follows the model\'s pretrained cfg '
                     '(timm.data.resolve_model_data_config + create_transform) at the input size the model was built '
                     'for; class names are ImageNet\'s, or a fine-tuned checkpoint\'s own (config.json beside it).')
    p.add_argument('images', nargs='+', metavar='IMAGE', help='image files')
    p.add_argument('--model', help='NAME[.TAG], e.g. t2t_vit_14 or t2t_vit_14.in1k_384 (optional when --weights has '
                                   'a config.json beside it)')
    p.add_argument('--weights', metavar='FILE', help=WEIGHTS_HELP)
    add_pretrained_argument(p)
    add_model_kwargs_argument(p, MODEL_KWARGS_HELP, positional='images')
    p.add_argument('--top-k', type=int, default=None,
                   help=f'classes per image (default {DEFAULT_TOP_K}; at most the model\'s class count)')
    p.add_argument('--batch-size', type=int, default=8, help='images per forward pass (default 8)')
    p.add_argument('--json', action='store_true', help='machine-readable output')
    p.set_defaults(func=cmd_predict, check_input=check_predict_input)


def configure_features_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t features`."""
    p.description = ('Run the feature extractor (timm.create_model(..., features_only=True)) on one image and print '
                     'every feature map: the stem\'s token maps (stride 4 and 8) and every block (stride 16).')
    p.add_argument('image', metavar='IMAGE', help='image file')
    p.add_argument('--model', help='NAME[.TAG] (optional when --weights has a config.json beside it)')
    p.add_argument('--weights', metavar='FILE', help=WEIGHTS_HELP)
    add_pretrained_argument(p)
    add_model_kwargs_argument(p, MODEL_KWARGS_HELP, positional='the image')
    p.add_argument('--out', metavar='FILE.safetensors', help='save the maps, keyed by module name (checked before the '
                                                              'model runs; written whole or not at all)')
    p.set_defaults(func=cmd_features, check_input=check_features_input)


def check_predict_input(args: argparse.Namespace) -> None:
    """Everything of `predict` that needs no model, before torch is imported: numbers, `--weights`, the images.

    Raises:
        CliError: The first bad argument.
    """
    if (args.top_k is not None and args.top_k < 1) or args.batch_size < 1:
        raise CliError('--top-k and --batch-size must be at least 1.')
    args.image_paths = open_images(args.images)
    check_weights_argument(args.weights, args.pretrained)
    check_reserved_model_kwargs(dict(args.model_kwargs))
    check_model_without_torch(args.model, args.weights, dict(args.model_kwargs), classifier=True)
    args.input_checked = True


def check_features_input(args: argparse.Namespace) -> None:
    """Everything of `features` that needs no model, before torch is imported: the image, `--weights`, `--out`.

    Raises:
        CliError: The first bad argument.
    """
    args.image_paths = open_images([args.image])
    check_weights_argument(args.weights, args.pretrained)
    check_reserved_model_kwargs(dict(args.model_kwargs))
    args.out_path = check_output_file(args.out) if args.out else None
    check_model_without_torch(args.model, args.weights, dict(args.model_kwargs), features_only=True)
    args.input_checked = True


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


def _built_input_size(model: 'nn.Module') -> Optional[Tuple[int, int]]:
    """The (H, W) a fixed-size model was built for (its patch embedding's `img_size`), None for any size."""
    inner = getattr(model, 'model', model)  # timm's feature extractors keep the model as `.model`
    if getattr(inner, 'dynamic_img_size', False):
        return None
    size = getattr(getattr(inner, 'patch_embed', None), 'img_size', None)
    if isinstance(size, int):
        return size, size
    if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(v, int) for v in size):
        return int(size[0]), int(size[1])
    return None


def model_data_config(model: 'nn.Module') -> Dict[str, Any]:
    """timm's data config of a built model (resolve_model_data_config), at the input size the model was built for.

    The pretrained cfg keeps the size of its weights; a model built with `img_size=...` (or from a checkpoint of
    another size) takes images of its own size, so the transform resizes and crops to that.
    """
    from timm.data import resolve_model_data_config

    config = resolve_model_data_config(model)
    size = _built_input_size(model)
    if size is not None:
        config['input_size'] = (config['input_size'][0], *size)
    return config


def predict_images(
        model: 'nn.Module',
        paths: Sequence[Path],
        top_k: int = DEFAULT_TOP_K,
        batch_size: int = 8,
        data_config: Optional[Dict[str, Any]] = None,
) -> List[Dict[str, Any]]:
    """Top-k predictions per image, preprocessed with timm's eval transform for the model (`model_data_config`).

    Args:
        model: A classifier in eval mode.
        paths: Image files.
        top_k: Classes per image; at most the model's class count.
        batch_size: Images per forward pass.
        data_config: The preprocessing; default `model_data_config(model)`.

    Returns:
        One dict per image: `image`, and `top_k`, a list of {`index`, `label`, `probability`}.
    """
    import torch
    from timm.data import create_transform

    transform = create_transform(**(data_config or model_data_config(model)))
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


def _weights_source(args: argparse.Namespace) -> str:
    return args.weights or ('random weights, --no-pretrained' if not args.pretrained else 'pretrained weights')


def cmd_predict(args: argparse.Namespace) -> int:
    """Run `timm-t2t predict`: check, load, classify, print (text or JSON)."""
    if not getattr(args, 'input_checked', False):  # the command line checks first; a direct call checks here
        check_predict_input(args)
    model = load_model(args.model, args.weights, pretrained=args.pretrained, classifier=True,
                       **dict(args.model_kwargs))
    classes = model.num_classes
    top_k = DEFAULT_TOP_K if args.top_k is None else args.top_k
    if args.top_k is not None and args.top_k > classes:
        print(f'timm-t2t predict: note: --top-k {args.top_k} is more than the model\'s {classes} classes; showing '
              f'all {classes}.', file=sys.stderr)
    if not args.pretrained:
        print('timm-t2t predict: note: random weights (--no-pretrained): the classes shown mean nothing.',
              file=sys.stderr)
    data_config = model_data_config(model)
    results = predict_images(model, args.image_paths, top_k=min(top_k, classes), batch_size=args.batch_size,
                             data_config=data_config)
    name = getattr(model, 'pretrained_cfg', {}).get('architecture') or args.model
    if args.json:
        print(json.dumps(dict(model=name, weights=args.weights, pretrained=args.pretrained, predictions=results),
                         indent=1))
        return 0
    size = data_config['input_size']
    print(f'{name} ({_weights_source(args)}), input {size[1]}x{size[2]}')
    for r in results:
        print(r['image'])
        for p in r['top_k']:
            print(f"  {100 * p['probability']:6.2f}%  [{p['index']}] {p['label']}")
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    """Run `timm-t2t features`: check, load the feature extractor, print every map, save them (`--out`)."""
    import torch
    from timm.data import create_transform

    if not getattr(args, 'input_checked', False):  # the command line checks first; a direct call checks here
        check_features_input(args)
    path, out = args.image_paths[0], args.out_path
    model = load_model(args.model, args.weights, features_only=True, pretrained=args.pretrained,
                       **dict(args.model_kwargs))
    x = create_transform(**model_data_config(model))(_read_rgb(path)).unsqueeze(0)
    with torch.inference_mode():
        maps = model(x)
    info = model.feature_info.get_dicts()
    name = model.pretrained_cfg.get('architecture') or args.model
    print(f'{name} ({_weights_source(args)}): {len(maps)} feature maps of {path} (input {tuple(x.shape)})')
    for i, (d, m) in enumerate(zip(info, maps)):
        print(f"  {i:>2}  {d['module']:<18} stride {d['reduction']:>2}  {tuple(m.shape)}")
    if out is not None:
        from safetensors.torch import save_file
        tensors = {d['module']: m.contiguous() for d, m in zip(info, maps)}
        meta = dict(model=str(name), image=str(path), input_size=json.dumps(list(x.shape)))
        with write_file_atomically(out) as tmp:  # renamed into place when whole: no half-written file on failure
            save_file(tensors, str(tmp), metadata=meta)
        print(f'saved {len(tensors)} tensors (keys: the module names above) to {out}')
    return 0
