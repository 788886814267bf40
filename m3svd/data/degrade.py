"""Seeded synthesis of M3SVD-like degraded inputs (striped, noisy IR; blurred VIS) from clean clips.

This is **not** the official M3SVD degradation: its generator and parameters were never published
(``docs/dataset-m3svd.md``). The defaults of :class:`DegradationParams` follow the measured
characterisation of the released pairs; :data:`TEMCOCO` follows the later TemCoCo scripts.
Outputs are versioned by :data:`DEGRADE_VERSION`, which changes whenever any output pixel would.

Randomness is drawn once per clip (a :class:`ClipPlan`) and per frame from ``(seed, stream, index)``
alone, so frame ``i`` is identical whether computed alone, in sequence, or in any DataLoader worker.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from m3svd.data.clip import Clip
from m3svd.data.frames import FrameSource, to_grey, to_rgb
from m3svd.errors import DataError

DEGRADE_VERSION = "m3svd-degrade-1"
BLURS = ("gaussian", "motion")

# Independent random streams under one seed: per-clip scalars, the stripe vector, per-frame IR and VIS noise.
_PLAN, _STRIPES, _IR_FRAME, _VI_FRAME = range(4)

Range = tuple[float, float]


@dataclass(frozen=True)
class DegradationParams:
    """Ranges (``lo, hi``, grey levels or pixels) from which each clip draws its parameters uniformly.

    Defaults match the measured M3SVD pairs (§10.2), measured at 640×480:

    - IR ``out = gain·clean + offset + stripes[column] + noise``: the affine fit of released noisy on clean
      IR gives ``a ≈ 0.95–1.12, b ≈ 29–31``, so gain and offset use those ranges (the resulting mean shift,
      ``b + (a−1)·mean``, spans the measured +29…+57 on bright clips); one zero-mean column-stripe vector
      per clip with std in 7.5–13, fixed in time and white across columns; per-pixel Gaussian noise with
      std in 10–15, independent per frame (the measured weak 0.1–0.23 frame-to-frame residual correlation
      is not modelled).
    - VIS: isotropic Gaussian blur with σ in 1–1.5 px (the best simple fit; ``vi_blur="motion"`` gives a
      linear motion kernel of ``vi_motion_length`` px at ``vi_motion_angle`` degrees instead), then a
      brightness offset in +4…+8. ``vi_kernel_size=None`` means an odd, centred ``2·ceil(3σ)+1`` kernel; an
      even size ``k`` puts taps at offsets ``−k/2 … k/2−1`` like TemCoCo.
    - ``low_light`` (off by default): after the offset, ``255·gain·(x/255)^gamma`` plus Gaussian noise of
      ``low_light_noise_std``, per frame and channel, for night-time VIS inputs.
    """

    ir_gain: Range = (0.95, 1.12)
    ir_offset: Range = (29.0, 31.0)
    ir_stripe_std: Range = (7.5, 13.0)
    ir_noise_std: Range = (10.0, 15.0)
    vi_blur: str = "gaussian"
    vi_blur_sigma: Range = (1.0, 1.5)
    vi_kernel_size: int | None = None
    vi_motion_length: Range = (5.0, 9.0)
    vi_motion_angle: Range = (0.0, 180.0)
    vi_offset: Range = (4.0, 8.0)
    low_light: float | None = None
    low_light_gamma: float = 1.5
    low_light_noise_std: float = 3.0

    def __post_init__(self):
        if self.vi_blur not in BLURS:
            raise ValueError(f"vi_blur must be one of {BLURS}, found {self.vi_blur!r}")
        for name, value in asdict(self).items():
            if isinstance(value, tuple) and not value[0] <= value[1]:
                raise ValueError(f"{name} must be a (low, high) range with low <= high, found {value!r}")
        if self.vi_kernel_size is not None and self.vi_kernel_size < 1:
            raise ValueError(f"vi_kernel_size must be positive, found {self.vi_kernel_size}")
        if self.low_light is not None and not 0 < self.low_light <= 1:
            raise ValueError(f"low_light must be a gain in (0, 1], found {self.low_light}")


TEMCOCO = DegradationParams(
    ir_gain=(1.0, 1.0),
    ir_offset=(0.0, 0.0),
    ir_stripe_std=(5.0, 14.0),
    ir_noise_std=(9.0, 13.0),
    vi_blur_sigma=(0.5, 3.5),
    vi_kernel_size=12,
    vi_offset=(0.0, 0.0),
)
"""TemCoCo's ``add_blur.py`` / ``add_stripe_noise.py`` (§10.3), as far as this parameter model allows.

Same: zero-mean IR noise and stripes with stds in TemCoCo's ranges, stripes fixed over rows and frames,
one σ ∈ U(0.5, 3.5) per clip, the even 12-tap Gaussian kernel with reflection padding. Different:
TemCoCo min–max normalises each IR frame to the full range first (here the clip keeps its own range);
draws integer stds (k ∈ 9…13, k′ ∈ 5…14; here uniform reals); truncates IR to uint8 (here rounded);
uses raw normal stripe samples (here standardised to the drawn std); and its unseeded global RNGs cannot
be reproduced, so outputs are never bit-identical to TemCoCo's.
"""


@dataclass(frozen=True, eq=False)
class ClipPlan:
    """Everything drawn once per clip: applied identically to every frame."""

    seed: int
    ir_gain: float
    ir_offset: float
    ir_noise_std: float
    stripes: np.ndarray  # (W,) float64, zero mean, added to every row of every frame
    vi_kernel: np.ndarray  # 2-D, sums to 1
    vi_offset: float
    low_light: float | None
    low_light_gamma: float
    low_light_noise_std: float
    drawn: dict  # the drawn stripe std and blur σ (or motion length and angle), for logs and tests


def _draw(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(*bounds))


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """Isotropic 2-D Gaussian taps at offsets ``−size//2 … size−1−size//2``, normalised to sum 1."""
    size = size or 2 * math.ceil(3 * sigma) + 1
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2.0 * sigma**2))
    kernel = np.outer(g, g)
    return kernel / kernel.sum()


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A straight line segment of ``length`` px at ``angle_deg``, bilinearly splatted, normalised to sum 1."""
    c = math.ceil((length + 1) / 2)  # room for the splat's +1 neighbour at either end
    size = 2 * c + 1
    t = np.linspace(-(length - 1) / 2, (length - 1) / 2, max(2, 8 * math.ceil(length)))
    x = c + t * math.cos(math.radians(angle_deg))
    y = c - t * math.sin(math.radians(angle_deg))
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    kernel = np.zeros((size, size))
    for dy, dx, w in ((0, 0, (1 - fx) * (1 - fy)), (0, 1, fx * (1 - fy)), (1, 0, (1 - fx) * fy), (1, 1, fx * fy)):
        np.add.at(kernel, (y0 + dy, x0 + dx), w)
    return kernel / kernel.sum()


def _stripes(seed: int, width: int, std: float) -> np.ndarray:
    z = np.random.default_rng([seed, _STRIPES]).standard_normal(width)
    z -= z.mean()
    spread = z.std()
    return z * (std / spread) if spread > 0 else z


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, found {seed!r}")


def plan_for(params: DegradationParams, seed: int, width: int) -> ClipPlan:
    """Draw one clip's parameters; only the stripe vector depends on ``width``, so IR and VIS plans agree."""
    _check_seed(seed)
    rng = np.random.default_rng([seed, _PLAN])
    ir_gain, ir_offset = _draw(rng, params.ir_gain), _draw(rng, params.ir_offset)
    stripe_std, noise_std = _draw(rng, params.ir_stripe_std), _draw(rng, params.ir_noise_std)
    # Every range is drawn, used or not, so switching the blur type leaves all other draws unchanged.
    sigma, length, angle = (_draw(rng, r) for r in (params.vi_blur_sigma, params.vi_motion_length,
                                                    params.vi_motion_angle))
    vi_offset = _draw(rng, params.vi_offset)
    if params.vi_blur == "gaussian":
        kernel, blur = gaussian_kernel(sigma, params.vi_kernel_size), {"sigma": sigma}
    else:
        kernel, blur = motion_kernel(length, angle), {"length": length, "angle": angle}
    return ClipPlan(
        seed=int(seed), ir_gain=ir_gain, ir_offset=ir_offset, ir_noise_std=noise_std,
        stripes=_stripes(int(seed), width, stripe_std), vi_kernel=kernel, vi_offset=vi_offset,
        low_light=params.low_light, low_light_gamma=params.low_light_gamma,
        low_light_noise_std=params.low_light_noise_std if params.low_light is not None else 0.0,
        drawn={"stripe_std": stripe_std, **blur},
    )


def _frame_rng(plan: ClipPlan, stream: int, index: int) -> np.random.Generator:
    if index < 0:
        raise IndexError(f"frame index must be non-negative, found {index}")
    return np.random.default_rng([plan.seed, stream, int(index)])


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def degrade_ir(frame: np.ndarray, index: int, plan: ClipPlan) -> np.ndarray:
    """Grey ``H×W`` frame ``index`` of the clip: gain, offset, fixed column stripes, fresh Gaussian noise."""
    if frame.ndim != 2 or frame.shape[1] != plan.stripes.size:
        raise DataError(f"expected a grey H×{plan.stripes.size} IR frame, found shape {frame.shape}")
    noise = _frame_rng(plan, _IR_FRAME, index).standard_normal(frame.shape)
    x = frame.astype(np.float64) * plan.ir_gain + plan.ir_offset + plan.stripes + noise * plan.ir_noise_std
    return _to_uint8(x)


def degrade_vi(frame: np.ndarray, index: int, plan: ClipPlan) -> np.ndarray:
    """RGB ``H×W×3`` frame ``index``: blur (reflect-101 borders), offset, then optional low light and noise."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise DataError(f"expected an RGB H×W×3 VIS frame, found shape {frame.shape}")
    x = cv2.filter2D(frame.astype(np.float64), -1, plan.vi_kernel, borderType=cv2.BORDER_REFLECT_101)
    x += plan.vi_offset
    if plan.low_light is not None:
        x = 255.0 * plan.low_light * (np.clip(x, 0, 255) / 255.0) ** plan.low_light_gamma
    if plan.low_light_noise_std > 0:
        x += _frame_rng(plan, _VI_FRAME, index).standard_normal(x.shape) * plan.low_light_noise_std
    return _to_uint8(x)


class DegradedFrames(FrameSource):
    """A clean source degraded on read: it pickles as that source plus parameters and seed (DataLoader workers)."""

    def __init__(self, base: FrameSource, modality: str, params: DegradationParams, seed: int):
        if modality not in ("ir", "vi"):
            raise ValueError(f"modality must be 'ir' or 'vi', found {modality!r}")
        self.base, self.modality, self.params, self.seed = base, modality, params, seed
        self._plan: ClipPlan | None = None

    @property
    def lossy(self) -> bool:  # type: ignore[override]
        return self.base.lossy

    @property
    def fps(self) -> float | None:  # type: ignore[override]
        return self.base.fps

    def __len__(self) -> int:
        return len(self.base)

    def plan(self, width: int) -> ClipPlan:
        if self._plan is None or self._plan.stripes.size != width:
            self._plan = plan_for(self.params, self.seed, width)
        return self._plan

    def read(self, i: int) -> np.ndarray:
        i = self._check_index(i)
        frame = self.base.read(i)
        if self.modality == "ir":
            frame = to_grey(frame)
            return degrade_ir(frame, i, self.plan(frame.shape[1]))
        frame = to_rgb(frame)
        return degrade_vi(frame, i, self.plan(frame.shape[1]))

    def identity(self) -> str:
        return f"{self.base.identity()} {self.modality} {DEGRADE_VERSION} {self.seed} {self.params}"

    def describe(self) -> str:
        return f"{self.base.describe()} degraded ({DEGRADE_VERSION}, seed {self.seed}; synthetic, not official)"


def degrade_clip(clip: Clip, seed: int = 0, params: DegradationParams = DegradationParams()) -> Clip:
    """A lazy degraded copy of a clean clip, carrying it as ``reference``; nothing is decoded here."""
    if clip.variant == "degraded":
        raise DataError(f"clip {clip.name}: expected a clean clip, found a degraded one (degrade its reference)")
    _check_seed(seed)  # now, not on the first read in some worker
    meta = {"degradation": {"version": DEGRADE_VERSION, "seed": int(seed), "params": asdict(params)}}
    return Clip(
        clip.name,
        DegradedFrames(clip.ir_source, "ir", params, seed),
        DegradedFrames(clip.vi_source, "vi", params, seed),
        split=clip.split, variant="degraded", layout=clip.layout, reference=clip,
        fps_override=clip.fps_override, strict=clip.strict, meta=meta,
    )


def training_clips(root, split: str | None, params: DegradationParams | None, seed: int):
    """``(clip set, split)`` a restoration-fusion recipe trains on: the clean clips of ``split`` degraded on the
    fly with ``params`` (each clip seeded from ``seed`` and its name), or, with ``params=None``, the dataset as
    it is (its own degraded variant). The synthetic sample and layouts without splits (TNO) train on every clip,
    so the split returned (None then) is the one to record."""
    from m3svd.data.layouts import ClipSet, open_dataset

    clipset = root if isinstance(root, ClipSet) else open_dataset(root)
    if clipset.layout == "sample" or clipset.splits == [None]:
        split = None
    if params is None:
        return clipset, split
    if split is not None:
        clipset.select(split)  # the one-line error for an unknown split
    clean = [c for c in clipset.clips if c.variant in (None, "clean") and (split is None or c.split == split)]
    degraded = [degrade_clip(c, seed=(int(seed) * 1_000_003 + zlib.crc32(c.name.encode())) % 2**31, params=params)
                for c in clean]
    return ClipSet(clipset.root, clipset.layout, degraded), split
