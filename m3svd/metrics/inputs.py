"""What a metric accepts, converted once to what every convention is defined on: 8-bit levels.

Every metric in the registry is defined on ``uint8`` levels 0–255 (the lineages read 8-bit image files; MI, EN,
CE and NMI are histograms of those levels), so any input becomes ``uint8`` ``N×H×W`` (grey) or ``N×H×W×3`` (RGB)
frames here, before a metric sees it:

- ``uint8`` is taken as is (its ``data_range`` is 255);
- ``uint16`` is scaled by ``255 / data_range`` (default 65535), floats likewise (default ``data_range`` 1.0);
  other integer types have no default and need ``data_range``;
- each value is rounded to the nearest level (``np.rint``: ties to even). Float input that lies on the level
  grid, ``k / 255 * data_range``, maps back to exactly ``k`` (float16, bfloat16, float32, float64 alike), so its
  scores equal the ``uint8`` scores bit for bit. Float input between levels is quantised as writing it to an
  8-bit PNG would be: the score is that of the saved frame, not of the unrounded values;
- a value that rounds outside 0–255 (or is not finite) is an error, never clipped silently.

Layouts: numpy arrays are channels-last (``H×W``, ``H×W×C``, ``N×H×W``, ``N×H×W×C``; an ``N×C×H×W`` array whose
last axis is not 1 or 3 is read channels-first); torch tensors are channels-first as in torch
(``C×H×W``, ``N×C×H×W``; a 3-axis tensor whose first axis is not 1 or 3 is ``N×H×W`` grey frames; an
``N×H×W×C`` tensor whose second axis is not 1 or 3 is read channels-last). ``C`` is 1 (grey) or 3 (RGB).
torch is imported only if the caller passed a tensor.
"""

from __future__ import annotations

import sys

import numpy as np

LEVELS = 255  # the top level every metric is defined on


def data_range_of(dtype: np.dtype, data_range: float | None, name: str) -> float:
    """``data_range`` as given, or the default for ``dtype``: uint8 → 255, uint16 → 65535, float → 1.0."""
    if dtype == np.uint8:
        if data_range not in (None, 255):
            raise ValueError(f"{name}: uint8 frames are levels 0-255, so data_range must be 255 (or left out), "
                             f"found {data_range}; data_range describes float or uint16 input")
        return 255.0
    if data_range is not None:
        if not (np.isfinite(data_range) and data_range > 0):
            raise ValueError(f"{name}: data_range must be a positive number, found {data_range}")
        return float(data_range)
    if dtype == np.uint16:
        return 65535.0
    if np.issubdtype(dtype, np.floating):
        return 1.0
    raise ValueError(f"{name}: no default data_range for {dtype} frames; pass data_range (e.g. 255 for 0-255 "
                     f"integers) or give uint8, uint16 or float frames")


def _numpy(array) -> tuple[np.ndarray, bool]:
    """``(array as numpy, whether it came as a torch tensor)``; a tensor is detached and copied to the CPU."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        t = array.detach()
        if t.dtype in (torch.float16, torch.bfloat16):  # numpy has no bfloat16; upcasting is exact
            t = t.float()
        return t.cpu().numpy(), True
    return np.asarray(array), False


def _layout(a: np.ndarray, channels_first: bool, name: str) -> tuple[np.ndarray, bool]:
    """``(N×H×W or N×H×W×3 view, single)``: ``single`` when no batch axis was passed."""
    channels = (1, 3)
    if a.ndim == 2:
        return a[None], True
    if a.ndim == 3:
        if channels_first and a.shape[0] in channels:
            return np.moveaxis(a, 0, -1)[None], True
        if not channels_first and a.shape[-1] in channels:
            return a[None], True
        return a, False
    if a.ndim == 4:
        first = a.shape[1] in channels and (channels_first or a.shape[-1] not in channels)
        if first:
            return np.moveaxis(a, 1, -1), False
        if a.shape[-1] in channels:
            return a, False
    raise ValueError(f"{name}: expected H×W, H×W×C, N×H×W, N×H×W×C or N×C×H×W frames with C = 1 or 3, "
                     f"found shape {tuple(a.shape)}")


def to_levels(name: str, array, data_range: float | None = None) -> tuple[np.ndarray, bool]:
    """``(uint8 N×H×W or N×H×W×3 frames, single)`` from any accepted input (see the module docstring).

    ``single`` is true when ``array`` held one image without a batch axis, so callers can return a float.
    ``uint8`` input in channels-last layout is returned without a copy.
    """
    a, channels_first = _numpy(array)
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{name}: expected uint8, uint16 or float frames, found dtype {a.dtype}")
    a, single = _layout(a, channels_first, name)
    if a.shape[-1] == 1 and a.ndim == 4:
        a = a[..., 0]
    top = data_range_of(a.dtype, data_range, name)
    if a.dtype == np.uint8:
        return np.ascontiguousarray(a), single
    if a.size == 0:
        return np.zeros(a.shape, np.uint8), single
    if np.issubdtype(a.dtype, np.integer) and top == LEVELS:
        levels = a
    else:
        levels = a.astype(np.float64) * (LEVELS / top)
        if not np.isfinite(levels).all():
            raise ValueError(f"{name}: frames hold NaN or infinite values")
        levels = np.rint(levels)
    lo, hi = levels.min(), levels.max()
    if lo < 0 or hi > LEVELS:
        found = a.min() if lo < 0 else a.max()
        raise ValueError(f"{name}: values must lie in [0, {top:g}] (data_range {top:g}); found {found:g}. Clip "
                         f"the frames, or pass the data_range they use")
    return np.ascontiguousarray(levels.astype(np.uint8)), single
