"""The ``vifb`` convention against VIFB's stored MATLAB output, plus edge cases of the metric contract.

Golden data: ``../shared/golden/vifb/vifb_matlab.csv`` (483 image/method pairs × 13 metrics, MATLAB ``dlmwrite``
5 significant digits) with the fused JPEGs in ``fused_images/`` and the sources in ``../shared/data/vifb/input``.
Comparison: relative error ``|ours − stored| / |stored| ≤ 5e-5`` (the rounding of a 5-digit value); the failure
message also counts values whose ``'%.5g'`` formatting differs from the stored text.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, batched

import m3svd.metrics as metrics
from m3svd.data.frames import read_image, to_grey
from m3svd.metrics import MetricError, Sources

VIFB_NAMES = {
    "Avg_gradient": "ag", "Cross_entropy": "ce", "Edge_intensity": "ei", "Entropy": "en", "Mutinf": "mi",
    "Psnr": "psnr", "Qabf": "qabf", "Qcb": "qcb", "Qcv": "qcv", "Rmse": "rmse", "Spatial_frequency": "sf",
    "Ssim": "ssim", "Variance": "sd",
}
NAMES = sorted(VIFB_NAMES.values())
RTOL = 5e-5
FAST_METHODS = ("ADF", "SeAFusion")


def vifb(name: str) -> metrics.Metric:
    return metrics.get(name, "vifb")


# --------------------------------------------------------------------------------------------------------------
# Golden data
# --------------------------------------------------------------------------------------------------------------


def _golden_dir() -> Path:
    path = SHARED_DATA.parent / "golden" / "vifb"
    if not (path / "vifb_matlab.csv").exists() or not (SHARED_DATA / "vifb" / "input").exists():
        pytest.skip(f"golden data not available: {path} (the read-only ../shared checkout)")
    return path


@pytest.fixture(scope="module")
def golden() -> dict[tuple[str, str], dict[str, str]]:
    """(image, method) -> {toolkit metric name: stored MATLAB text}."""
    table: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    with open(_golden_dir() / "vifb_matlab.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            table[row["image"], row["method"]][VIFB_NAMES[row["metric"]]] = row["value"]
    return dict(table)


def _score(pairs: list[tuple[str, str]], golden) -> None:
    """Compute all 13 metrics once per pair (one Sources per image) and fail with the worst error per metric."""
    fused_dir = _golden_dir() / "fused_images"
    inputs = SHARED_DATA / "vifb" / "input"
    by_image: dict[str, list[str]] = defaultdict(list)
    for image, method in pairs:
        by_image[image].append(method)
    worst = {name: (0.0, "") for name in NAMES}
    digits_off = dict.fromkeys(NAMES, 0)
    failures = dict.fromkeys(NAMES, 0)
    out_of_range = []
    count = 0
    for image, methods in sorted(by_image.items()):
        # IR as stored: single-channel for 4 images, three identical channels for 17 (VIFB uses IR[:, :, k]).
        sources = Sources(ir=read_image(inputs / "IR" / f"{image}.jpg"), vi=read_image(inputs / "VI" / f"{image}.jpg"))
        for method in methods:
            fused = read_image(fused_dir / f"{image}_{method}.jpg")
            stored = golden[image, method]
            assert sorted(stored) == NAMES, (image, method)
            for name in NAMES:
                metric = vifb(name)
                ours = float(metric(fused, sources=sources))
                ref = float(stored[name])
                count += 1
                rel = abs(ours - ref) / abs(ref)
                if rel > worst[name][0]:
                    worst[name] = (rel, f"{image}_{method}: {ours!r} vs {stored[name]}")
                failures[name] += rel > RTOL
                digits_off[name] += f"{ours:.5g}" != stored[name]
                lo, hi = metric.value_range
                if not lo <= ours <= hi:
                    out_of_range.append(f"{name} {image}_{method} {ours}")
    assert count == 13 * len(pairs)
    report = "\n".join(f"  {n:5s} max rel {worst[n][0]:.2e}  >rtol {failures[n]:3d}  '%.5g' differs {digits_off[n]:3d}"
                       f"  worst {worst[n][1]}" for n in NAMES)
    assert not any(failures.values()), f"vifb metrics off the MATLAB values (rtol {RTOL}):\n{report}"
    assert not out_of_range, out_of_range[:5]


def test_golden_fast_subset(golden):
    """2 methods × all 21 images (42 pairs, 546 values)."""
    pairs = sorted(key for key in golden if key[1] in FAST_METHODS)
    assert len(pairs) == 42
    _score(pairs, golden)


@pytest.mark.slow
def test_golden_all_pairs(golden):
    """Every stored value: 483 pairs × 13 metrics = 6,279."""
    pairs = sorted(golden)
    assert len(pairs) == 483
    _score(pairs, golden)


def test_grey_ir_equals_three_channel_ir(golden):
    """A 3-channel IR with identical channels (17 VIFB images) scores as its single channel."""
    inputs = SHARED_DATA / "vifb" / "input"
    ir = read_image(inputs / "IR" / "carLight.jpg")
    assert ir.ndim == 3 and (ir[..., 0] == ir[..., 2]).all()
    vi = read_image(inputs / "VI" / "carLight.jpg")
    fused = read_image(_golden_dir() / "fused_images" / "carLight_ADF.jpg")
    rgb_ir, grey_ir = Sources(ir=ir, vi=vi), Sources(ir=ir[..., 0], vi=vi)
    for name in NAMES:
        np.testing.assert_allclose(vifb(name)(fused, sources=rgb_ir), vifb(name)(fused, sources=grey_ir),
                                   rtol=1e-12, err_msg=name)


# --------------------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------------------


def test_registered():
    registered = {m.name: m for m in metrics.list("vifb")}
    assert sorted(registered) == NAMES
    lower = {"ce", "qcv", "rmse"}
    for name, m in registered.items():
        assert m.convention == "vifb" and m.version == "1" and m.kind == "image"
        assert m.higher_is_better == (name not in lower), name
        assert m.lower_better == (name in lower)
        assert m.value_range[0] < m.value_range[1]
        assert m.description
    assert "Variance" in registered["sd"].description and "population" in registered["sd"].description
    assert metrics.get("QABF", "vifb") is registered["qabf"]


# --------------------------------------------------------------------------------------------------------------
# Edge cases (synthetic frames)
# --------------------------------------------------------------------------------------------------------------


def _texture(rng, shape, channels=None):
    """Smooth-ish random uint8 texture (gradients of many orientations, full dynamic range)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 127.5 + 60 * np.sin(x / 5 + rng.uniform(0, 6)) * np.cos(y / 7 + rng.uniform(0, 6))
    planes = []
    for _ in range(channels or 1):
        planes.append(np.clip(base + rng.normal(0, 25, shape), 0, 255).round().astype(np.uint8))
    return np.stack(planes, axis=-1) if channels else planes[0]


@pytest.fixture
def scene():
    rng = np.random.default_rng(7)
    ir = _texture(rng, (48, 56))
    vi = _texture(rng, (48, 56), channels=3)
    fused = _texture(rng, (48, 56), channels=3)
    return ir, vi, fused


DEFINED_ON_CONSTANT = {"ag": 0.0, "ce": None, "ei": 0.0, "en": 0.0, "mi": 0.0, "psnr": None, "qabf": None,
                       "rmse": None, "sd": 0.0, "sf": 0.0, "ssim": None}


@pytest.mark.parametrize("rgb", [False, True])
def test_constant_fused(scene, rgb):
    """Constant F: gradients, entropy, SD, SF and MI are exactly 0 (MI: a constant carries no information; VIFB's
    code maps a flat image to one label too); CE, PSNR, RMSE, SSIM, Qabf (zero padding makes borders edges) stay
    finite; Qcb and Qcv are undefined (normalize1 divides 0 by 0) and raise."""
    ir, vi, _ = scene
    fused = np.full(vi.shape if rgb else ir.shape, 128, np.uint8)
    sources = Sources(ir=ir, vi=vi)
    for name, expected in DEFINED_ON_CONSTANT.items():
        value = vifb(name)(fused, sources=sources)
        assert np.isfinite(value), name
        if expected is not None:
            assert value == pytest.approx(expected, abs=1e-12), (name, value)
    for name in ("qcb", "qcv"):
        with pytest.raises(MetricError, match="undefined"):
            vifb(name)(fused, sources=sources)


def test_black_fused_normalize1_quirk(scene):
    """normalize1 keeps an all-zero image as is, so Qcv is defined on a black F; Qcb's contrast is 0/0 there."""
    ir, vi, _ = scene
    black = np.zeros(ir.shape, np.uint8)
    assert np.isfinite(vifb("qcv")(black, ir=ir, vi=vi))
    with pytest.raises(MetricError, match="undefined"):
        vifb("qcb")(black, ir=ir, vi=vi)


def test_identical_sources_and_fused(scene):
    """IR = VI = F: PSNR is infinite (raises), RMSE/CE/Qcv 0, SSIM 2, Qcb 1, MI = 2·H(F) in nats, and Qabf
    shows the g_S = g_F quirk: relative strength g_F (×255², huge) instead of 1, so Q_g = Γ_g exactly."""
    ir, _, _ = scene
    sources = Sources(ir=ir, vi=ir)
    with pytest.raises(MetricError, match="undefined"):
        vifb("psnr")(ir, sources=sources)
    assert vifb("rmse")(ir, sources=sources) == 0
    assert vifb("ce")(ir, sources=sources) == 0
    assert vifb("qcv")(ir, sources=sources) == 0
    assert vifb("ssim")(ir, sources=sources) == pytest.approx(2, abs=1e-12)
    assert vifb("qcb")(ir, sources=sources) == pytest.approx(1, abs=1e-12)
    p = np.bincount(ir.ravel(), minlength=256) / ir.size
    p = p[p > 0]
    assert vifb("mi")(ir, sources=sources) == pytest.approx(-2 * (p * np.log(p)).sum(), rel=1e-12)
    expected_qabf = 0.9994 * 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))
    assert vifb("qabf")(ir, sources=sources) == pytest.approx(expected_qabf, rel=1e-12)


def test_grey_vs_three_channel_fused(scene):
    """Grey sources: a grey F and the same F replicated to 3 channels score the same (3 identical passes,
    averaged), except SF, which VIFB computes on the channels side by side — the two seams add edges."""
    ir, vi, fused = scene
    vi_grey, f_grey = vi[..., 0], fused[..., 0]
    f_rgb = np.repeat(f_grey[..., None], 3, axis=2)
    sources = Sources(ir=ir, vi=vi_grey)
    for name in NAMES:
        grey, rgb = vifb(name)(f_grey, sources=sources), vifb(name)(f_rgb, sources=sources)
        if name == "sf":
            f = f_grey.astype(float)
            wide = np.concatenate([f, f, f], axis=1)
            expected = math.sqrt(((np.diff(wide, axis=1) ** 2).sum() + (np.diff(wide, axis=0) ** 2).sum())
                                 / wide.size)
            assert rgb == pytest.approx(expected, rel=1e-12)
            assert rgb != pytest.approx(grey, rel=1e-3)
        else:
            assert rgb == pytest.approx(grey, rel=1e-12), name


def test_grey_fused_with_rgb_visible(scene):
    """A grey F against an RGB VI is one pass with the toolkit's BT.601 grey VI."""
    ir, vi, fused = scene
    f_grey = fused[..., 1]
    for name in NAMES:
        np.testing.assert_allclose(vifb(name)(f_grey, ir=ir, vi=vi), vifb(name)(f_grey, ir=ir, vi=to_grey(vi)),
                                   rtol=1e-12, err_msg=name)


def test_per_channel_mean(scene):
    """RGB F is scored per channel against VI[..., k] and the same grey IR, then averaged."""
    ir, vi, fused = scene
    for name in NAMES:
        if name == "sf":
            continue
        per_channel = [vifb(name)(fused[..., k], ir=ir, vi=vi[..., k]) for k in range(3)]
        assert vifb(name)(fused, ir=ir, vi=vi) == pytest.approx(np.mean(per_channel), rel=1e-12), name


def test_mismatched_sizes(scene):
    ir, vi, fused = scene
    small = fused[:40]
    for name in NAMES:
        with pytest.raises(MetricError) as info:
            vifb(name)(small, ir=ir, vi=vi)
        message = str(info.value)
        assert str((1, 40, 56, 3)) in message and str((1, 48, 56)) in message, message
    with pytest.raises(MetricError, match="differ"):
        Sources(ir=ir[:40], vi=vi)


def test_batch_equals_single_calls():
    rng = np.random.default_rng(11)
    n = 3
    ir = np.stack([_texture(rng, (40, 52)) for _ in range(n)])
    vi = np.stack([_texture(rng, (40, 52), channels=3) for _ in range(n)])
    fused = np.stack([_texture(rng, (40, 52), channels=3) for _ in range(n)])
    for name in NAMES:
        batch = vifb(name)(fused, ir=ir, vi=vi)  # frame by frame
        assert batch.shape == (n,) and batch.dtype == np.float64
        singles = [vifb(name)(fused[i], ir=ir[i], vi=vi[i]) for i in range(n)]
        np.testing.assert_array_equal(batch, singles, err_msg=name)
        whole = batched(vifb(name), fused, Sources(ir=ir, vi=vi))  # the batched code, all frames in one call
        np.testing.assert_allclose(whole, batch, rtol=1e-12, err_msg=name)
        assert len(set(np.round(batch, 12))) == n, name  # the frames really differ


def test_memo_reuse(scene):
    """Scoring several candidates with one Sources fills the memo once and gives the values of fresh Sources."""
    ir, vi, fused = scene
    other = np.ascontiguousarray(fused[:, ::-1])
    shared = Sources(ir=ir, vi=vi)
    for name in NAMES:
        first = vifb(name)(fused, sources=shared)
        keys = set(shared.memoised())
        second = vifb(name)(other, sources=shared)
        assert set(shared.memoised()) == keys, name  # nothing new for a second candidate
        np.testing.assert_array_equal(first, vifb(name)(fused, ir=ir, vi=vi), err_msg=name)
        np.testing.assert_array_equal(second, vifb(name)(other, ir=ir, vi=vi), err_msg=name)
        np.testing.assert_array_equal(first, vifb(name)(fused, sources=shared), err_msg=name)
    keys = {key for _, key in shared.memoised()}
    assert all(key[0] == "vifb" for key in keys)
    assert {key[1] for key in keys} >= {"hist256", "mi_labels", "ssim_moments", "qabf_gradients",
                                                "qcb_contrast", "qcv_source"}


def test_too_small_for_ssim():
    rng = np.random.default_rng(3)
    ir, vi, fused = (_texture(rng, (8, 30)) for _ in range(3))
    with pytest.raises(MetricError, match="11×11"):
        vifb("ssim")(fused, ir=ir, vi=vi)
