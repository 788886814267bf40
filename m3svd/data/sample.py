"""The built-in procedural sample: a small IR/VIS clip made by code, so every command runs offline.

The two modalities render one scene geometry (regions, texture, moving warm objects), so they are
registered (shift 0) and synchronised (offset 0) by construction, and tests know the answers: where each
object is, when smoke hides one in VIS only (IR sees through it), and which VIS frames are low-light.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from m3svd.data.clip import Clip
from m3svd.data.degrade import degrade_clip
from m3svd.data.frames import ArrayFrames
from m3svd.data.layouts import M3SVD_FOLDERS, ClipSet
from m3svd.errors import DataError
from m3svd.files import write_png

SAMPLE_FPS = 30.0
SAMPLE_DEGRADE_SEED = 0
SMOKE_HIDDEN_ALPHA = 0.95  # an object counts as hidden when smoke is at least this opaque over all of it
LOW_LIGHT_GAIN = 0.25
OBJECT_COLOURS = ((190, 40, 30), (30, 60, 140), (150, 130, 20))  # RGB bases: red jacket, blue car, yellow
# Release folder names in stream order: IR clean, VIS clean, IR degraded, VIS degraded.
RELEASE_FOLDERS = tuple(names[0] for names in M3SVD_FOLDERS.values())


@dataclass(frozen=True, eq=False)
class Sample:
    """``ir`` ``T×H×W`` and ``vi`` ``T×H×W×3`` RGB ``uint8`` frames, and the ``truth`` they were made from.

    ``truth``: ``boxes`` (per frame, per object ``(x0, y0, x1, y1)``, end-exclusive), ``hidden_object`` and
    ``hidden_frames`` (smoke hides that object in VIS only), ``low_light_frames``, ``shift_px`` and
    ``offset_frames`` (the IR→VIS registration and sync answers: zero).
    """

    ir: np.ndarray
    vi: np.ndarray
    truth: dict


# -- the static scene ------------------------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Band-limited noise in [0, 1]: random values on a coarse grid, cubic-upsampled."""
    coarse = rng.random((max(2, height // cell), max(2, width // cell)))
    up = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return (up - up.min()) / max(up.max() - up.min(), 1e-9)


def _scene(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Background ``(ir H×W, vi H×W×3)`` float64: regions with a VIS colour and an IR temperature.

    Both modalities share the region edges and one texture field, so gradients line up across them
    (with IR polarity flipped in places, as for warm windows that look dark).
    """
    texture = 0.6 * _smooth_noise(rng, height, width, 24) + 0.4 * _smooth_noise(rng, height, width, 5)
    yy, xx = np.mgrid[0:height, 0:width]
    horizon, road_top, road_bottom = int(0.4 * height), int(0.72 * height), int(0.9 * height)
    colour = np.empty((height, width, 3))
    temp = np.empty((height, width))
    colour[:horizon], temp[:horizon] = (150, 180, 215), 40.0  # sky: bright in VIS, cold in IR
    colour[horizon:], temp[horizon:] = (95, 115, 70), 95.0  # ground
    colour[road_top:road_bottom], temp[road_top:road_bottom] = (80, 80, 86), 125.0  # warm asphalt
    dashes = (yy >= (road_top + road_bottom) // 2 - 1) & (yy <= (road_top + road_bottom) // 2) & (xx // 16 % 2 == 0)
    colour[dashes], temp[dashes] = (225, 225, 215), 105.0
    for _ in range(5):  # buildings standing on the horizon, with a grid of windows
        x0 = int(rng.uniform(0, 0.9) * width)
        x1 = min(width, x0 + int(rng.uniform(0.08, 0.18) * width))
        y0 = int(rng.uniform(0.08, 0.3) * height)
        colour[y0:horizon, x0:x1], temp[y0:horizon, x0:x1] = rng.uniform(90, 190, 3), rng.uniform(60, 150)
        window = (yy >= y0 + 3) & (yy < horizon - 3) & (xx >= x0 + 2) & (xx < x1 - 2) & (yy % 8 < 3) & (xx % 6 < 3)
        colour[window], temp[window] = (40, 45, 60), temp[window] + 35.0
    vi = colour * (0.8 + 0.4 * (texture - 0.5))[..., None]
    ir = temp + 30.0 * (texture - 0.5) + 10.0 * (yy / height)  # the ground warms towards the camera
    vi = cv2.GaussianBlur(vi, (0, 0), 0.85)  # optics: edges a pixel wide, not aliased
    ir = cv2.GaussianBlur(ir, (0, 0), 0.9)
    return ir, vi


# -- moving things -----------------------------------------------------------------------------------------
def _smoke_centre(u: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    return width * (0.3 + 0.08 * u), height * (0.5 - 0.04 * u)


def _paths(rng: np.random.Generator, n: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres ``(T, K)`` in pixels; object 0 crosses the smoke, the others move with their own rhythms.

    Each path is a drift plus sinusoids of different frequencies, so velocities change from frame to
    frame and differ between objects (frame-change signals are informative for sync estimation).
    """
    u = np.linspace(0.0, 1.0, n)[:, None]
    phase = rng.uniform(0, 2 * np.pi, (1, 3))
    smoke_x, smoke_y = _smoke_centre(u, height, width)
    x = np.hstack([
        smoke_x + width * (-0.2 + 0.5 * u**1.3 + 0.015 * np.sin(9 * u + phase[:, :1])),  # person into smoke
        width * (0.88 - 0.7 * u + 0.04 * np.sin(7 * u + phase[:, 1:2])),  # car along the road
        width * (0.86 + 0.06 * np.sin(5 * u + phase[:, 2:])),  # person pacing on the right
    ])
    y = np.hstack([
        smoke_y + height * 0.02 * np.sin(11 * u),
        np.full_like(u, 0.81 * height),
        height * (0.58 + 0.05 * np.cos(4 * u + phase[:, 2:])),
    ])
    return x, y


def _window(cx: float, cy: float, rx: float, ry: float, height: int, width: int) -> tuple[slice, slice]:
    """Rows and columns that can be touched by something of radii ``rx, ry`` centred at ``cx, cy``."""
    rows = slice(max(0, int(cy - ry) - 1), min(height, int(cy + ry) + 2))
    cols = slice(max(0, int(cx - rx) - 1), min(width, int(cx + rx) + 2))
    return rows, cols


def _ellipse(cx: float, cy: float, rx: float, ry: float, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray]:
    """Anti-aliased elliptic mask in [0, 1] over a window, and ``1 − ρ²`` (1 at the centre, 0 on the rim)."""
    dy = (np.arange(rows.start, rows.stop)[:, None] - cy) / ry
    dx = (np.arange(cols.start, cols.stop)[None, :] - cx) / rx
    rho2 = dx**2 + dy**2
    mask = np.clip((1.0 - np.sqrt(rho2)) * min(rx, ry) + 0.5, 0.0, 1.0)
    return mask, np.clip(1.0 - rho2, 0.0, 1.0)


def _smoke(cx: float, cy: float, u: float, size: float, rows: slice, cols: slice) -> np.ndarray:
    """Smoke opacity over a window: an opaque billowing core fading out, its outline changing with ``u``."""
    dy = np.arange(rows.start, rows.stop)[:, None] - cy
    dx = np.arange(cols.start, cols.stop)[None, :] - cx
    theta = np.arctan2(dy, dx)
    radius = size * (1 + 0.12 * np.sin(3 * theta + 4 * u) + 0.07 * np.sin(5 * theta - 6 * u))
    edge = np.clip((radius - np.sqrt(dx**2 + dy**2)) / (0.45 * radius), 0.0, 1.0)
    return 0.97 * edge * edge * (3 - 2 * edge)  # smoothstep


def _box(mask: np.ndarray, rows: slice, cols: slice) -> tuple[int, int, int, int]:
    """Tight end-exclusive ``(x0, y0, x1, y1)`` of a window mask's non-zero pixels, in frame coordinates."""
    ys, xs = np.nonzero(mask)
    x0, y0 = cols.start + int(xs.min()), rows.start + int(ys.min())
    return x0, y0, cols.start + int(xs.max()) + 1, rows.start + int(ys.max()) + 1


def _paint_objects(ir: np.ndarray, vi: np.ndarray, centres, radii, colours) -> list[tuple]:
    """Composite the warm objects in place (painter's order); returns each one's ``(box, rows, cols, mask)``."""
    height, width = ir.shape
    painted = []
    for (cx, cy), (rx, ry), colour in zip(centres, radii, colours, strict=True):
        rows, cols = _window(cx, cy, rx, ry, height, width)
        mask, core = _ellipse(cx, cy, rx, ry, rows, cols)
        ir[rows, cols] += (205.0 + 35.0 * core - ir[rows, cols]) * mask  # warm, hottest at the centre
        vi[rows, cols] += (colour * (0.8 + 0.2 * core)[..., None] - vi[rows, cols]) * mask[..., None]
        painted.append((_box(mask, rows, cols), rows, cols, mask > 0))
    return painted


# -- the clip --------------------------------------------------------------------------------------------
def make_sample(frames: int = 32, height: int = 240, width: int = 320, seed: int = 0) -> Sample:
    """Render the sample; deterministic given ``seed`` (one ``default_rng(seed)`` drives everything)."""
    if frames < 1 or height < 32 or width < 32:
        raise ValueError(f"sample needs >= 1 frame of at least 32×32, found {frames}×{height}×{width}")
    rng = np.random.default_rng(seed)
    ir_bg, vi_bg = _scene(rng, height, width)
    x, y = _paths(rng, frames, height, width)
    colours = rng.uniform(0.0, 60.0, (len(OBJECT_COLOURS), 3)) + np.array(OBJECT_COLOURS)
    smoke_grey = 200.0 + 15.0 * _smooth_noise(rng, height, width, 12)
    radii = np.array([(0.03, 0.07), (0.07, 0.045), (0.03, 0.07)]) * (width, height)
    smoke_size = 0.25 * min(height, width)
    low = range(frames - frames // 4, frames)
    ir = np.empty((frames, height, width), np.uint8)
    vi = np.empty((frames, height, width, 3), np.uint8)
    boxes, hidden = [], []
    for t in range(frames):
        u = t / max(frames - 1, 1)
        ir_t, vi_t = ir_bg.copy(), vi_bg.copy()
        painted = _paint_objects(ir_t, vi_t, zip(x[t], y[t], strict=True), radii, colours)
        (sx,), (sy,) = _smoke_centre(np.array([u]), height, width)
        rows, cols = _window(sx, sy, 1.2 * smoke_size, 1.2 * smoke_size, height, width)
        alpha = _smoke(sx, sy, u, smoke_size, rows, cols)[..., None]  # VIS only: IR sees through the smoke
        vi_t[rows, cols] += (smoke_grey[rows, cols, None] - vi_t[rows, cols]) * alpha
        if t in low:
            vi_t = vi_t * LOW_LIGHT_GAIN + rng.normal(0.0, 2.0, vi_t.shape)
        _, o_rows, o_cols, o_mask = painted[0]
        if (_smoke(sx, sy, u, smoke_size, o_rows, o_cols)[o_mask] >= SMOKE_HIDDEN_ALPHA).all():
            hidden.append(t)
        ir[t], vi[t] = _to_uint8(ir_t), _to_uint8(vi_t)
        boxes.append(tuple(box for box, *_ in painted))
    truth = {
        "boxes": tuple(boxes),
        "hidden_object": 0,
        "hidden_frames": tuple(hidden),
        "low_light_frames": tuple(low),
        "shift_px": (0.0, 0.0),
        "offset_frames": 0,
    }
    return Sample(ir, vi, truth)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _cached(frames: int, height: int, width: int, seed: int) -> Sample:
    """Rendered once per argument set; arrays read-only so no caller can alter later clips."""
    sample = make_sample(frames, height, width, seed)
    for array in (sample.ir, sample.vi):
        array.setflags(write=False)
    return sample


def _clips(sample: Sample) -> tuple[Clip, Clip]:
    clean = Clip(
        "sample", ArrayFrames(sample.ir, SAMPLE_FPS), ArrayFrames(sample.vi, SAMPLE_FPS),
        split="test", variant="clean", layout="sample", meta={"truth": dict(sample.truth)},
    )
    degraded = degrade_clip(clean, seed=SAMPLE_DEGRADE_SEED)
    degraded.meta["truth"] = dict(sample.truth)
    return clean, degraded


def sample_clipset() -> ClipSet:
    """The sample as a dataset: split ``test``, a clean clip and its degraded copy (fresh clips each call)."""
    return ClipSet(Path("sample"), "sample", list(_clips(_cached(32, 240, 320, 0))))


# -- on disk -----------------------------------------------------------------------------------------------
def _check_target(target: Path) -> None:
    if target.is_file():
        raise DataError(f"{target}: expected a new or empty folder for the sample, found a file")
    if target.is_dir() and any(target.iterdir()):
        raise DataError(f"{target}: refusing to write the sample into a non-empty folder")


def write_sample(path: str | Path, frames: int = 32, height: int = 240, width: int = 320, seed: int = 0) -> Path:
    """Write the sample in the M3SVD four-folder PNG layout under ``path/test/``; returns ``path``.

    All or nothing: frames go to a hidden folder beside ``path``, renamed into place at the end, so an
    interrupted write leaves no half dataset. ``open_dataset(path)`` reads back exactly the same frames.
    """
    target = Path(path).expanduser()
    _check_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()
    try:
        clean, degraded = _clips(_cached(frames, height, width, seed))
        streams = zip(RELEASE_FOLDERS, (clean.ir, clean.vi, degraded.ir, degraded.vi), strict=True)
        for folder, read in streams:
            out = tmp / "test" / folder / "sample"
            out.mkdir(parents=True)
            for i in range(frames):
                write_png(out / f"{i:04d}.png", read(i), error=DataError)
        _check_target(target)
        if target.is_dir():
            target.rmdir()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
