"""The Clip: one registered IR/VIS video (or image pair), lazy until a frame is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from m3svd.data.frames import FrameSource, ImageFiles, natural_key, to_grey, to_rgb
from m3svd.errors import DataError

VARIANTS = ("clean", "degraded")


@dataclass(eq=False)
class Clip:
    """A pair of frame sources of equal length, frame ``i`` of IR paired with frame ``i`` of VIS.

    ``ir(i)`` is grey ``H×W`` ``uint8`` (stored as 1 channel or 3 identical channels; lossy video is
    converted with BT.601 weights), ``vi(i)`` is ``H×W×3`` RGB ``uint8`` (grey visible frames, as in TNO,
    are replicated). A degraded clip carries its clean ``reference``. Pairing is checked on construction
    for image files (same names in both modalities) and on first use for videos (same frame count);
    ``strict=False`` defers every problem to :meth:`pairing_problems` (used by ``m3svd check``).
    """

    name: str
    ir_source: FrameSource
    vi_source: FrameSource
    split: str | None = None
    variant: str | None = None
    layout: str = "generic"
    reference: Clip | None = None
    fps_override: float | None = None
    strict: bool = True
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.variant is not None and self.variant not in VARIANTS:
            raise DataError(f"clip {self.name}: variant must be one of {VARIANTS}, found {self.variant!r}")
        if self.strict:
            problems = self.pairing_problems(count_videos=False)
            if problems:
                raise DataError(problems[0])

    # -- identity ---------------------------------------------------------------------------------
    def __repr__(self) -> str:
        parts = [self.name, self.layout] + [x for x in (self.split, self.variant) if x]
        return f"Clip({', '.join(parts)})"

    def __len__(self) -> int:
        n_ir, n_vi = len(self.ir_source), len(self.vi_source)
        if n_ir != n_vi and self.strict:
            raise DataError(
                f"clip {self.name}: IR has {n_ir} frames ({self.ir_source.describe()}) but VIS has {n_vi} "
                f"({self.vi_source.describe()})"
            )
        return min(n_ir, n_vi)

    @property
    def fps(self) -> float | None:
        """Frame rate from the container (metadata only; frames are never resampled)."""
        return self.fps_override or self.ir_source.fps or self.vi_source.fps

    @property
    def lossy(self) -> bool:
        return self.ir_source.lossy or self.vi_source.lossy

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of frame 0 (decodes it once)."""
        if "size" not in self.meta:
            self.meta["size"] = tuple(self.ir(0).shape[:2])
        return self.meta["size"]

    @property
    def paths(self) -> dict[str, tuple[Path, ...]]:
        out = {"ir": self.ir_source.paths, "vi": self.vi_source.paths}
        if self.reference is not None:
            out.update({"ir_ref": self.reference.ir_source.paths, "vi_ref": self.reference.vi_source.paths})
        return out

    # -- frames -----------------------------------------------------------------------------------
    def ir(self, i: int) -> np.ndarray:
        return to_grey(self.ir_source.read(i))

    def vi(self, i: int) -> np.ndarray:
        return to_rgb(self.vi_source.read(i))

    def frames(self, start: int = 0, stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(ir T×H×W, vi T×H×W×3)`` ``uint8`` arrays for frames ``start..stop-1``."""
        stop = len(self) if stop is None else stop
        if not 0 <= start < stop <= len(self):
            raise IndexError(f"clip {self.name}: window [{start}, {stop}) outside 0..{len(self)}")
        idx = range(start, stop)
        return np.stack([self.ir(i) for i in idx]), np.stack([self.vi(i) for i in idx])

    def window(self, start: int, length: int):
        """Torch tensors ``ir T×1×H×W`` and ``vi T×3×H×W``, float32 in [0, 1]."""
        import torch

        ir, vi = self.frames(start, start + length)
        ir_t = torch.from_numpy(ir).unsqueeze(1).float().div_(255.0)
        vi_t = torch.from_numpy(vi).permute(0, 3, 1, 2).float().div_(255.0)
        return ir_t, vi_t

    # -- pairing ----------------------------------------------------------------------------------
    def pairing_problems(self, count_videos: bool = True) -> list[str]:
        """Every way the streams of this clip (and its reference) fail to pair, one line each."""
        streams = {"IR": self.ir_source, "VIS": self.vi_source}
        if self.reference is not None:
            streams.update({"clean IR": self.reference.ir_source, "clean VIS": self.reference.vi_source})
        problems = []
        keyed = {label: s for label, s in streams.items() if isinstance(s, ImageFiles)}
        every_key = set().union(*(s.keys for s in keyed.values())) if keyed else set()
        for label, source in keyed.items():
            missing = sorted(every_key - set(source.keys), key=natural_key)
            if not len(source):
                problems.append(f"clip {self.name}: {label} folder {source.describe()} holds no frames")
            elif missing:
                problems.append(
                    f"clip {self.name}: {label} ({source.describe()}) is missing {len(missing)} frame(s) "
                    f"present in another stream, first {missing[0]!r}"
                )
        if not problems and keyed:
            label, source = next(iter(keyed.items()))
            gaps = source.numbering_gaps()
            if gaps:
                (before, after), others = gaps[0], len(gaps) - 1
                problems.append(
                    f"clip {self.name}: frame numbering jumps from {before} to {after} in every stream "
                    f"({source.describe()}){f' and {others} more time(s)' if others else ''}; expected consecutive "
                    "frame numbers (frames are paired and compared by position, so a missing frame would make "
                    "non-neighbours neighbours)"
                )
        if count_videos and not problems:
            counts = {label: len(s) for label, s in streams.items()}
            if len(set(counts.values())) > 1:
                listed = ", ".join(f"{label} {n}" for label, n in counts.items())
                problems.append(f"clip {self.name}: frame counts differ ({listed})")
        return problems
