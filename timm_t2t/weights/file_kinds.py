"""What a file given as weights is, when it is not a checkpoint; and what a checkpoint's keys look like.

Free of torch, timm and safetensors: the command line checks `--weights` with it before it imports torch, and
`checkpoint_io` words its errors with it. Only the first bytes of a file are read (a zip archive's listing too).

* `sniff_weights_file`: "a JSON file", "a PNG image", "a zip archive holding ...", ... with what to pass instead, or
  None when the bytes may be a checkpoint (safetensors, a torch zip or pickle, or anything unknown: the loader decides);
* `summarize_keys`: the key prefixes of a state dict (`conv1.*, layer1.*, ...`) and the model family they suggest;
* `is_t2t_state_dict`: whether a state dict has any T2T-ViT key at all;
* `checkpoint_shapes`: a checkpoint's tensor names and shapes without loading it (safetensors header, torch zip
  pickle read with recording stubs), None when that cannot tell (the loader then reads it with torch).
"""
import collections
import io
import json
import os
import pickle
import re
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Tuple, Union

__all__ = ['FileKind', 'sniff_weights_file', 'summarize_keys', 'is_t2t_state_dict', 'checkpoint_shapes',
           'CHECKPOINT_TIP']

PathLike = Union[str, os.PathLike]

CHECKPOINT_TIP = 'a checkpoint file (.safetensors, .pth, .pth.tar, .bin) or a folder written by save_for_hf'
_HEAD = 4096  # bytes read to recognise a file
_CHECKPOINT_SUFFIXES = ('.safetensors', '.pth', '.pt', '.bin', '.ckpt', '.tar')

# Magic numbers: (prefix, what it is)
_IMAGES = [
    (b'\x89PNG\r\n\x1a\n', 'a PNG image'),
    (b'\xff\xd8\xff', 'a JPEG image'),
    (b'GIF87a', 'a GIF image'),
    (b'GIF89a', 'a GIF image'),
    (b'II*\x00', 'a TIFF image'),
    (b'MM\x00*', 'a TIFF image'),
]
_COMPRESSED = [
    (b'\x1f\x8b', 'a gzip-compressed file'),
    (b'BZh', 'a bzip2-compressed file'),
    (b'\xfd7zXZ\x00', 'an xz-compressed file'),
    (b'7z\xbc\xaf\x27\x1c', 'a 7-Zip archive'),
    (b'Rar!\x1a\x07', 'a RAR archive'),
    (b'\x28\xb5\x2f\xfd', 'a zstd-compressed file'),
]
_OTHER_BINARY = [
    (b'\x89HDF\r\n\x1a\n', 'an HDF5 file (Keras / TensorFlow weights?)', 'convert it to a PyTorch state dict first'),
    (b'\x93NUMPY', 'a NumPy array file (.npy)', 'save the weights as a state dict of tensors instead'),
    (b'%PDF', 'a PDF document', None),
    (b'\x7fELF', 'an executable program', None),
]

# The T2T stem, in this package's key names or the official ones; a ViT also has cls_token, pos_embed, blocks.* and
# patch_embed.proj.*, so only the stem tells the two apart.
_T2T_STEM = ('patch_embed.attn1.', 'patch_embed.attn2.', 'tokens_to_token.')
_T2T_BACKBONE = ('cls_token', 'pos_embed', 'blocks.')

# Key patterns of other families, checked in order: (required key prefixes, family).
_FAMILIES = [
    (('conv1.', 'bn1.', 'layer1.'), 'a ResNet-style CNN (resnet*, resnext*, ...)'),
    (('conv_stem.', 'blocks.'), 'an EfficientNet / MobileNet-style CNN'),
    (('stem.', 'stages.'), 'a ConvNeXt / RegNet-style model with stages'),
    (('patch_embed.proj.', 'blocks.'), 'a ViT-style transformer (vit_*, deit_*, ...)'),
    (('features.',), 'a torchvision-style CNN (VGG, DenseNet, AlexNet, ...)'),
    (('encoder.', 'decoder.'), 'an encoder-decoder model'),
    (('transformer.',), 'a transformer of another codebase'),
    (('vision_model.',), 'a CLIP-style vision tower'),
]


class FileKind(NamedTuple):
    """What a file is and what to pass instead."""
    what: str  # e.g. "a JSON file (a model config of t2t_vit_7)"
    instead: str  # e.g. "pass the folder that holds it"

    def message(self, path: PathLike) -> str:
        """One line: the file, its size, what it is, what to do."""
        size = os.path.getsize(path) if os.path.isfile(path) else 0
        return f'{path} ({size:,} bytes) is not a readable checkpoint: it is {self.what}. {self.instead}.'


def sniff_weights_file(path: PathLike) -> Optional[FileKind]:
    """What `path` is when its bytes are clearly not a checkpoint; None when they may be one (the loader decides).

    Args:
        path: An existing file.

    Returns:
        The kind of file with what to pass instead, or None for safetensors, torch zip and pickle files, and anything
        not recognised.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, 'rb') as f:
            head = f.read(_HEAD)
    except OSError:  # unreadable: the loader's own error says why
        return None
    if size == 0:
        return FileKind('empty (0 bytes): a download or save that was cut short',
                        f'Download or save it again; pass {CHECKPOINT_TIP}')
    if _is_safetensors(head, size) or _is_pickle(head):
        return None
    if head.startswith(b'PK\x03\x04') or head.startswith(b'PK\x05\x06'):
        return _sniff_zip(path)
    for magic, what in _IMAGES:
        if head.startswith(magic):
            return _image(what)
    if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
        return _image('a WebP image')
    if head[:2] == b'BM' and len(head) >= 6 and struct.unpack('<I', head[2:6])[0] == size:
        return _image('a BMP image')
    if len(head) > 262 and head[257:262] == b'ustar':
        return _archive('a tar archive', _tar_members(path))
    for magic, what in _COMPRESSED:
        if head.startswith(magic):
            members = _tar_members(path) if magic in (b'\x1f\x8b', b'BZh', b'\xfd7zXZ\x00') else []
            return _archive(what + (' (a tar archive)' if members else ''), members)
    for magic, what, instead in _OTHER_BINARY:
        if head.startswith(magic):
            return FileKind(what, (instead[0].upper() + instead[1:] + '; then pass ' if instead else 'Pass ')
                            + CHECKPOINT_TIP)
    text = _as_text(head)
    if text is not None:
        return _sniff_text(path, text, size)
    return None


def summarize_keys(keys: Iterable[str], limit: int = 6) -> str:
    """The top-level key prefixes of a state dict in order (`conv1.*, bn1.*, layer1.*, ...`) and the family they
    suggest, e.g. "keys conv1.*, bn1.*, layer1.*, layer2.*, layer3.*, layer4.*, ... (a ResNet-style CNN ...)".

    Args:
        keys: State dict keys (a `module.` prefix of DataParallel is dropped).
        limit: Prefixes to name before "...".
    """
    keys = [k[len('module.'):] if k.startswith('module.') else k for k in keys]
    prefixes: List[str] = []
    for key in keys:
        head, dot, _ = key.partition('.')
        name = f'{head}.*' if dot else head
        if name not in prefixes:
            prefixes.append(name)
    if not prefixes:
        return 'no tensors'
    shown = ', '.join(prefixes[:limit]) + (', ...' if len(prefixes) > limit else '')
    family = _family(keys)
    return f'keys {shown}' + (f' ({family})' if family else '')


def is_t2t_state_dict(keys: Iterable[str]) -> bool:
    """Whether a state dict is a T2T-ViT one (this package's names or the official ones), a `module.` prefix allowed.

    True with a T2T stem; without one, for a backbone without any other family's stem (a partial T2T-ViT checkpoint,
    whose missing tensors the fit check names).
    """
    keys = [k[len('module.'):] if k.startswith('module.') else k for k in keys]
    if any(k.startswith(_T2T_STEM) for k in keys):
        return True
    return (any(k.startswith(_T2T_BACKBONE) for k in keys) and not any(k.startswith('patch_embed.') for k in keys)
            and _family(keys) is None)


def checkpoint_shapes(path: PathLike) -> Optional[Dict[str, Tuple[int, ...]]]:
    """Tensor names and shapes of a checkpoint, read without torch, in its own key names (a `module.` prefix dropped).

    Reads a safetensors header, or the pickle of a torch zip checkpoint (`torch.save`'s default format) with an
    unpickler that builds nothing but recording stubs: no class or function of the file runs, no tensor data is read.
    Nested layouts (`state_dict`, `model`, `state_dict_ema`, `model_ema`) are unwrapped as the loader does.

    Args:
        path: A checkpoint file.

    Returns:
        {key: shape}, or None when the file is of another format (a legacy pickle, ...) or cannot be read this way.
    """
    try:
        with open(path, 'rb') as f:
            head = f.read(8)
            size = os.fstat(f.fileno()).st_size
            if len(head) == 8 and 0 < struct.unpack('<Q', head)[0] <= min(size - 8, 100 << 20):
                header = json.loads(f.read(struct.unpack('<Q', head)[0]))
                if isinstance(header, dict):
                    return _unwrapped({k: tuple(v['shape']) for k, v in header.items()
                                       if k != '__metadata__' and isinstance(v, dict) and 'shape' in v})
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as z:
            pkl = next((n for n in z.namelist() if n.endswith('/data.pkl') or n == 'data.pkl'), None)
            if pkl is None:
                return None
            obj = _StubUnpickler(io.BytesIO(z.read(pkl))).load()
    except Exception:  # anything unexpected: the torch path reads the file and words its own errors
        return None
    if not isinstance(obj, dict):
        return None
    return _unwrapped({k: v.shape for k, v in obj.items() if isinstance(v, _TensorStub)},
                      obj)


# --------------------------------------------------------------------------------------------------------------------
# Helpers


class _TensorStub:
    """A tensor as read by `_StubUnpickler`: only its shape."""

    def __init__(self, shape: Tuple[int, ...]) -> None:
        self.shape = shape


class _Stub:
    """Anything else a checkpoint pickles (an optimizer state, argparse.Namespace, ...): takes and keeps nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> '_Stub':
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> '_Stub':
        return _Stub()

    def __setstate__(self, state: Any) -> None:
        pass


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, *args: Any, **kwargs: Any) -> _TensorStub:
    # torch._utils._rebuild_tensor_v2 / _v3: (storage, offset, size, stride, ...): only the size is kept.
    return _TensorStub(tuple(int(s) for s in size))


def _rebuild_parameter(data: Any, *args: Any, **kwargs: Any) -> Any:
    # torch._utils._rebuild_parameter(data, requires_grad, backward_hooks): a Parameter is its tensor.
    return data


class _StubUnpickler(pickle.Unpickler):
    """Unpickles a torch checkpoint's data.pkl into dicts of `_TensorStub`s: every global is a harmless stand-in."""

    _KNOWN = {
        ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor,
        ('torch._utils', '_rebuild_tensor_v3'): _rebuild_tensor,
        ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
        ('collections', 'OrderedDict'): collections.OrderedDict,
    }

    def find_class(self, module: str, name: str) -> Any:
        return self._KNOWN.get((module, name), _Stub)

    def persistent_load(self, pid: Any) -> Any:
        return None  # a storage: its bytes stay in the archive


def _unwrapped(shapes: Dict[str, Tuple[int, ...]], obj: Optional[Dict] = None) -> Dict[str, Tuple[int, ...]]:
    """The state dict inside a training checkpoint (the layouts the checkpoint filter accepts), `module.` dropped."""
    if obj is not None:
        for key in ('state_dict_ema', 'model_ema', 'state_dict', 'model'):
            if isinstance(obj.get(key), dict):
                shapes = {k: v.shape for k, v in obj[key].items() if isinstance(v, _TensorStub)}
                break
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in shapes.items()}


def _is_safetensors(head: bytes, size: int) -> bool:
    # An 8-byte little-endian header length, then the JSON header itself.
    if len(head) < 10:
        return False
    n = struct.unpack('<Q', head[:8])[0]
    return 0 < n <= size - 8 and head[8:9] == b'{'


def _is_pickle(head: bytes) -> bool:
    # Protocol 2+ starts with PROTO; torch's legacy (non-zip) format is a pickle stream too.
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def _image(what: str) -> FileKind:
    return FileKind(what, f'Images are the IMAGE arguments; --weights takes {CHECKPOINT_TIP}')


def _archive(what: str, members: List[str]) -> FileKind:
    inside = [m for m in members if m.endswith(_CHECKPOINT_SUFFIXES)]
    if inside:
        return FileKind(f'{what} holding {", ".join(inside[:3])}{", ..." if len(inside) > 3 else ""}',
                        f'Extract it and pass the checkpoint inside ({inside[0]})')
    listed = f' holding {", ".join(members[:3])}{", ..." if len(members) > 3 else ""}' if members else ''
    return FileKind(what + listed, f'Extract it and pass the checkpoint inside: {CHECKPOINT_TIP}')


def _sniff_zip(path: Path) -> Optional[FileKind]:
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None  # a truncated torch zip checkpoint looks the same: the loader reports it as truncated
    if any(n.endswith('data.pkl') for n in names):  # torch.save's zip format
        return None
    return _archive('a zip archive', [n for n in names if not n.endswith('/')])


def _tar_members(path: Path, limit: int = 20) -> List[str]:
    """The first member names of a (compressed) tar archive, streaming: only the first headers are read."""
    names: List[str] = []
    try:
        with tarfile.open(path, mode='r|*') as t:
            for member in t:
                if member.isfile():
                    names.append(member.name)
                if len(names) >= limit:
                    break
    except (tarfile.TarError, OSError, EOFError, ValueError):
        pass
    return names


def _as_text(head: bytes) -> Optional[str]:
    if b'\x00' in head:
        return None
    for encoding in ('utf-8-sig', 'latin-1'):
        try:
            text = head.decode(encoding)
        except UnicodeDecodeError:
            continue
        printable = sum(c.isprintable() or c in '\r\n\t' for c in text)
        if text and printable / len(text) > 0.95:
            return text
    return None


def _sniff_text(path: Path, text: str, size: int) -> FileKind:
    stripped = text.lstrip()
    lower = stripped[:100].lower()
    if stripped.startswith('version https://git-lfs'):
        return FileKind('a Git LFS pointer, not the weights themselves',
                        'Fetch the weights (git lfs pull, or download the file itself) and pass that file')
    if lower.startswith(('<!doctype html', '<html')):
        return FileKind('an HTML page (a download that got a web page, e.g. a login or error page)',
                        f'Download the file itself (the raw / resolve link), then pass {CHECKPOINT_TIP}')
    if stripped.startswith(('{', '[')):
        return _sniff_json(path, size)
    first = next((line.strip() for line in text.splitlines() if line.strip()), '')
    shown = first if len(first) <= 60 else first[:57] + '...'
    return FileKind(f'a text file (first line: {shown!r})' if shown else 'a text file of blank lines',
                    f'Pass {CHECKPOINT_TIP}')


def _sniff_json(path: Path, size: int) -> FileKind:
    config: Dict = {}
    if size <= 1 << 20:  # a config is small; a huge JSON file is not worth parsing to name it
        try:
            loaded = json.loads(path.read_text(encoding='utf-8-sig'))
            config = loaded if isinstance(loaded, dict) else {}
        except (ValueError, OSError):
            pass
    arch = config.get('architecture')
    if arch:
        weights = [n for n in ('model.safetensors', 'pytorch_model.bin') if (path.parent / n).is_file()]
        where = (f'pass the folder that holds it ({path.parent}), or {weights[0]} beside it' if weights else
                 f'pass the weights saved with it (model.safetensors beside it, or the folder that holds both)')
        return FileKind(f'a JSON file, the model config of {arch} (what save_for_hf writes beside the weights)',
                        where[0].upper() + where[1:])
    return FileKind('a JSON file', f'Pass {CHECKPOINT_TIP}')


def _family(keys: List[str]) -> Optional[str]:
    for required, family in _FAMILIES:
        if all(any(k.startswith(r) for k in keys) for r in required):
            return family
    return None
