"""The `timm-t2t convert` and `timm-t2t push` commands: their arguments here, the work in `timm_t2t.weights`
(`convert`, `publish`).

Deliberately free of torch and timm at module level: building the parser (and `--help`) stays fast; the weights
modules are imported only when a command runs.
"""
import argparse
from pathlib import Path

from .args import add_model_kwargs_argument

__all__ = ['configure_convert_parser', 'run_convert', 'configure_push_parser', 'run_push']

# The Hub namespace of the released weights; equal to `timm_t2t.models.t2t_vit.HF_HUB_NAMESPACE` (a test checks),
# repeated here so that the parser needs no torch import.
HF_HUB_NAMESPACE = 'timm-t2t'


def configure_convert_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t convert`."""
    p.description = (
        'Convert an official T2T-ViT checkpoint into a Hub-ready folder (model.safetensors, config.json, README.md), '
        'after checking that the converted model reproduces the original logits within 1e-4.')
    p.add_argument('checkpoint', nargs='?', help='official .pth.tar file, or its URL')
    p.add_argument('--model', help='NAME[.TAG], e.g. t2t_vit_14.in1k_384 (default tag: the first one)')
    p.add_argument('--out', required=True, help='folder to write (with --all: parent of one folder per model)')
    p.add_argument('--all', action='store_true', help='download and convert all 11 released checkpoints')
    add_model_kwargs_argument(p, 'architecture overrides, e.g. depth=1 (the card then claims no accuracy)',
                              positional='CHECKPOINT')
    p.add_argument('--source-url', help='where the checkpoint came from, for the card')
    p.add_argument('--overwrite', action='store_true', help='replace existing output folders')
    p.add_argument('--quiet', action='store_true', help='no progress bars')


def run_convert(args: argparse.Namespace) -> int:
    """Run `timm-t2t convert`; errors are raised with one clear message."""
    from ..weights.convert import convert_checkpoint, release_urls
    progress = False if args.quiet else None
    if args.all:
        if args.checkpoint or args.model:
            raise ValueError('--all converts every released checkpoint: give no CHECKPOINT or --model with it.')
        jobs = [(url, name, Path(args.out) / name, None) for name, url in release_urls().items()]
    else:
        if not args.checkpoint or not args.model:
            raise ValueError('convert needs CHECKPOINT and --model NAME[.TAG] (or --all).')
        jobs = [(args.checkpoint, args.model, Path(args.out), args.source_url)]
    for checkpoint, name, out, source_url in jobs:
        result = convert_checkpoint(
            checkpoint, name, out, model_kwargs=dict(args.model_kwargs), source_url=source_url,
            overwrite=args.overwrite, progress=progress)
        print(f'{result.out_dir}: {result.model_name}, max |logit difference| {result.max_abs_diff:.3g}, '
              f'source sha256 {result.source_sha256}')
    return 0


def configure_push_parser(p: argparse.ArgumentParser) -> None:
    """Arguments of `timm-t2t push`."""
    p.description = (
        'Upload a converted folder to the Hugging Face Hub, or (--all) download, convert and upload all 11 released '
        'checkpoints, one repo ORG/ARCH.TAG each. Log in first (`hf auth login` or HF_TOKEN).')
    p.add_argument('folder', nargs='?', help='folder written by `timm-t2t convert`')
    p.add_argument('--repo', help='ORG/NAME to upload the folder to')
    p.add_argument('--all', action='store_true', help='convert and upload every released checkpoint')
    p.add_argument('--org', default=HF_HUB_NAMESPACE, help=f'namespace for --all (default {HF_HUB_NAMESPACE})')
    p.add_argument('--work-dir', default='t2t-vit-weights', help='where --all keeps converted folders')
    p.add_argument('--dry-run', action='store_true', help='print what would be uploaded, upload nothing')
    p.add_argument('--quiet', action='store_true', help='no progress bars')


def run_push(args: argparse.Namespace) -> int:
    """Run `timm-t2t push`; errors are raised with one clear message."""
    from huggingface_hub import constants

    from ..weights.publish import publish_all, push_folder
    if args.all:
        if args.folder or args.repo:
            raise ValueError('--all publishes every released checkpoint: give no FOLDER or --repo with it.')
        plan = publish_all(args.org, args.work_dir, dry_run=args.dry_run, progress=False if args.quiet else None)
    else:
        if not args.folder or not args.repo:
            raise ValueError('push needs FOLDER and --repo ORG/NAME (or --all).')
        plan = {args.repo: push_folder(args.folder, args.repo, dry_run=args.dry_run)}
    verb = 'would upload' if args.dry_run else 'uploaded'
    for repo_id, files in plan.items():
        print(f'{verb} to {constants.ENDPOINT}/{repo_id}:')
        for path, size, sha in files:
            print(f'  {path}  {size:,} bytes  sha256 {sha}')
    return 0
