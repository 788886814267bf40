"""Degenerate fused outputs: statistics and thresholds that `m3svd validate` refuses a submission on.

A "fusion" that is constant, a source up to a grey-level mapping, or a frozen video is not a fusion, yet several
metrics reward each of them (a black frame has undefined CC and wins temporal metrics; IR quantised to 3 levels
wins MI). Each statistic is on grey frames (BT.601, float64), per frame or per clip, and each threshold was chosen
from the values on every real published fused output available (``benchmarks/degenerate_guard.py`` prints them; the
thresholds and margins are in leaderboard/README.md).
"""

from __future__ import annotations

import numpy as np

# Grey-level standard deviation below which a frame is near-constant (unless every source is as flat). Real outputs:
# min 10.76 (PIAFusion on TNO), so about half of it; the flattest M3SVD IR frame here has 5.2.
MIN_SPREAD = 5.0
# Relative residual of the least-squares fit of a fused frame by a function of one source (per grey level of the
# source: its conditional mean; any gain and offset, quantisation or gamma of the source fits exactly), i.e.
# sqrt(1 - eta^2). A source up to such a mapping gives 0 up to rounding (at most 0.004 in the tests: VIS grey x 1.2
# - 10). Real fusions come close: published outputs min 0.061 (PIAFusion on TNO), but the toolkit's GFF, a published
# method, follows one source within 0.0076-0.013 on M3SVD val frames (the stripe-noise IR of the degraded inputs;
# clip 0114_1611's flat IR in the clean ones). So the threshold sits at rounding level, and a submission is refused
# only when most of its frames fall below it (a copy copies every frame). Not caught: a source with a gain on a
# low-contrast frame, where rounding alone exceeds 0.005 of the spread, and a source plus noise.
MIN_SOURCE_RESIDUAL = 0.005
SOURCE_BINS_PER_LEVEL = 8
MAX_SOURCE_MAPPED_SHARE = 0.5
# A video is frozen when its largest mean absolute change between consecutive frames is below this many grey
# levels while the sources change by more than FROZEN_SOURCE_MOTION (a static scene may give a static output).
MAX_FROZEN_MOTION = 0.25
FROZEN_SOURCE_MOTION = 0.5


def grey(frame: np.ndarray) -> np.ndarray:
    """BT.601 luminance in float64 of an HxW or HxWx3 uint8 frame."""
    from m3svd.data.frames import BT601

    frame = np.asarray(frame)
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    return frame.astype(np.float64) if frame.ndim == 2 else frame[..., :3].astype(np.float64) @ BT601


def spread(fused_grey: np.ndarray) -> float:
    return float(fused_grey.std())


def source_residual(fused_grey: np.ndarray, source_grey: np.ndarray) -> float:
    """RMS residual of the best per-level fit ``F ≈ g(S)`` relative to the spread of F (0 = F is a function of S).

    The per-level conditional mean is the least-squares fit over every mapping of the source's grey levels, so a
    gain and offset, a quantisation to a few levels, a gamma or a clipping of the source all leave residual 0. Levels
    are 1/8 grey level wide: a colour source's BT.601 grey is not an integer, and binning it by whole levels would
    leave a mapped copy half a level of residual.
    """
    f = fused_grey.ravel()
    total = f.std()
    if total == 0:
        return 0.0
    s = np.clip(np.rint(source_grey.ravel() * SOURCE_BINS_PER_LEVEL), 0, 255 * SOURCE_BINS_PER_LEVEL).astype(np.intp)
    counts = np.bincount(s, minlength=255 * SOURCE_BINS_PER_LEVEL + 1)
    sums = np.bincount(s, weights=f, minlength=255 * SOURCE_BINS_PER_LEVEL + 1)
    fit = (sums / np.maximum(counts, 1))[s]
    return float(np.sqrt(np.mean((f - fit) ** 2)) / total)


def affine_residual(fused_grey: np.ndarray, source_grey: np.ndarray) -> float:
    """RMS residual of the least-squares fit ``F ≈ a·S + b`` relative to the spread of F (sqrt(1 - r²))."""
    f, s = fused_grey.ravel(), source_grey.ravel()
    if f.std() == 0:
        return 0.0
    if s.std() == 0:
        return 1.0
    r = np.corrcoef(f, s)[0, 1]
    return float(np.sqrt(max(0.0, 1 - r * r)))


def motion(frames_grey) -> float:
    """Largest mean absolute change (grey levels) between consecutive frames; 0 for fewer than two frames."""
    largest, previous = 0.0, None
    for frame in frames_grey:
        if previous is not None:
            largest = max(largest, float(np.abs(frame - previous).mean()))
        previous = frame
    return largest


def frame_problem(path, fused_grey: np.ndarray, sources: dict[str, np.ndarray]) -> str | None:
    """The one line refusing this frame, or None. ``sources``: label -> grey source frame of the same size."""
    return constant_problem(path, fused_grey, sources) or mapped_source(path, fused_grey, sources)


def constant_problem(path, fused_grey: np.ndarray, sources: dict[str, np.ndarray]) -> str | None:
    """The line refusing a near-constant frame (unless every source is as flat), or None."""
    value = spread(fused_grey)
    if value < MIN_SPREAD and any(spread(s) >= MIN_SPREAD for s in sources.values()):
        return (f"{path}: near-constant frame (grey standard deviation {value:.2f} < {MIN_SPREAD}); a constant "
                f"image is not a fusion")
    return None


def mapped_source(path, fused_grey: np.ndarray, sources: dict[str, np.ndarray]) -> str | None:
    """The line saying this frame is one source up to a grey-level mapping, or None (a submission is refused when
    more than :data:`MAX_SOURCE_MAPPED_SHARE` of its frames are)."""
    for label, source in sources.items():
        if source.shape != fused_grey.shape or spread(source) < MIN_SPREAD:
            continue
        residual = source_residual(fused_grey, source)
        if residual < MIN_SOURCE_RESIDUAL:
            return (f"{path}: the frame is the {label} source up to a grey-level mapping (gain, offset, "
                    f"quantisation; residual {residual:.3f} of its spread < {MIN_SOURCE_RESIDUAL}); a copy of one "
                    f"source is not a fusion")
    return None


def frozen_problem(folder, fused_motion: float, source_motion: float, frames: int) -> str | None:
    """The one line refusing a clip whose frames do not change while its sources do, or None."""
    if frames > 1 and fused_motion < MAX_FROZEN_MOTION and source_motion > FROZEN_SOURCE_MOTION:
        return (f"{folder}: frozen video: consecutive fused frames differ by at most {fused_motion:.3f} grey "
                f"levels on average (< {MAX_FROZEN_MOTION}) over all {frames} frames while the sources change by "
                f"up to {source_motion:.2f}")
    return None
