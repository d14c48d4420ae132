"""The T2T-ViT model: `t2t_vit.py` defines and registers the architectures with timm."""
