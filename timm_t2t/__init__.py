"""timm-t2t: Tokens-to-Token ViT (T2T-ViT) models for timm.

Importing this package registers the `t2t_vit_*` architectures and their pretrained configs with timm, so
`timm.create_model('t2t_vit_14', pretrained=True)` works like for any model timm ships.

One exception keeps the command line instant: when the package is imported to start `timm-t2t` (the console script or
`python -m timm_t2t`), the model module is not imported here; `timm_t2t.cli.main` imports it before any command that
needs the models, and the names below load on first access (`timm_t2t._launch`).
"""
from typing import Any

from ._launch import started_as_command_line

__version__ = '0.1.0'
__all__ = ['T2TViT', 'TokenAttention', 'TokenPerformer', 'TokensToToken', 'TokenTransformer', 'checkpoint_filter_fn']

if not started_as_command_line():
    from .models.t2t_vit import (  # registers the models with timm
        T2TViT, TokenAttention, TokenPerformer, TokensToToken, TokenTransformer, checkpoint_filter_fn)


def __getattr__(name: str) -> Any:
    # Only reached after a command-line start (otherwise the names are set above): load the model module on demand.
    if name in __all__:
        from .models import t2t_vit
        return getattr(t2t_vit, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
