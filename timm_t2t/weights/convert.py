"""Conversion with proof, and the model card.

`convert_checkpoint`: official checkpoint -> Hub-ready folder (`model.safetensors` in this package's key layout,
`config.json` written by timm's `save_for_hf` and loadable by transformers' `TimmWrapper` too, `README.md` model card).
The converted folder is loaded back through timm and must reproduce the original's logits within 1e-4 before anything
is moved into place.
"""
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple
from urllib.parse import urlparse

import torch
import torch.nn as nn
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from huggingface_hub.utils import tqdm as hf_tqdm

import timm
from timm.models import save_for_hf, split_model_name_tag

from ..models.t2t_vit import checkpoint_filter_fn, default_cfgs
from .checkpoint_io import (
    PathLike, PretrainedWeightsError, check_state_dict, describe_layout, file_digest, read_checkpoint)
from .download import download_release

__all__ = [
    'TOLERANCE', 'HUB_FILES', 'RELEASE_ACCURACY', 'release_urls', 'ConversionResult', 'convert_checkpoint',
    'count_gmacs', 'model_card',
]

TOLERANCE = 1e-4  # max |logit difference| a conversion may show
HUB_FILES = ('model.safetensors', 'config.json', 'README.md')
LOADER_ARGS = ('num_classes',)  # config.json model_args that loaders pass themselves (see _drop_loader_args)

# ImageNet-1k val accuracy for the model cards: top-1 as reported in the official README, top-5 re-measured from the
# same weights by timm PR #2426 (crop 0.9, bicubic) and PaddleViT (384, crop 1.0); no third-party top-5 exists for the
# token-labeling weights.
RELEASE_ACCURACY: Dict[str, Tuple[float, Optional[float]]] = {
    't2t_vit_7.in1k': (71.7, 90.886),
    't2t_vit_10.in1k': (75.2, 92.806),
    't2t_vit_12.in1k': (76.5, 93.484),
    't2t_vit_14.in1k': (81.5, 95.666),
    't2t_vit_14.in1k_384': (83.3, 96.50),
    't2t_vit_19.in1k': (81.9, 95.744),
    't2t_vit_24.in1k': (82.3, 95.886),
    't2t_vit_24.tl_in1k': (84.2, None),
    't2t_vit_t_14.in1k': (81.7, 95.852),
    't2t_vit_t_19.in1k': (82.4, 96.082),
    't2t_vit_t_24.in1k': (82.6, 96.064),
}


def release_urls() -> Dict[str, str]:
    """`arch.tag` -> official release URL, for every pretrained cfg that has one (the 11 released checkpoints)."""
    return {
        f'{arch}.{tag}': cfg.url
        for arch, default_cfg in default_cfgs.items()
        for tag, cfg in default_cfg.cfgs.items()
        if cfg.url
    }


# --------------------------------------------------------------------------------------------------------------------
# Conversion


@dataclass
class ConversionResult:
    """What `convert_checkpoint` wrote and measured."""
    out_dir: Path
    model_name: str
    max_abs_diff: float
    source_sha256: str
    params: int
    gmacs: float


def _resolve_name(model_name: str) -> Tuple[str, str]:
    arch, tag = split_model_name_tag(model_name)
    if arch not in default_cfgs:
        names = ', '.join(sorted(default_cfgs))
        raise ValueError(f'{model_name!r} is not a T2T-ViT model; choose one of {names} (optionally with .TAG).')
    tags = [t for t in default_cfgs[arch].tags if t]
    if not tag:
        if not tags:
            raise ValueError(f'{arch} has no released weights, so there is no model card to write for it.')
        tag = tags[0]
    if tag not in default_cfgs[arch].cfgs:
        raise ValueError(f'{arch} has no pretrained tag {tag!r}; known tags: {", ".join(tags) or "none"}.')
    return arch, tag


def count_gmacs(model: nn.Module, input_size: Tuple[int, int, int]) -> float:
    """Multiply-accumulates (G) of one forward of one image: FLOPs / 2 of every matmul, attention included.

    Args:
        model: A model on the `meta` device (build it under `torch.device('meta')`): shapes only, no compute. There
            fused attention decomposes into its matmuls, so the counter sees them.
        input_size: (C, H, W).
    """
    from torch.utils.flop_counter import FlopCounterMode
    if not all(p.is_meta for p in model.parameters()):
        raise ValueError('count_gmacs needs a model on the meta device, e.g. timm.create_model(name, device="meta").')
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.empty(1, *input_size, device='meta'))
    return counter.get_total_flops() / 2e9


def convert_checkpoint(
        checkpoint: PathLike,
        model_name: str,
        out_dir: PathLike,
        model_kwargs: Optional[Dict[str, Any]] = None,
        source_url: Optional[str] = None,
        overwrite: bool = False,
        progress: Optional[bool] = None,
) -> ConversionResult:
    """Convert an official T2T-ViT checkpoint into a Hub-ready folder, after proving the conversion.

    The checkpoint is read safely and loaded through `checkpoint_filter_fn` into the model (the original); timm's
    `save_for_hf` writes `model.safetensors` and `config.json` to a temporary folder beside `out_dir`; the folder is
    loaded back with `timm.create_model('local-dir:...', pretrained=True)`, and both models run on the same random
    inputs. Only when their logits agree within 1e-4 is the model card added and the folder renamed to `out_dir`;
    on any failure nothing is left behind.

    Args:
        checkpoint: Official `.pth.tar` (or a state dict / safetensors file), or an http(s) URL to download.
        model_name: `arch.tag`, e.g. 't2t_vit_14.in1k_384'; the tag selects the pretrained cfg and card details.
        out_dir: Folder to create.
        model_kwargs: Architecture overrides (e.g. dict(depth=1) for reduced test checkpoints). The card then claims
            no accuracy.
        source_url: Where the checkpoint came from, for the card; default the URL given or the tag's release URL.
        overwrite: Replace an existing `out_dir`.
        progress: Show progress bars (None: only on a terminal).

    Returns:
        The folder and the measured values.
    """
    arch, tag = _resolve_name(model_name)
    name = f'{arch}.{tag}'
    model_kwargs = dict(model_kwargs or {})
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f'{out_dir} exists and is not empty: choose another --out or pass --overwrite.')
    if str(checkpoint).startswith(('http://', 'https://')):
        source_url = source_url or str(checkpoint)
        checkpoint = download_release(str(checkpoint), progress=progress)
    checkpoint = Path(checkpoint)
    cfg = default_cfgs[arch].cfgs[tag]
    if source_url is None and cfg.url and os.path.basename(urlparse(cfg.url).path) == checkpoint.name:
        source_url = cfg.url

    steps = hf_tqdm(total=5, desc=f'convert {name}', disable=_tqdm_disable(progress))
    with steps:
        steps.set_postfix_str('read')
        sha256 = file_digest(checkpoint)
        raw = read_checkpoint(checkpoint)
        # the entry checkpoint_filter_fn takes, for the card
        entries = ('state_dict_ema', 'model_ema', 'state_dict', 'model')
        entry = next((k for k in entries if isinstance(raw.get(k), dict)), None)
        original = timm.create_model(name, **model_kwargs).eval()
        # An img_size override (a fixed position table) must reach config.json, or the folder's data config would feed
        # the tag's resolution to a model built for another: timm keeps the tag's input_size in pretrained_cfg.
        input_size = (original.pretrained_cfg['input_size'][0], *original.patch_embed.img_size)
        original.pretrained_cfg = {**original.pretrained_cfg, 'input_size': input_size}
        state_dict = checkpoint_filter_fn(raw, original)
        check_state_dict(state_dict, original, str(checkpoint))
        original.load_state_dict(state_dict)
        del raw, state_dict
        steps.update()

        steps.set_postfix_str('write')
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.', suffix='.partial', dir=out_dir.parent))
        try:
            extra_args = {'use_aux_head': True} if getattr(original, 'aux_head', None) is not None else None
            save_for_hf(original, tmp, model_args=extra_args, safe_serialization=True)
            _drop_loader_args(tmp / 'config.json')
            steps.update()

            steps.set_postfix_str('prove')
            converted = timm.create_model(f'local-dir:{tmp}', pretrained=True).eval()
            x = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                diff = (original(x) - converted(x)).abs().max().item()
            if not diff <= TOLERANCE:  # also catches NaN
                raise PretrainedWeightsError(
                    f'Refusing to write {out_dir}: the converted weights give logits up to {diff:.3g} away from '
                    f'{checkpoint} loaded directly (limit {TOLERANCE}). Nothing was written; report this with the '
                    f'file and its sha256 {sha256}.')
            steps.update()

            steps.set_postfix_str('card')
            params = sum(t.numel() for t in original.state_dict().values())
            gmacs = count_gmacs(timm.create_model(name, device='meta', **model_kwargs), input_size)
            card = model_card(
                name, original, params=params, gmacs=gmacs, max_abs_diff=diff, num_inputs=x.shape[0],
                source_url=source_url or checkpoint.name, source_sha256=sha256, source_entry=entry,
                model_kwargs=model_kwargs)
            (tmp / 'README.md').write_text(card, encoding='utf-8')
            steps.update()

            steps.set_postfix_str('move')
            _move_into_place(tmp, out_dir)
            steps.update()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return ConversionResult(out_dir, name, diff, sha256, params, gmacs)


def _drop_loader_args(config_path: Path) -> None:
    """Remove from `model_args` what every loader passes itself, so that transformers can load the folder too.

    timm's `save_for_hf` records `num_classes` in `model_args`; transformers' `TimmWrapper` passes `num_classes` on its
    own and fails with "got multiple values for keyword argument 'num_classes'". The root `num_classes` stays: timm
    reads it from there (and `save_for_hf` has no option to leave the key out, hence the rewrite).
    """
    config = json.loads(config_path.read_text(encoding='utf-8'))
    model_args = config.get('model_args') or {}
    for key in LOADER_ARGS:
        model_args.pop(key, None)
    if model_args:
        config['model_args'] = model_args
    else:
        config.pop('model_args', None)
    config_path.write_text(json.dumps(config, indent=2), encoding='utf-8')


def _tqdm_disable(progress: Optional[bool]) -> Optional[bool]:
    # tqdm: disable=None hides the bar when not writing to a terminal
    return None if progress is None else not progress


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename a finished folder to `out_dir`; an existing `out_dir` is swapped out first and removed after."""
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    old = out_dir.with_name(f'.{out_dir.name}.{uuid.uuid4().hex[:8]}.old')
    os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except OSError:
        os.rename(old, out_dir)
        raise
    shutil.rmtree(old, ignore_errors=True)


_CITATION = """@InProceedings{Yuan_2021_ICCV,
    author    = {Yuan, Li and Chen, Yunpeng and Wang, Tao and Yu, Weihao and Shi, Yujun and Jiang, Zi-Hang and Tay, Francis E.H. and Feng, Jiashi and Yan, Shuicheng},
    title     = {Tokens-to-Token ViT: Training Vision Transformers From Scratch on ImageNet},
    booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
    year      = {2021},
    pages     = {558-567}
}"""


def model_card(
        name: str,
        model: nn.Module,
        params: int,
        gmacs: float,
        max_abs_diff: float,
        num_inputs: int,
        source_url: str,
        source_sha256: str,
        source_entry: Optional[str] = None,
        model_kwargs: Optional[Dict[str, Any]] = None,
) -> str:
    """The README.md of a converted folder: Hub metadata (YAML) and a short card."""
    from .. import __version__
    arch, tag = split_model_name_tag(name)
    res = tuple(model.pretrained_cfg['input_size'][1:])
    aux = getattr(model, 'aux_head', None) is not None
    top1, top5 = RELEASE_ACCURACY.get(name, (None, None)) if not model_kwargs else (None, None)
    eval_results = [
        EvalResult(
            task_type='image-classification', dataset_type='imagenet-1k', dataset_name='ImageNet-1k (val)',
            metric_type='accuracy', metric_name=metric, metric_value=value)
        for metric, value in (('top-1 accuracy', top1), ('top-5 accuracy', top5)) if value is not None
    ]
    data = ModelCardData(
        license='bsd-3-clause-clear',
        library_name='timm',
        pipeline_tag='image-classification',
        tags=['image-classification', 'timm', 'timm-t2t', 't2t-vit'] + (['token-labeling'] if aux else []),
        datasets=['imagenet-1k'],
        model_name=name,
        eval_results=eval_results or None,
    )
    if model_kwargs:
        results = (f'Not applicable: this folder holds a modified architecture ({_kwargs_str(model_kwargs)}), not '
                   f'the released one.')
    else:
        results = (f'| top-1 | top-5 |\n|---|---|\n| {top1} | {top5 if top5 is not None else "-"} |\n\n'
                   f'Top-1 as reported by the official README; top-5 re-measured from the same weights by timm PR '
                   f'#2426 (224, crop 0.9) or PaddleViT (384, crop 1.0).')
    training = ('trained on ImageNet-1k with token labeling (https://github.com/zihangJiang/TokenLabeling)' if aux
                else f'trained from scratch on ImageNet-1k at {res[0]} x {res[1]}')
    aux_note = ('\n\nThe checkpoint keeps its token-labeling auxiliary head (`aux_head`, applied to every patch '
                'token): logits = head(class token) + 0.5 * max over patch tokens of aux_head(patch token), as in the '
                'token-labeling evaluation.' if aux else '')
    body = f"""
# Model card for {name}

A Tokens-to-Token ViT (T2T-ViT) image classifier, {training}. The official weights
([yitu-opensource/T2T-ViT](https://github.com/yitu-opensource/T2T-ViT)) converted to safetensors in the layout of
[timm-t2t](https://pypi.org/project/timm-t2t/), a timm plugin.{aux_note}

## Model details
- **Model type:** image classification / feature backbone
- **Architecture:** `{arch}` ({describe_layout({k: tuple(v.shape) for k, v in model.state_dict().items()})})
- **Params (M):** {params / 1e6:.2f} (all tensors, incl. the fixed position table)
- **GMACs:** {gmacs:.2f} (one image, every matmul incl. attention)
- **Image size:** {res[0]} x {res[1]}
- **Dataset:** ImageNet-1k
- **Paper:** [Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet](https://arxiv.org/abs/2101.11986)
- **Original:** https://github.com/yitu-opensource/T2T-ViT
- **License:** bsd-3-clause-clear (The Clear BSD License, as the original code and weights)

## Results (ImageNet-1k val)
{results}

## Provenance and check
- **Source:** {source_url}
- **Source sha256:** `{source_sha256}`
- **Converted by:** timm-t2t {__version__} (torch {torch.__version__}, timm {timm.__version__}): the
  {f'`{source_entry}` entry' if source_entry else 'state dict'}, keys renamed by `checkpoint_filter_fn`, saved by
  timm's `save_for_hf` (nothing pickled).
- **Check:** this folder, loaded by `timm.create_model('local-dir:...', pretrained=True)`, against the source checkpoint
  loaded through `checkpoint_filter_fn`, on {num_inputs} random inputs of {res[0]} x {res[1]}:
  max |logit difference| = {max_abs_diff:.3g} (limit {TOLERANCE:g}).

## Usage
```python
import timm
import timm_t2t  # pip install timm-t2t; registers the T2T-ViT models with timm

model = timm.create_model('{name}', pretrained=True).eval()
data_cfg = timm.data.resolve_data_config({{}}, model=model)
transform = timm.data.create_transform(**data_cfg)
```

## Citation
```bibtex
{_CITATION}
```
"""
    return ModelCard(f'---\n{data.to_yaml()}\n---\n{body}').content


def _kwargs_str(kwargs: Dict[str, Any]) -> str:
    return ', '.join(f'{k}={v!r}' for k, v in kwargs.items())
