"""The method interface: classical and deep fusion methods behind one small contract.

A :class:`Method` fuses a *window* of registered frames: IR ``T×H×W`` and VIS ``T×H×W×3`` RGB, both ``uint8``,
into a :class:`Fusion` whose ``fused`` is ``T×H×W×3`` RGB ``uint8``. Methods that restore their inputs (VideoFusion)
also return the restored IR and VIS, so a degraded protocol can score restoration.

How a clip is cut into windows is part of a method's published inference protocol, so it lives here, in
:meth:`Method.plan`, with one rule for every method: *a frame takes its output from the last window that contains
it*. Methods differ only in ``temporal_window`` and ``window_overlap`` (and may override :meth:`plan` to reproduce
an official quirk, named as an option).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from m3svd.data.frames import BT601
from m3svd.errors import M3SVDError
from m3svd.files import sha256_file


class MethodError(M3SVDError, ValueError):
    """A method cannot run as asked: unknown name or option, missing weights, input of the wrong shape."""


@dataclass(frozen=True)
class Fusion:
    """What one ``fuse`` call returns: fused RGB frames and, for restoring methods, the restored sources."""

    fused: np.ndarray  # T×H×W×3 uint8 RGB
    ir: np.ndarray | None = None  # restored IR, T×H×W uint8
    vi: np.ndarray | None = None  # restored VIS, T×H×W×3 uint8


@dataclass(frozen=True)
class Window:
    """Run the method on frames ``[start, stop)``; keep its output for frames ``[keep_start, keep_stop)``."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def plan_windows(n: int, size: int, overlap: int = 0) -> list[Window]:
    """Windows of ``size`` frames stepping by ``size - overlap``; the last one ends at frame ``n``.

    Clips shorter than ``size`` get one window of the whole clip. Each frame's output comes from the last
    window containing it, so the kept ranges tile ``[0, n)`` exactly once.
    """
    if n < 1:
        raise MethodError("a clip needs at least one frame")
    if size < 1 or not 0 <= overlap < size:
        raise MethodError(f"window of {size} frames with overlap {overlap} is not a valid plan")
    step = size - overlap
    starts = list(range(0, max(n - size, 0), step)) + [max(n - size, 0)]
    windows = []
    for i, start in enumerate(starts):
        stop = min(start + size, n)
        keep_stop = starts[i + 1] if i + 1 < len(starts) else n
        keep_start = windows[-1].keep_stop if windows else 0
        windows.append(Window(start, stop, keep_start, keep_stop))
    return windows




class Method:
    """Base class. Subclasses set the class attributes and implement :meth:`fuse`."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    temporal_window: ClassVar[int] = 1  # frames per fuse call
    window_overlap: ClassVar[int] = 0
    inputs: ClassVar[tuple[str, ...]] = ("ir", "vi")  # ("vi",) for visible-only methods
    restores: ClassVar[bool] = False  # returns restored IR/VIS
    options: ClassVar[dict[str, object]] = {}  # option name -> default; anything else is an error

    def __init__(self, device: str = "cpu", weights: str | Path | None = None, **options):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise MethodError(f"method {self.name!r} has no option {unknown[0]!r}; its options: {known}")
        self.device = str(device)
        self.weights = Path(weights) if weights is not None else None
        self.config = {**self.options, **options}

    def fuse(self, ir: np.ndarray, vi: np.ndarray) -> Fusion:
        raise NotImplementedError

    def plan(self, n: int) -> list[Window]:
        return plan_windows(n, self.temporal_window, self.window_overlap)

    def identity(self) -> dict:
        """What makes this method's output reproducible: goes into every result row."""
        return {
            "method": self.name,
            "method_version": str(self.version),
            "weights": self.weights.name if self.weights else None,
            "weights_sha256": self.weights_sha256,
            "options": dict(sorted(self.config.items())),
        }

    @property
    def weights_sha256(self) -> str | None:
        if self.weights is None:
            return None
        if not hasattr(self, "_weights_sha256"):
            self._weights_sha256 = sha256_file(self.weights)
        return self._weights_sha256


def check_window(ir: np.ndarray | None, vi: np.ndarray) -> None:
    """One clear line when a window is not uint8 IR ``T×H×W`` and VIS ``T×H×W×3`` of the same size."""
    if vi.dtype != np.uint8 or vi.ndim != 4 or vi.shape[-1] != 3:
        raise MethodError(f"expected VIS frames T×H×W×3 uint8, found {vi.shape} {vi.dtype}")
    if ir is not None and (ir.dtype != np.uint8 or ir.shape != vi.shape[:3]):
        raise MethodError(f"expected IR frames {vi.shape[:3]} uint8 to match VIS, found {ir.shape} {ir.dtype}")


# Full-range BT.601 YCbCr (JPEG), float64, as OpenCV's RGB<->YCrCb and the field's fusion code use it.


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """``...×3`` RGB (any range) → Y, Cb, Cr in float64, chroma centred on 128."""
    rgb = np.asarray(rgb, dtype=np.float64)
    y = rgb @ BT601
    cb = (rgb[..., 2] - y) * 0.564 + 128.0
    cr = (rgb[..., 0] - y) * 0.713 + 128.0
    return np.stack([y, cb, cr], axis=-1)


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """Inverse of :func:`rgb_to_ycbcr`, rounded and clipped to ``uint8``."""
    y, cb, cr = (ycbcr[..., i] for i in range(3))
    r = y + 1.403 * (cr - 128.0)
    g = y - 0.714 * (cr - 128.0) - 0.344 * (cb - 128.0)
    b = y + 1.773 * (cb - 128.0)
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def with_visible_chroma(fused_y: np.ndarray, vi: np.ndarray) -> np.ndarray:
    """Colour a fused luminance ``T×H×W`` (float, 0–255) with the visible frames' chroma.

    The field's convention for grey-domain fusion of a colour visible image: fuse Y only, keep VIS Cb/Cr.
    """
    ycbcr = rgb_to_ycbcr(vi)
    ycbcr[..., 0] = fused_y
    return ycbcr_to_rgb(ycbcr)


def visible_luminance(vi: np.ndarray) -> np.ndarray:
    """BT.601 luminance of RGB frames in float64 (the package's one definition of grey)."""
    return np.asarray(vi, dtype=np.float64) @ BT601
