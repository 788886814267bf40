"""Synthetic degradations: reproducible per frame, lazy, picklable, and matching the documented statistics."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from m3svd.data.clip import Clip
from m3svd.data.degrade import (
    DEGRADE_VERSION,
    TEMCOCO,
    DegradationParams,
    degrade_clip,
    degrade_ir,
    degrade_vi,
    motion_kernel,
    plan_for,
)
from m3svd.data.frames import ArrayFrames
from m3svd.data.sample import make_sample
from m3svd.errors import DataError

DEFAULTS = DegradationParams()
FRAMES = 12  # enough for the statistics, few enough to stay fast


class CountingFrames(ArrayFrames):
    """An in-memory source that counts decodes, to prove laziness."""

    def __init__(self, frames, fps=None):
        super().__init__(frames, fps)
        self.reads = 0

    def read(self, i):
        self.reads += 1
        return super().read(i)


@pytest.fixture(scope="module")
def sample():
    return make_sample(frames=FRAMES)


@pytest.fixture
def clean(sample):
    return Clip("s", ArrayFrames(sample.ir, 30.0), ArrayFrames(sample.vi, 30.0), split="test", variant="clean",
                layout="sample")


def _stack(clip, which, order=None):
    read = clip.ir if which == "ir" else clip.vi
    return np.stack([read(i) for i in (order if order is not None else range(len(clip)))])


def _ir_stats(clean: np.ndarray, degraded: np.ndarray, lo: int = 40, hi: int = 120) -> dict:
    """Fit ``degraded = a·clean + b + stripes[column] + noise`` on pixels far from clipping (``lo..hi``)."""
    c, d = clean.astype(np.float64), degraded.astype(np.float64)
    ok = (c >= lo) & (c <= hi)
    a, b = np.polyfit(c[ok], d[ok], 1)
    r = np.where(ok, d - a * c - b, np.nan)
    stripes = np.nanmean(r, axis=(0, 1))
    return {"gain": a, "offset": b, "stripe_std": np.nanstd(stripes), "noise_std": np.nanstd(r - stripes)}


def _gradient_energy(frames: np.ndarray) -> float:
    grey = frames.astype(np.float64).mean(axis=-1)
    return float((np.diff(grey, axis=-1) ** 2).mean() + (np.diff(grey, axis=-2) ** 2).mean())


# -- reproducibility -------------------------------------------------------------------------------------
def test_same_seed_same_frames_other_seed_differs(clean):
    a, b, other = degrade_clip(clean, seed=3), degrade_clip(clean, seed=3), degrade_clip(clean, seed=4)
    for which in ("ir", "vi"):
        assert np.array_equal(_stack(a, which), _stack(b, which))
        assert not np.array_equal(_stack(a, which), _stack(other, which))


def test_frame_alone_equals_frame_in_sequence(clean):
    alone = degrade_clip(clean, seed=5)
    seven_ir, seven_vi = alone.ir(7), alone.vi(7)
    in_order = degrade_clip(clean, seed=5)
    forward_ir, forward_vi = _stack(in_order, "ir"), _stack(in_order, "vi")
    assert np.array_equal(seven_ir, forward_ir[7]) and np.array_equal(seven_vi, forward_vi[7])
    backward = degrade_clip(clean, seed=5)
    order = list(reversed(range(FRAMES)))
    assert np.array_equal(_stack(backward, "ir", order)[::-1], forward_ir)
    assert np.array_equal(backward.ir(-1), forward_ir[-1])  # negative indices name the same frame


def test_functions_match_the_clip(clean, sample):
    plan = plan_for(DEFAULTS, 2, sample.ir.shape[2])
    degraded = degrade_clip(clean, seed=2)
    assert np.array_equal(degrade_ir(sample.ir[4], 4, plan), degraded.ir(4))
    assert np.array_equal(degrade_vi(sample.vi[4], 4, plan), degraded.vi(4))


def test_three_channel_ir_source_degrades_like_grey(clean, sample):
    rgb_ir = Clip("s", ArrayFrames(np.repeat(sample.ir[..., None], 3, axis=3)), ArrayFrames(sample.vi))
    assert np.array_equal(degrade_clip(rgb_ir, seed=1).ir(2), degrade_clip(clean, seed=1).ir(2))


# -- measured characterisation (specs §10.2) -------------------------------------------------------------
def test_stripes_are_fixed_in_time(clean, sample):
    ir = _stack(degrade_clip(clean, seed=0), "ir").astype(np.float64)
    diff = ir - sample.ir
    first, last = diff[0].mean(axis=0), diff[-1].mean(axis=0)
    assert np.corrcoef(first, last)[0, 1] > 0.9
    static = sample.ir[0] == sample.ir[1]  # background: only the noise may change between frames
    fresh = (ir[0] - ir[1])[static & (sample.ir[0] >= 40) & (sample.ir[0] <= 120)]
    noise_std = plan_for(DEFAULTS, 0, ir.shape[2]).ir_noise_std
    assert fresh.std() == pytest.approx(np.sqrt(2) * noise_std, rel=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ir_statistics_within_documented_ranges(clean, sample, seed):
    stats = _ir_stats(sample.ir, _stack(degrade_clip(clean, seed=seed), "ir"))
    plan = plan_for(DEFAULTS, seed, sample.ir.shape[2])
    assert DEFAULTS.ir_gain[0] - 0.01 <= stats["gain"] <= DEFAULTS.ir_gain[1] + 0.01
    assert DEFAULTS.ir_offset[0] - 1.0 <= stats["offset"] <= DEFAULTS.ir_offset[1] + 1.0
    assert 7.5 <= stats["stripe_std"] <= 13.0 and 10.0 <= stats["noise_std"] <= 15.2
    assert stats["gain"] == pytest.approx(plan.ir_gain, abs=0.01)
    assert stats["offset"] == pytest.approx(plan.ir_offset, abs=1.0)
    assert stats["stripe_std"] == pytest.approx(plan.drawn["stripe_std"], rel=0.03)
    assert stats["noise_std"] == pytest.approx(plan.ir_noise_std, rel=0.03)
    assert abs(plan.stripes.mean()) < 1e-9 and plan.stripes.std() == pytest.approx(plan.drawn["stripe_std"])


@pytest.mark.parametrize("seed", [0, 1])
def test_vis_offset_and_gradient_drop_within_documented_ranges(clean, sample, seed):
    vi = _stack(degrade_clip(clean, seed=seed), "vi")
    plan = plan_for(DEFAULTS, seed, sample.vi.shape[2])
    normal = [t for t in range(FRAMES) if t not in sample.truth["low_light_frames"]]
    offset = float((vi[normal].astype(np.float64) - sample.vi[normal]).mean())
    assert 4.0 <= offset <= 8.0 and offset == pytest.approx(plan.vi_offset, abs=0.3)
    drop = _gradient_energy(sample.vi[normal]) / _gradient_energy(vi[normal])
    assert 2.5 <= drop <= 3.5, f"σ={plan.drawn['sigma']:.2f}"
    assert 1.0 <= plan.drawn["sigma"] <= 1.5


def test_gradient_drop_spans_the_measured_range_across_sigma(sample):
    """At the middle of the default σ range the sample loses the middle of the measured 2.5–3.5× drop."""
    frames = sample.vi[:6]
    drops = {}
    for sigma in (1.0, 1.25, 1.5):
        plan = plan_for(DegradationParams(vi_blur_sigma=(sigma, sigma)), 0, frames.shape[2])
        blurred = np.stack([degrade_vi(f, i, plan) for i, f in enumerate(frames)])
        drops[sigma] = _gradient_energy(frames) / _gradient_energy(blurred)
    assert drops[1.0] < drops[1.25] < drops[1.5]
    assert 2.5 <= drops[1.25] <= 3.5


# -- laziness, pickling, metadata ------------------------------------------------------------------------
def test_degrade_clip_is_lazy(sample):
    ir, vi = CountingFrames(sample.ir), CountingFrames(sample.vi)
    degraded = degrade_clip(Clip("s", ir, vi, variant="clean"), seed=1)
    assert len(degraded) == FRAMES and degraded.fps is None
    assert ir.reads == vi.reads == 0
    degraded.ir(3)
    assert (ir.reads, vi.reads) == (1, 0)


def test_pickle_round_trip_gives_identical_frames(clean):
    degraded = degrade_clip(clean, seed=9)
    before = degraded.ir(2), degraded.vi(2)
    copy = pickle.loads(pickle.dumps(degraded))
    assert np.array_equal(copy.ir(2), before[0]) and np.array_equal(copy.vi(2), before[1])
    fresh = pickle.loads(pickle.dumps(degrade_clip(clean, seed=9)))  # pickled before any read
    assert np.array_equal(fresh.vi(2), before[1])


def test_clip_metadata_and_reference(clean):
    degraded = degrade_clip(clean, seed=7, params=TEMCOCO)
    assert degraded.variant == "degraded" and degraded.reference is clean
    assert (degraded.name, degraded.split, degraded.layout, degraded.fps) == ("s", "test", "sample", 30.0)
    record = degraded.meta["degradation"]
    assert record["version"] == DEGRADE_VERSION == "m3svd-degrade-1" and record["seed"] == 7
    assert record["params"]["vi_kernel_size"] == 12 and record["params"]["ir_offset"] == (0.0, 0.0)
    assert not degraded.lossy
    text = degraded.ir_source.describe()
    assert DEGRADE_VERSION in text and "seed 7" in text and "not official" in text


def test_lossy_follows_the_base_source(sample):
    class LossyFrames(ArrayFrames):
        lossy = True

    degraded = degrade_clip(Clip("s", LossyFrames(sample.ir), ArrayFrames(sample.vi)))
    assert degraded.ir_source.lossy and not degraded.vi_source.lossy and degraded.lossy


def test_bad_inputs_are_refused(clean, sample):
    degraded = degrade_clip(clean)
    with pytest.raises(DataError, match="expected a clean clip"):
        degrade_clip(degraded)
    with pytest.raises(ValueError, match="seed"):
        degrade_clip(clean, seed=-1)
    with pytest.raises(ValueError, match="ir_noise_std"):
        DegradationParams(ir_noise_std=(15.0, 10.0))
    with pytest.raises(ValueError, match="vi_blur"):
        DegradationParams(vi_blur="box")
    with pytest.raises(DataError, match="H×64"):
        degrade_ir(sample.ir[0], 0, plan_for(DEFAULTS, 0, 64))


# -- options and the TemCoCo preset ----------------------------------------------------------------------
def test_temcoco_blur_matches_reflect_pad_conv(sample):
    """Kernel 12 with taps at −6…+5 and reflection padding (6, 5), as in TemCoCo's add_blur.py."""
    plan = plan_for(TEMCOCO, 11, sample.vi.shape[2])
    sigma = plan.drawn["sigma"]
    assert 0.5 <= sigma <= 3.5 and plan.vi_offset == 0.0
    taps = np.exp(-((np.arange(12) - 6.0) ** 2) / (2 * sigma**2))
    kernel = torch.from_numpy(np.outer(taps, taps) / np.outer(taps, taps).sum())
    image = torch.from_numpy(sample.vi[0].astype(np.float64)).permute(2, 0, 1)[:, None]
    reference = F.conv2d(F.pad(image, (6, 5, 6, 5), mode="reflect"), kernel[None, None])
    expected = reference[:, 0].permute(1, 2, 0).round().clamp(0, 255).numpy().astype(np.uint8)
    mismatch = degrade_vi(sample.vi[0], 0, plan).astype(int) - expected
    assert np.abs(mismatch).max() <= 1 and (mismatch != 0).mean() < 1e-3


def test_temcoco_ir_is_zero_mean_noise(clean, sample):
    stats = _ir_stats(sample.ir, _stack(degrade_clip(clean, seed=4, params=TEMCOCO), "ir"), lo=70, hi=180)
    assert stats["gain"] == pytest.approx(1.0, abs=0.01) and stats["offset"] == pytest.approx(0.0, abs=1.0)
    assert 5.0 <= stats["stripe_std"] <= 14.0 and 9.0 <= stats["noise_std"] <= 13.2


def test_motion_blur_smears_along_its_direction(sample):
    kernel = motion_kernel(7.0, 0.0)
    assert kernel.sum() == pytest.approx(1.0) and np.count_nonzero(kernel.sum(axis=1)) <= 2
    plan = plan_for(DegradationParams(vi_blur="motion", vi_motion_length=(7, 7), vi_motion_angle=(0, 0)), 0, 320)
    grey, blurred = sample.vi[0].astype(np.float64).mean(axis=2), degrade_vi(sample.vi[0], 0, plan).mean(axis=2)
    horizontal = (np.diff(grey, axis=1) ** 2).mean() / (np.diff(blurred, axis=1) ** 2).mean()
    vertical = (np.diff(grey, axis=0) ** 2).mean() / (np.diff(blurred, axis=0) ** 2).mean()
    assert horizontal > 2.5 and vertical < 1.5 and "length" in plan.drawn


def test_low_light_darkens_reproducibly(clean, sample):
    dark = degrade_clip(clean, seed=1, params=DegradationParams(low_light=0.3))
    plain = degrade_clip(clean, seed=1)
    assert dark.vi(0).mean() < 0.35 * plain.vi(0).mean()
    assert np.array_equal(dark.vi(0), dark.vi(0)) and np.array_equal(dark.ir(0), plain.ir(0))
    assert not np.array_equal(dark.vi(0), dark.vi(1))
