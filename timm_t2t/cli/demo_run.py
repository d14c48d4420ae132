"""`timm-t2t demo`: the main job end to end, offline, in about two minutes on 2 CPU cores.

1. Draw a labelled texture data set with Pillow (stripes in three orientations, checkerboards, dots; random colours,
   periods and phases) into `train/` and `val/` class folders.
2. Fine-tune `t2t_vit_7` (random init, 64 x 64 input) on it with timm's own training pieces: `create_dataset`,
   `create_loader` with the transforms of the model's data config, `create_optimizer_v2`, `create_scheduler_v2`,
   `LabelSmoothingCrossEntropy`; a progress bar and the validation accuracy of every epoch.
3. Save the checkpoint with timm's `save_for_hf` (`model.safetensors` + `config.json`), load it back through
   `timm.create_model(..., pretrained=True, pretrained_cfg_overlay=dict(file=...))`, check that the reloaded model
   scores the same, and predict a few validation images with the code of `timm-t2t predict`.
4. When the Hugging Face Hub is reachable, also load `t2t_vit_7` with `pretrained=True`; otherwise say so and go on.
"""
import argparse
import dataclasses
import math
import random
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from urllib.parse import urlparse

import torch
import torch.nn as nn
from PIL import Image, ImageDraw
from tqdm import tqdm

import timm
from timm.data import create_dataset, create_loader, resolve_model_data_config
from timm.loss import LabelSmoothingCrossEntropy
from timm.models import save_for_hf
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import random_seed

from .demo import QUICK, DemoSettings, check_demo_input
from .outputs import staged_output_dir
from .predict import predict_images

__all__ = ['run', 'draw_texture', 'build_dataset', 'CLASSES']

MODEL = 't2t_vit_7'
# Folder names, which are also the label names; create_dataset indexes classes in sorted folder order.
CLASSES = ('checker', 'diagonal', 'dots', 'horizontal', 'vertical')


# --------------------------------------------------------------------------------------------------------------------
# Data


def _colours(rng: random.Random) -> Tuple[Tuple[int, int, int], Tuple[int, int, int]]:
    """A random background and a foreground that differs from it clearly."""
    bg = tuple(rng.randint(0, 255) for _ in range(3))
    while True:
        fg = tuple(rng.randint(0, 255) for _ in range(3))
        if sum(abs(a - b) for a, b in zip(fg, bg)) > 200:
            return bg, fg


def draw_texture(label: str, size: int, rng: random.Random) -> Image.Image:
    """One image of a texture class: random colours, period (6-12 px), stroke width and phase.

    Args:
        label: One of `CLASSES`.
        size: Image side in pixels.
        rng: Random source.

    Returns:
        An RGB image.
    """
    bg, fg = _colours(rng)
    img = Image.new('RGB', (size, size), bg)
    draw = ImageDraw.Draw(img)
    period = rng.randint(6, 12)
    width = max(2, period // 2)
    phase = rng.randint(0, period)
    starts = range(phase - period, size, period)
    if label == 'horizontal':
        for y in starts:
            draw.rectangle([0, y, size, y + width - 1], fill=fg)
    elif label == 'vertical':
        for x in starts:
            draw.rectangle([x, 0, x + width - 1, size], fill=fg)
    elif label == 'diagonal':
        flip = rng.random() < 0.5  # either diagonal direction
        for x in range(phase - size - period, size + period, period):
            line = [(x, 0), (x + size, size)] if flip else [(x + size, 0), (x, size)]
            draw.line(line, fill=fg, width=width)
    elif label == 'checker':
        for y in starts:
            for x in starts:
                if ((x - phase) // period + (y - phase) // period) % 2 == 0:
                    draw.rectangle([x, y, x + period - 1, y + period - 1], fill=fg)
    elif label == 'dots':
        for y in starts:
            for x in starts:
                draw.ellipse([x, y, x + width, y + width], fill=fg)
    else:
        raise ValueError(f'unknown texture class {label!r}; one of {", ".join(CLASSES)}')
    return img


def build_dataset(root: Path, settings: DemoSettings, seed: int = 0) -> Dict[str, Path]:
    """Write `root/train/<class>/*.png` and `root/val/<class>/*.png`.

    Returns:
        The split folders, {'train': ..., 'val': ...}.
    """
    rng = random.Random(seed)
    splits = {'train': settings.train_per_class, 'val': settings.val_per_class}
    for split, count in splits.items():
        for label in CLASSES:
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw_texture(label, settings.img_size, rng).save(folder / f'{i:04d}.png')
    return {split: root / split for split in splits}


# --------------------------------------------------------------------------------------------------------------------
# Training


def _evaluate(model: nn.Module, loader: Any) -> float:
    """Top-1 accuracy in percent."""
    model.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in loader:
            correct += (model(x).argmax(dim=-1) == y).sum().item()
            total += y.numel()
    return 100.0 * correct / max(total, 1)


def _loaders(model: nn.Module, folders: Dict[str, Path], settings: DemoSettings) -> Tuple[Any, Any]:
    """timm's dataset and loader, with the transforms of the model's data config (size, interpolation, mean/std)."""
    data_cfg = resolve_model_data_config(model)
    train_set = create_dataset('', root=str(folders['train']), is_training=True)
    val_set = create_dataset('', root=str(folders['val']))
    assert tuple(train_set.reader.class_to_idx) == CLASSES, 'class folders must index in CLASSES order'
    common = dict(
        input_size=data_cfg['input_size'],
        interpolation=data_cfg['interpolation'],
        mean=data_cfg['mean'],
        std=data_cfg['std'],
        crop_pct=data_cfg['crop_pct'],
        num_workers=0,  # decoding 64 px PNGs is cheap; worker processes would compete for the 2 cores
        persistent_workers=False,
        use_prefetcher=False,  # the prefetcher is a CUDA stream helper
        device=torch.device('cpu'),
    )
    train_loader = create_loader(
        train_set, batch_size=settings.batch_size, is_training=True,
        scale=(0.5, 1.0),  # timm's default (0.08, 1) crops would blow a few stripes up to the whole image
        color_jitter=0.,  # colours are random already
        **common)
    val_loader = create_loader(val_set, batch_size=64, is_training=False, **common)
    return train_loader, val_loader


def train(
        model: nn.Module,
        train_loader: Any,
        val_loader: Any,
        settings: DemoSettings,
        log: Any = print,
) -> List[float]:
    """Fine-tune with AdamW, warmup + cosine per step, label smoothing; returns the val accuracy of every epoch."""
    optimizer = create_optimizer_v2(model, 'adamw', lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler, _ = create_scheduler_v2(
        optimizer, 'cosine', num_epochs=settings.epochs, warmup_epochs=settings.warmup_epochs, warmup_lr=1e-5,
        min_lr=1e-5, step_on_epochs=False, updates_per_epoch=len(train_loader))
    loss_fn = LabelSmoothingCrossEntropy(smoothing=0.1)
    accuracies = []
    updates = 0
    for epoch in range(settings.epochs):
        start = time.perf_counter()
        model.train()
        total_loss = 0.
        # disable=None: no bar when stderr is not a terminal (CI logs stay clean)
        bar = tqdm(train_loader, desc=f'epoch {epoch + 1}/{settings.epochs}', unit='batch', leave=False,
                   disable=None, file=sys.stderr)
        for x, y in bar:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            updates += 1
            scheduler.step_update(num_updates=updates)
            total_loss += loss.item()
            bar.set_postfix(loss=f'{loss.item():.3f}')
        scheduler.step(epoch + 1)
        accuracies.append(_evaluate(model, val_loader))
        log(f'  epoch {epoch + 1}/{settings.epochs}  train loss {total_loss / len(train_loader):.3f}  '
            f'val acc {accuracies[-1]:5.1f}%  ({time.perf_counter() - start:.1f} s)')
    return accuracies


# --------------------------------------------------------------------------------------------------------------------
# Hub


def hub_unreachable_reason(timeout: float = 3.0) -> Optional[str]:
    """Why the Hugging Face Hub cannot be used right now, or None when it answers within `timeout` seconds.

    Honours HF_HUB_OFFLINE; the probe is the one `pretrained=True` runs
    (`timm_t2t.weights.download.unreachable_reason`).
    """
    from huggingface_hub import constants

    from ..weights.download import unreachable_reason

    if constants.HF_HUB_OFFLINE:
        return 'HF_HUB_OFFLINE is set'
    reason = unreachable_reason(constants.ENDPOINT, timeout)
    return f'{urlparse(constants.ENDPOINT).netloc} unreachable ({reason})' if reason else None


def _show_pretrained(image: Path, log: Any) -> None:
    from ..weights.download import cached_hub_weights

    reason = hub_unreachable_reason()
    cached = cached_hub_weights(timm.models.get_pretrained_cfg(MODEL).hf_hub_id)
    if reason and not cached:  # with a cached copy, create_model loads it at once (and says so)
        log(f'Hub: offline ({reason}); skipped timm.create_model({MODEL!r}, pretrained=True). Everything above ran '
            f'without network.')
        return
    try:
        model = timm.create_model(MODEL, pretrained=True).eval()
    except Exception as e:  # the demo's main job is done; report the Hub problem in one line and finish
        log(f'Hub: reachable, but timm.create_model({MODEL!r}, pretrained=True) failed: '
            f'{" ".join(str(e).split())[:300]}')
        return
    top = predict_images(model, [image], top_k=1)[0]['top_k'][0]
    log(f'Hub: timm.create_model({MODEL!r}, pretrained=True) loaded {model.pretrained_cfg.get("hf_hub_id")}; its '
        f'ImageNet top-1 for {image.name}: {top["label"]} ({100 * top["probability"]:.1f}%).')


# --------------------------------------------------------------------------------------------------------------------
# Command


@contextmanager
def _workdir(out: Optional[str]) -> Iterator[Path]:
    """The folder to work in: with `out`, a staged folder renamed to `out` at the end (removed if the demo fails)."""
    if out:
        with staged_output_dir(Path(out)) as path:
            yield path
    else:
        path = Path(tempfile.mkdtemp(prefix='timm-t2t-demo-'))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    """Run the demo; returns 0, or 1 if the reloaded checkpoint does not reproduce the trained model."""
    start = time.perf_counter()
    check_demo_input(args)  # again for direct calls; the command line ran it before importing torch
    settings = QUICK if args.quick else DemoSettings()
    if args.epochs is not None:
        settings = dataclasses.replace(settings, epochs=args.epochs)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    size = settings.img_size
    classes = len(CLASSES)

    with _workdir(args.out) as root:
        final = Path(args.out) if args.out else root

        def shown(path: Path) -> Path:  # where a file will be once the staged folder is renamed to --out
            return final / path.relative_to(root)

        log(f'timm-t2t demo: fine-tune {MODEL} on generated textures, save, reload, predict (offline, CPU, '
            f'{torch.get_num_threads()} threads)')
        folders = build_dataset(root / 'data', settings, seed=args.seed)
        log(f'[1/4] data: {classes} classes ({", ".join(CLASSES)}), {settings.train_per_class * classes} train / '
            f'{settings.val_per_class * classes} val images of {size}x{size} in {shown(root / "data")}')

        random_seed(args.seed)
        # The input size and labels go into the pretrained cfg: timm derives img_size from it (fixed_input_size),
        # the data config and transforms follow it, and save_for_hf writes it to config.json.
        overlay = dict(input_size=(3, size, size), crop_pct=1.0, num_classes=classes, label_names=CLASSES)
        model_kwargs = dict(depth=settings.depth) if settings.depth else {}
        model = timm.create_model(MODEL, pretrained=False, pretrained_cfg_overlay=overlay, **model_kwargs)
        train_loader, val_loader = _loaders(model, folders, settings)
        params = sum(p.numel() for p in model.parameters())
        log(f'[2/4] train: {MODEL} (random init, {len(model.blocks)} blocks, {params / 1e6:.2f}M params, img_size '
            f'{size}), {settings.epochs} epochs of {len(train_loader)} batches of {settings.batch_size}, AdamW lr '
            f'{settings.lr:g}, warmup + cosine, label smoothing 0.1')
        accuracies = train(model, train_loader, val_loader, settings, log=log)

        ckpt_dir = root / 'checkpoint'
        # model_args: older timm (< 1.0.30) records no constructor arguments by itself
        save_for_hf(model, ckpt_dir, safe_serialization=True, model_config=dict(label_names=list(CLASSES)),
                    model_args=model_kwargs)
        weights = ckpt_dir / 'model.safetensors'
        reloaded = timm.create_model(
            MODEL, pretrained=True, pretrained_cfg_overlay=dict(file=str(weights), **overlay), **model_kwargs).eval()
        reloaded_acc = _evaluate(reloaded, val_loader)
        extra = ''.join(f', {k}={v!r}' for k, v in model_kwargs.items())
        log(f'[3/4] checkpoint: {shown(weights)} ({weights.stat().st_size / 1e6:.1f} MB) + config.json; reloaded with\n'
            f'      timm.create_model({MODEL!r}, pretrained=True, pretrained_cfg_overlay=dict(file=..., '
            f'input_size=(3, {size}, {size}), crop_pct=1.0, num_classes={classes}, label_names=...){extra})\n'
            f'      val acc of the reloaded model: {reloaded_acc:.1f}% (trained: {accuracies[-1]:.1f}%)')

        samples = [sorted((folders['val'] / label).glob('*.png'))[0] for label in CLASSES]
        predictions = predict_images(reloaded, samples, top_k=1)
        log('[4/4] predict (the code of `timm-t2t predict`) with the reloaded model:')
        correct = 0
        for path, result in zip(samples, predictions):
            top = result['top_k'][0]
            truth = path.parent.name
            correct += top['label'] == truth
            log(f'      {truth + "/" + path.name:<20} truth {truth:<10} predicted {top["label"]:<10} '
                f'{100 * top["probability"]:5.1f}%  {"ok" if top["label"] == truth else "WRONG"}')
        if args.out:
            log(f'      again from the shell: timm-t2t predict {shown(samples[0])} --weights {shown(ckpt_dir)}')
        _show_pretrained(samples[0], log)

        chance = 100.0 / classes
        log(f'Summary: validation accuracy {accuracies[-1]:.1f}% after {settings.epochs} epochs '
            f'(chance {chance:.0f}%); reloaded checkpoint {reloaded_acc:.1f}%; predictions {correct}/{len(samples)} '
            f'correct; {time.perf_counter() - start:.0f} s.'
            + ('' if args.out else ' (--out DIR keeps the data and checkpoint)'))
        if not math.isclose(reloaded_acc, accuracies[-1], abs_tol=1e-9):
            print('timm-t2t demo: error: the reloaded checkpoint does not reproduce the trained model\'s accuracy; '
                  'please report it.', file=sys.stderr)
            return 1
    return 0
