"""Publishing converted folders to the Hugging Face Hub: one folder (`push_folder`) or all releases (`publish_all`)."""
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from huggingface_hub import HfApi
from huggingface_hub.utils import tqdm as hf_tqdm

import timm

from ..models.t2t_vit import HF_HUB_NAMESPACE
from .checkpoint_io import PathLike, file_digest
from .convert import HUB_FILES, convert_checkpoint, release_urls

__all__ = ['push_folder', 'publish_all']


def _folder_files(folder: Path) -> List[Tuple[str, int, str]]:
    return [
        (str(p.relative_to(folder)), p.stat().st_size, file_digest(p))
        for p in sorted(folder.rglob('*'))
        if p.is_file() and not any(part.startswith('.') for part in p.relative_to(folder).parts)
    ]


def push_folder(
        folder: PathLike,
        repo_id: str,
        dry_run: bool = False,
        verify: bool = True,
        commit_message: Optional[str] = None,
) -> List[Tuple[str, int, str]]:
    """Upload a converted folder to the Hugging Face Hub (creating the model repo if needed).

    Args:
        folder: Folder written by `convert_checkpoint`.
        repo_id: 'ORG/NAME'.
        dry_run: Only check the folder and return what would be uploaded.
        verify: Load the folder with timm first (`local-dir:`), so that nothing unloadable is published.
        commit_message: Commit message; default names the files' source.

    Returns:
        (relative path, size, sha256) of every file uploaded (or to upload).
    """
    folder = Path(folder)
    missing = [f for f in HUB_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f'{folder} lacks {", ".join(missing)}: create it with `timm-t2t convert CHECKPOINT --model NAME --out '
            f'{folder}`.')
    if repo_id.count('/') != 1 or not all(repo_id.split('/')):
        raise ValueError(f'--repo must be ORG/NAME, got {repo_id!r}.')
    if verify:
        timm.create_model(f'local-dir:{folder}', pretrained=True)
    files = _folder_files(folder)
    if dry_run:
        return files
    api = HfApi()
    api.create_repo(repo_id, repo_type='model', exist_ok=True)
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type='model',
        commit_message=commit_message or f'Upload {folder.name} (converted by timm-t2t)',
        ignore_patterns=['.*'],
    )
    return files


def publish_all(
        org: str = HF_HUB_NAMESPACE,
        work_dir: PathLike = 't2t-vit-weights',
        dry_run: bool = False,
        names: Optional[Sequence[str]] = None,
        progress: Optional[bool] = None,
) -> Dict[str, List[Tuple[str, int, str]]]:
    """Download, convert and upload every released checkpoint (`release_urls()`), one repo per `arch.tag`.

    Folders already converted in `work_dir` are reused, so an interrupted run resumes.

    Args:
        org: Hub namespace; the pretrained cfgs point at `timm-t2t`.
        work_dir: Where the converted folders go (`work_dir/arch.tag`).
        dry_run: Download and convert, but do not upload.
        names: Only these `arch.tag` names.
        progress: Show progress bars (None: only on a terminal).

    Returns:
        Repo id -> files uploaded (or to upload).
    """
    urls = release_urls()
    unknown = sorted(set(names or ()) - set(urls))
    if unknown:
        raise ValueError(f'No release for {", ".join(unknown)}; released: {", ".join(urls)}.')
    plan = {}
    for name in hf_tqdm(names or list(urls), desc='publish', disable=None if progress is None else not progress):
        out = Path(work_dir) / name
        if not all((out / f).is_file() for f in HUB_FILES):
            convert_checkpoint(urls[name], name, out, overwrite=True, progress=progress)
        plan[f'{org}/{name}'] = push_folder(out, f'{org}/{name}', dry_run=dry_run, verify=False)
    return plan
