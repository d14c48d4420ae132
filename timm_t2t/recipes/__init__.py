"""The official ImageNet-1k training recipes, as timm `train.py` configs shipped with the package.

One YAML file per released checkpoint, named like the pretrained tag (`t2t_vit_14.in1k.yaml`), so that an installed
package can hand its path to timm's train.py:

    torchrun --nproc_per_node=8 train.py --config "$(timm-t2t recipes t2t_vit_14.in1k)" --data-dir /data/imagenet

Deliberately free of torch and timm: `timm-t2t recipes` answers at once.
"""
import difflib
import re
from pathlib import Path
from typing import Dict, List, Union

__all__ = ['RECIPES_DIR', 'list_recipes', 'recipe_path']

RECIPES_DIR = Path(__file__).resolve().parent
# timm's default pretrained tag of every T2T-ViT architecture (the first tag with weights); `arch` alone means it.
DEFAULT_TAG = 'in1k'


def _natural_key(name: str) -> List[Union[int, str]]:
    # t2t_vit_7 before t2t_vit_10, as timm.list_pretrained sorts
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', name)]


def list_recipes() -> Dict[str, Path]:
    """Every shipped recipe: `arch.tag` -> path of its train.py config, in timm's (natural) name order."""
    paths = {p.name[:-len('.yaml')]: p for p in RECIPES_DIR.glob('*.yaml')}
    return {name: paths[name] for name in sorted(paths, key=_natural_key)}


def recipe_path(name: str) -> Path:
    """The train.py config of a released model.

    Args:
        name: `arch.tag` as in `timm.list_pretrained('t2t_vit*')`, e.g. `t2t_vit_14.in1k_384`; a bare `arch` means its
            default tag (as `timm.create_model` reads it), e.g. `t2t_vit_14` -> `t2t_vit_14.in1k`.

    Returns:
        Path of the YAML file.

    Raises:
        ValueError: No recipe of that name; the message lists the names there are.
    """
    recipes = list_recipes()
    key = name if '.' in name else f'{name}.{DEFAULT_TAG}'
    if key in recipes:
        return recipes[key]
    if name == 't2t_vit_24.tl_in1k':
        raise ValueError(
            'no train.py recipe for t2t_vit_24.tl_in1k: it was trained with the TokenLabeling code base '
            '(dense teacher labels), which train.py cannot reproduce.')
    close = difflib.get_close_matches(key, list(recipes), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ''
    raise ValueError(f"no recipe '{name}'{hint}; the recipes are: {', '.join(recipes)}.")
