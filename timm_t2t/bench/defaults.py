"""The models and runtimes the benchmarks compare by default.

Free of torch and timm: the command line's `bench` / `bench-deploy` parsers (`timm_t2t.cli.bench`) read them for
their defaults and `--help`.
"""
__all__ = ['COMPARATORS_224', 'DEPLOY_MODELS', 'RUNTIMES', 'VIT_MODELS', 'VIT_PYTORCH_T2T_14']

# vit-pytorch's T2TViT (lucidrains) built like T2T-ViT-14: width 384, 14 blocks, 6 heads of 64, MLP 1152; its
# T2T layers keep the full unfolded width (no token_dim reduction). 34.60M params, 17.10 GMACs at 224.
VIT_PYTORCH_T2T_14 = 'vit_pytorch_t2t_14'
VIT_MODELS = ('vit_small_patch16_224', 'deit_tiny_patch16_224')
# `timm-t2t bench-deploy`: the default path exported to ONNX beside the ViTs of the same size, in these runtimes.
DEPLOY_MODELS = ('t2t_vit_14', 't2t_vit_7', *VIT_MODELS)
RUNTIMES = ('onnxruntime', 'openvino-f32', 'openvino-default')
COMPARATORS_224 = (
    't2t_vit_14', 't2t_vit_14:plain', 't2t_vit_t_14', 't2t_vit_t_14:plain', 't2t_vit_7',
    *VIT_MODELS, VIT_PYTORCH_T2T_14,
)
