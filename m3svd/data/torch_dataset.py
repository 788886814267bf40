"""PyTorch datasets of fixed-length windows, for training code.

Randomness (the crop) is a pure function of ``(seed, epoch, window index)``, never of global RNG state,
so results are identical with 0 or N DataLoader workers and across restarts; call ``set_epoch`` to draw
new crops each epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from m3svd.data.clip import Clip
from m3svd.data.layouts import ClipSet, open_dataset
from m3svd.errors import DataError


@dataclass(frozen=True)
class Window:
    clip: int  # index into M3SVD.clips
    start: int


def _as_hw(crop) -> tuple[int, int] | None:
    if crop is None:
        return None
    h, w = (crop, crop) if isinstance(crop, int) else crop
    if h <= 0 or w <= 0:
        raise ValueError(f"crop must be positive, found {crop!r}")
    return int(h), int(w)


class M3SVD(Dataset):
    """Windows of ``frames`` consecutive frames from every clip of a split.

    Each item is ``{"ir": T×1×H×W, "vi": T×3×H×W, "clip": name, "start": first frame}``, float32 in
    [0, 1]; for ``variant="degraded"`` with ``return_references`` also the clean ``"ir_ref"`` and
    ``"vi_ref"``. One crop window is drawn per item and shared by all frames, modalities and variants, so
    inputs and references stay registered. ``root`` is a dataset folder (any layout), ``"sample"``, or a
    :class:`ClipSet`.
    """

    def __init__(
        self,
        root: str | Path | ClipSet,
        split: str | None = "train",
        variant: str = "clean",
        frames: int = 7,
        stride: int | None = None,
        crop: int | tuple[int, int] | None = None,
        transforms: Callable[[dict], dict] | None = None,
        return_references: bool = True,
        seed: int = 0,
    ):
        if frames < 1:
            raise ValueError(f"frames must be >= 1, found {frames}")
        clipset = root if isinstance(root, ClipSet) else open_dataset(root)
        if split is not None and clipset.splits == [None]:
            split = None  # layouts without splits (TNO, generic folders) hold one set of clips
        self.clips: list[Clip] = clipset.select(split, variant)
        self.frames, self.stride = frames, stride or frames
        self.crop = _as_hw(crop)
        self.transforms = transforms
        self.return_references = return_references and variant == "degraded"
        self.seed, self.epoch = seed, 0
        if self.return_references:
            lacking = [c.name for c in self.clips if c.reference is None]
            if lacking:
                raise DataError(f"{clipset.root}: degraded clips without clean references: {', '.join(lacking)}")
        self.windows = [
            Window(ci, start)
            for ci, clip in enumerate(self.clips)
            for start in range(0, len(clip) - frames + 1, self.stride)
        ]
        if not self.windows:
            raise DataError(
                f"{clipset.root}: no window of {frames} frames in split {split!r} ({len(self.clips)} clips, "
                f"longest {max((len(c) for c in self.clips), default=0)} frames)"
            )

    def __len__(self) -> int:
        return len(self.windows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _crop_box(self, index: int, height: int, width: int) -> tuple[slice, slice]:
        if self.crop is None:
            return slice(None), slice(None)
        ch, cw = self.crop
        if ch > height or cw > width:
            raise DataError(f"crop {ch}×{cw} is larger than the frames ({height}×{width})")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        top, left = int(rng.integers(0, height - ch + 1)), int(rng.integers(0, width - cw + 1))
        return slice(top, top + ch), slice(left, left + cw)

    def __getitem__(self, index: int) -> dict:
        window = self.windows[index]
        clip = self.clips[window.clip]
        span = range(window.start, window.start + self.frames)
        first = clip.ir(span[0])
        rows, cols = self._crop_box(index, *first.shape)
        ir = np.stack([first[rows, cols]] + [clip.ir(i)[rows, cols] for i in span[1:]])
        vi = np.stack([clip.vi(i)[rows, cols] for i in span])
        item = {"ir": _ir_tensor(ir), "vi": _vi_tensor(vi), "clip": clip.name, "start": window.start}
        if self.return_references:
            ref = clip.reference
            item["ir_ref"] = _ir_tensor(np.stack([ref.ir(i)[rows, cols] for i in span]))
            item["vi_ref"] = _vi_tensor(np.stack([ref.vi(i)[rows, cols] for i in span]))
        return self.transforms(item) if self.transforms else item


def _ir_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).unsqueeze(1).float().div_(255.0)


def _vi_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


class ShardedM3SVD(IterableDataset):
    """Iterable form for multi-node training: each (rank, DataLoader worker) gets a disjoint share.

    Windows are shuffled by ``(seed, epoch)`` (identical on every rank), then dealt round-robin to
    ``world_size`` ranks and within a rank to its workers. Every rank yields the same number of items
    (the tail that does not divide evenly is dropped), so collective ops stay in step.
    """

    def __init__(self, dataset: M3SVD, rank: int | None = None, world_size: int | None = None,
                 shuffle: bool = True):
        self.dataset, self.shuffle = dataset, shuffle
        if rank is None or world_size is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            rank = dist.get_rank() if ready else 0
            world_size = dist.get_world_size() if ready else 1
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), found {rank}")
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def indices(self) -> list[int]:
        """The window indices this rank yields (all its workers together), in order."""
        n = len(self.dataset)
        order = np.arange(n)
        if self.shuffle:
            order = np.random.default_rng([self.dataset.seed, self.dataset.epoch]).permutation(n)
        per_rank = n // self.world_size
        return order[: per_rank * self.world_size][self.rank :: self.world_size].tolist()

    def __len__(self) -> int:
        return len(self.dataset) // self.world_size

    def __iter__(self):
        mine = self.indices()
        info = get_worker_info()
        if info is not None:
            mine = mine[info.id :: info.num_workers]
        for index in mine:
            yield self.dataset[index]
