"""Where `timm-t2t` commands write: checked before any work, and written so that nothing half-written is left.

* `check_output_file` / `check_output_dir`: the wrong kind of path (a folder where a file is written, a file where a
  folder is written, a missing parent, a location that cannot be written) is a `CliError`, raised before the model is
  even imported;
* `write_file_atomically` / `staged_output_dir`: write under a temporary name in the destination folder and rename
  into place at the end; on failure the temporary file or folder is removed.

Free of torch and timm.
"""
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import CliError

__all__ = ['check_output_file', 'check_output_dir', 'write_file_atomically', 'staged_output_dir']


def _check_writable_folder(folder: Path, option: str, target: str) -> None:
    """`folder` exists, is a folder, and a file can be created in it (probed with a temporary file)."""
    if not folder.exists():
        raise CliError(f'{option} {target}: folder {folder} does not exist; create it first.')
    if not folder.is_dir():
        raise CliError(f'{option} {target}: {folder} is a file, not a folder; pass a path inside a folder.')
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CliError(f'{option} {target}: folder {folder} is not writable; pass a path in a folder you can write.')
    try:  # permissions are not the whole story (read-only mounts, quotas): try it
        fd, probe = tempfile.mkstemp(dir=folder, prefix='.timm-t2t-probe-')
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise CliError(f'{option} {target}: cannot write in folder {folder} ({e.strerror or e}); pass a path in a '
                       f'folder you can write.') from e


def check_output_file(path: str, option: str = '--out') -> Path:
    """Check a path a command writes one file to, before any work.

    Args:
        path: The argument.
        option: The option's name, for the message.

    Returns:
        The path. An existing file is replaced when the command finishes.

    Raises:
        CliError: `path` is a folder, its folder is missing or a file, or it cannot be written.
    """
    out = Path(path)
    if out.is_dir():
        raise CliError(f'{option} {path} is a folder: pass a file path, e.g. {out / "features.safetensors"}.')
    _check_writable_folder(out.parent, option, path)
    return out


def check_output_dir(path: str, option: str = '--out') -> Path:
    """Check a folder a command fills, before any work: new or empty, and creatable where it is.

    Raises:
        CliError: `path` is a file or a non-empty folder, a folder above it is a file, or it cannot be written.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CliError(f'{option} {path} is a file, not a folder: pass a new or empty folder.')
    if out.is_dir() and any(out.iterdir()):
        raise CliError(f'{option} {path} exists and is not empty: pass a new or empty folder.')
    parent = _existing_folder_above(out)  # missing folders between are created: the first existing one is written
    if not parent.is_dir():
        raise CliError(f'{option} {path}: {parent} is a file, not a folder; pass a path inside a folder.')
    _check_writable_folder(parent, option, path)
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _existing_folder_above(path: Path) -> Path:
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    return parent


@contextmanager
def write_file_atomically(out: Path) -> Iterator[Path]:
    """A temporary path beside `out` to write to; renamed to `out` when the block ends, removed if it fails."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f'.{out.name}.', suffix='.partial')
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it private; the result gets the usual permissions
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def staged_output_dir(out: Path) -> Iterator[Path]:
    """A temporary folder beside `out` to fill; renamed to `out` when the block ends, removed if it fails.

    `out` must be new or empty (`check_output_dir`); its missing parents are created.
    """
    stage = _existing_folder_above(out)  # missing parents are created only at the end: nothing is left on failure
    tmp = Path(tempfile.mkdtemp(dir=stage, prefix=f'.{out.name}.', suffix='.partial'))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result gets the usual permissions
        yield tmp
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_dir():
            out.rmdir()  # empty (checked): rename onto it
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
