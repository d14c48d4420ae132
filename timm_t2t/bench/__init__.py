"""Benchmarks of T2T-ViT next to plain ViTs:

* `speed`: images/s, peak memory, activations saved for backward and GMACs in PyTorch (`timm-t2t bench`);
* `deploy`: the exported models timed in ONNX Runtime and OpenVINO (`timm-t2t bench-deploy`);
* `defaults`: the models and runtimes they compare by default, free of torch (the command line's `--help`).
"""
