"""Pretrained T2T-ViT weights, one job per module (import the names from the module that holds them):

* `checkpoint_io`: safe checkpoint reading and fit checks, file digests, the error classes;
* `file_kinds`: what a file that is not a readable checkpoint is (JSON, text, image, archive, another model family);
* `download`: release downloads, the caches, reachability, healing of unreadable cached files;
* `pretrained`: what `pretrained=True` runs (Hub first, release fallback, fail fast);
* `convert`: conversion with proof, and the model card;
* `publish`: uploads to the Hugging Face Hub.

`file_kinds`, `checkpoint_io`, `download` and `pretrained` do not import the model package (the model imports `pretrained` when it
loads weights); `convert` and `publish` build models and do. Nothing here imports the command line or the benchmarks.
"""
