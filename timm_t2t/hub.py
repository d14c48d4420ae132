"""Pretrained T2T-ViT weights: the names of the former single weights module, re-exported.

The code lives in one module per job:

* `timm_t2t.checkpoint`: safe checkpoint reading and fit checks, the error classes;
* `timm_t2t.download`: release downloads, the caches, reachability, healing of unreadable cached files;
* `timm_t2t.pretrained`: what `pretrained=True` runs (Hub first, release fallback, fail fast);
* `timm_t2t.convert`: conversion with proof and the model card;
* `timm_t2t.publish`: uploads to the Hugging Face Hub;
* `timm_t2t.cli_weights`: the `timm-t2t convert` / `push` commands.
"""
from .checkpoint import (
    CheckpointMismatchError, ChecksumError, DownloadError, PretrainedWeightsError, check_state_dict, describe_layout,
    file_digest, read_checkpoint)
from .cli_weights import configure_convert_parser, configure_push_parser, run_convert, run_push
from .convert import (
    HUB_FILES, RELEASE_ACCURACY, TOLERANCE, ConversionResult, convert_checkpoint, count_gmacs, model_card, release_urls)
from .download import (
    RELEASE_CHECKSUMS, cached_hub_weights, cached_release, discard_cached_hub_file, discard_cached_release,
    download_release, release_cache_dir, unreachable_reason)
from .pretrained import build_pretrained
from .publish import publish_all, push_folder

__all__ = [
    'PretrainedWeightsError', 'DownloadError', 'ChecksumError', 'CheckpointMismatchError',
    'read_checkpoint', 'check_state_dict', 'describe_layout', 'file_digest',
    'RELEASE_CHECKSUMS', 'release_cache_dir', 'cached_release', 'download_release', 'cached_hub_weights',
    'unreachable_reason', 'discard_cached_hub_file', 'discard_cached_release', 'build_pretrained',
    'TOLERANCE', 'HUB_FILES', 'RELEASE_ACCURACY', 'release_urls', 'convert_checkpoint', 'ConversionResult',
    'count_gmacs', 'model_card', 'push_folder', 'publish_all',
    'configure_convert_parser', 'run_convert', 'configure_push_parser', 'run_push',
]
