"""The `timm-t2t list` and `recipes` commands: the registered architectures and tags, and the training recipes.

Free of torch and timm at module level: building the parser (and `--help`) stays fast, and `recipes` never needs them.
"""
import argparse
import json
import textwrap
from typing import Any, Dict, List, Optional

__all__ = ['configure_list_parser', 'configure_recipes_parser', 'cmd_list', 'cmd_recipes']


def configure_list_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t list`."""
    p.description = ('Every registered T2T-ViT architecture and pretrained tag: parameters, GMACs, resolution, '
                     'ImageNet accuracy, weights source, cached or not. No network.')
    p.add_argument('--json', action='store_true', help='machine-readable output')
    p.set_defaults(func=cmd_list)


def configure_recipes_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t recipes`."""
    p.description = ('The official ImageNet-1k training recipe of every released checkpoint, as a timm train.py '
                     'config file shipped with the package. With NAME, print only its path: train.py --config '
                     '"$(timm-t2t recipes t2t_vit_14.in1k)" ...')
    p.add_argument('name', nargs='?', metavar='NAME',
                   help='ARCH.TAG, e.g. t2t_vit_14.in1k_384 (ARCH alone: its default tag, in1k)')
    p.add_argument('--json', action='store_true', help='machine-readable output: {name: path}')
    p.set_defaults(func=cmd_recipes)


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


def _num(value: Optional[float], digits: int) -> str:
    return '-' if value is None else f'{value:.{digits}f}'
