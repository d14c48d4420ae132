"""timm-t2t: Tokens-to-Token ViT (T2T-ViT) models for timm.

Importing this package registers the `t2t_vit_*` architectures and their pretrained configs with timm, so
`timm.create_model('t2t_vit_14', pretrained=True)` works like for any model timm ships.
"""
from .t2t_vit import T2TViT, TokenAttention, TokenPerformer, TokensToToken, TokenTransformer, checkpoint_filter_fn

__version__ = '0.1.0'
