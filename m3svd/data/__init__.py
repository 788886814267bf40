"""Data layer: layouts on disk, lazy clips, training loaders, checks, degradations, the built-in sample.

The torch and Hugging Face loaders are imported on first use, so ``m3svd info``/``check`` start fast.
"""

from m3svd.data.clip import Clip
from m3svd.data.layouts import ClipSet, open_dataset

_LAZY = {
    "M3SVD": "m3svd.data.torch_dataset",
    "ShardedM3SVD": "m3svd.data.torch_dataset",
    "to_hf_dataset": "m3svd.data.hf",
}

__all__ = ["Clip", "ClipSet", "open_dataset", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'm3svd.data' has no attribute {name!r}")
