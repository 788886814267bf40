"""Data layer: layouts on disk, lazy clips, training loaders, checks, degradations, the built-in sample."""

from m3svd.data.clip import Clip
from m3svd.data.layouts import ClipSet, open_dataset

__all__ = ["Clip", "ClipSet", "open_dataset"]
