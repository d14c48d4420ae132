"""Opt-in fix so timm's unchanged `train.py` runs DistributedDataParallel on CPU (gloo).

`train.py` wraps the model with `task.prepare_distributed(device_ids=[device])`, and PyTorch's DDP rejects
`device_ids` for a CPU module ("DistributedDataParallel device_ids and output_device arguments only work with
single-device/multiple-device GPU modules or CPU modules, but got device_ids [device(type='cpu')]"). Importing this
module patches every timm training task's `prepare_distributed` to pass `device_ids=None` when all ids are CPU devices,
which is what DDP expects for CPU modules; GPU runs are untouched. Load it (and the models) through train.py itself:

    torchrun --nproc_per_node=2 train.py --device cpu --device-modules timm_t2t.cpu_ddp --model t2t_vit_7 ...
"""
import functools
from typing import Any, Callable, Iterator, Optional, Sequence, Type

import torch

import timm_t2t  # noqa: F401  `--device-modules timm_t2t.cpu_ddp` then also registers the models

_PATCHED = '_timm_t2t_cpu_ddp'


def cpu_device_ids(device_ids: Optional[Sequence[Any]]) -> Optional[Sequence[Any]]:
    """None when every id names a CPU device (DDP's requirement for CPU modules), else the ids unchanged."""
    if device_ids and all(torch.device(d).type == 'cpu' for d in device_ids):
        return None
    return device_ids


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def prepare_distributed(self: Any, device_ids: Optional[Sequence[Any]] = None, **ddp_kwargs: Any) -> Any:
        return fn(self, device_ids=cpu_device_ids(device_ids), **ddp_kwargs)
    setattr(prepare_distributed, _PATCHED, True)
    return prepare_distributed


def _task_classes(base: Type) -> Iterator[Type]:
    yield base
    for sub in base.__subclasses__():
        yield from _task_classes(sub)


def install() -> int:
    """Patch `prepare_distributed` of every timm training task class (idempotent). Returns how many were patched."""
    try:
        from timm.task import TrainingTask
    except ImportError:  # older timm without `timm.task`: its train.py builds DDP itself, nothing to patch here
        return 0
    count = 0
    for cls in set(_task_classes(TrainingTask)):
        fn = cls.__dict__.get('prepare_distributed')
        if fn is not None and not getattr(fn, _PATCHED, False):
            setattr(cls, 'prepare_distributed', _wrap(fn))
            count += 1
    return count


install()
