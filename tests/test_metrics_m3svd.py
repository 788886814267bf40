"""The leaderboard's ``m3svd`` convention: Tang's definitions where they are right, each bug fix shown."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import batched
from test_metrics_tang import RTOL, load_golden, read_item

from m3svd import metrics
from m3svd.data.frames import to_grey
from m3svd.metrics import MetricError, Sources
from m3svd.metrics.conventions import tang as T
from m3svd.metrics.conventions.m3svd import bt601_grey

UNCHANGED = ["cc", "en", "mef_ms_ssim", "mse", "scd", "sd", "sf", "vif"]
FIXED = ["ag", "fmi_dct", "fmi_edge", "fmi_pixel", "fmi_w", "mi", "ms_ssim", "nabf", "psnr", "qabf", "rmse", "ssim"]
ADDED = ["ce", "ei", "nmi", "qcb", "qcv", "viff"]  # not in Tang's toolbox; defined from their own lineage
ALL = sorted(UNCHANGED + FIXED + ADDED)
LOWER_BETTER = ("ce", "mse", "nabf", "qcv", "rmse")


def m3(name):
    return metrics.get(name, "m3svd")


def tang(name):
    return metrics.get(name, "tang")


# -- golden: unchanged metrics equal Tang's on Tang's grey arrays; fixed PSNR/AG differ by their exact factor --
def test_unchanged_metrics_equal_tang_golden_on_identical_grey():
    values, items = load_golden("tang/tang_octave.csv")
    errors = {name: [] for name in UNCHANGED + ["psnr", "ag"]}
    for item, expected in values.items():
        ir, vi, fused = (T.tang_grey(x[None])[0] for x in read_item(items[item]))
        sources = Sources(ir=ir, vi=vi)
        h, w = fused.shape
        for name in errors:
            if name not in expected:
                continue
            ours = float(m3(name)(fused, sources=sources))
            ref = expected[name]
            if name == "psnr":
                ref -= 20 * math.log10(255)  # the fix removes exactly the +48.13 dB
            elif name == "ag":
                ref *= (h - 1) * (w - 1) / (h * w)  # the fix divides the same sum by M*N
            errors[name].append((abs(ours - ref) / abs(ref), item, ours, ref))
    for name, errs in errors.items():
        e, item, ours, ref = max(errs)
        assert e <= max(RTOL[name], 1e-12), f"{name}: worst rel. err {e:.3e} on {item}: ours {ours!r}, ref {ref!r}"


# -- registry ----------------------------------------------------------------------------------------------
def test_registered_metrics_directions_and_documented_fixes():
    got = {m.name: m for m in metrics.list("m3svd") if m.kind == "image"}
    assert set(got) == set(ALL)
    for m in got.values():
        assert m.version == "1"
        assert m.higher_is_better == (m.name not in LOWER_BETTER), m.name
        assert ("Fix:" in m.description) == (m.name in FIXED), m.name
    assert metrics.get("ssim") is got["ssim"]  # m3svd is the default convention


# -- reader ------------------------------------------------------------------------------------------------
def test_grey_is_the_toolkits_bt601_float64_reader():
    rng = np.random.default_rng(3)
    colour = rng.integers(0, 256, (3, 17, 23, 3), dtype=np.uint8)
    colour[1] = colour[1, ..., :1]  # three identical channels
    assert np.array_equal(bt601_grey(colour), np.stack([to_grey(c) for c in colour]))
    assert np.array_equal(bt601_grey(colour[:, :, :, 0]), colour[:, :, :, 0])


# -- each fix, on a small example that shows the bug ---------------------------------------------------------
def _texture(h=40, w=48, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    return np.clip(120 + 50 * np.sin(x / 3.0 + y / 5.0) + rng.normal(0, 8, (h, w)), 0, 255).astype(np.uint8)


def test_fix_mi_no_saturation_of_levels_254_and_255():
    f = np.where(np.arange(64 * 64).reshape(64, 64) % 2 == 0, 254, 255).astype(np.uint8)
    # F = IR = VI, a two-level image: MI(F,S) = H(F) = 1 bit per source
    assert m3("mi")(f, ir=f, vi=f) == pytest.approx(2.0, abs=1e-12)
    # Tang's joint histogram merges 254 and 255 (H_AF = 0) while the marginals keep them apart: 1 + 1 - 0 per source
    assert tang("mi")(f, ir=f, vi=f) == pytest.approx(4.0, abs=1e-12)
    # away from 254/255 both agree, and MI(X, X) = H(X)
    g = _texture()
    assert m3("mi")(g, ir=g, vi=g) == pytest.approx(2 * m3("en")(g, ir=g, vi=g), rel=1e-12)
    assert m3("mi")(g, ir=g, vi=g) == tang("mi")(g, ir=g, vi=g)


def test_fix_psnr_is_the_standard_psnr():
    s = _texture()
    f = (s.astype(int) // 2 + 20).astype(np.uint8)
    mse255 = np.mean((f.astype(float) - s) ** 2)
    assert m3("psnr")(f, ir=s, vi=s) == pytest.approx(10 * math.log10(255**2 / mse255), rel=1e-12)
    assert tang("psnr")(f, ir=s, vi=s) == pytest.approx(10 * math.log10(255**2 / mse255) + 48.1308036, rel=1e-9)


def test_fix_ssim_constants_for_0_255_data():
    flat = np.full((40, 48), 100, np.uint8)
    y, x = np.mgrid[0:40, 0:48]
    f = (100 + ((x + y) % 2) * 2 - 1).astype(np.uint8)  # ±1 grain on a flat scene
    # Tang: C2 = 9e-4 against sigma_f^2 = 1, so barely visible grain is scored as total structural loss
    assert tang("ssim")(f, ir=flat, vi=flat) < 0.01
    assert m3("ssim")(f, ir=flat, vi=flat) > 0.95
    # and on ordinary content L = 255 agrees with a direct window-by-window SSIM (replicate padding, same-size map)
    a, b = _texture(20, 24, 1).astype(float), _texture(20, 24, 2).astype(float)
    g = np.outer(T.SSIM_KERNEL, T.SSIM_KERNEL)
    pa, pb = np.pad(a, 5, mode="edge"), np.pad(b, 5, mode="edge")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(20):
        for j in range(24):
            wa, wb = pa[i : i + 11, j : j + 11], pb[i : i + 11, j : j + 11]
            ma, mb = (g * wa).sum(), (g * wb).sum()
            va, vb = (g * (wa - ma) ** 2).sum(), (g * (wb - mb) ** 2).sum()
            cab = (g * (wa - ma) * (wb - mb)).sum()
            vals.append((2 * ma * mb + c1) * (2 * cab + c2) / ((ma * ma + mb * mb + c1) * (va + vb + c2)))
    ua, ub = a.astype(np.uint8), b.astype(np.uint8)
    assert m3("ssim")(ub, ir=ua, vi=ua) == pytest.approx(np.mean(vals), rel=1e-10)


def test_fix_nabf_scores_the_fused_image():
    ir, vi = _texture(seed=4), _texture(seed=5)
    # a fused image that *is* one source adds no artefacts: Nabf = 0 (nowhere is g_F above both sources)
    assert m3("nabf")(vi, ir=ir, vi=vi) == 0.0
    assert tang("nabf")(vi, ir=ir, vi=vi) > 0.01
    # Tang's value is Nabf with IR in the fused image's place and (VI, F) as the sources
    f = ((ir.astype(int) + vi) // 2).astype(np.uint8)
    assert tang("nabf")(f, ir=ir, vi=vi) == m3("nabf")(ir, ir=vi, vi=f)


def test_fix_qabf_equal_strength_scores_one():
    s = _texture(seed=6)
    # F = IR = VI: G = 1 and A = 1 at every pixel, so Qabf = Qg(1)·Qa(1) exactly
    expected = 0.9994 / (1 + math.exp(-15 * 0.5)) * 0.9879 / (1 + math.exp(-22 * 0.2))
    assert m3("qabf")(s, ir=s, vi=s) == pytest.approx(expected, rel=1e-12)
    # the lineage's G = g_F makes every edge stronger than 1 look saturated: a higher score than perfect
    assert tang("qabf")(s, ir=s, vi=s) > expected + 1e-4


def test_fix_ag_is_a_mean_over_pixels():
    h, w = 30, 50
    ramp = np.tile((np.arange(w) * 2).astype(np.uint8), (h, 1))  # gx = 2, gy = 0 everywhere
    assert m3("ag")(ramp, ir=ramp, vi=ramp) == pytest.approx(math.sqrt(2), rel=1e-14)
    assert tang("ag")(ramp, ir=ramp, vi=ramp) == pytest.approx(math.sqrt(2) * h * w / ((h - 1) * (w - 1)), rel=1e-14)


# -- edge cases --------------------------------------------------------------------------------------------
def _scene(n=2, h=48, w=56, seed=1):
    rng = np.random.default_rng(seed)
    base = _texture(h, w, seed).astype(float)
    ir = np.clip(base[None] + rng.normal(0, 12, (n, h, w)), 0, 255).astype(np.uint8)
    vi = np.clip(base[None, ..., None] * [1.1, 0.9, 0.7] + rng.normal(0, 15, (n, h, w, 3)), 0, 255).astype(np.uint8)
    fused = np.clip(0.5 * ir + 0.5 * vi.mean(axis=3) + rng.normal(0, 3, (n, h, w)), 0, 255).astype(np.uint8)
    return ir, vi, fused


def test_constant_fused_is_undefined_not_silently_zero():
    ir, vi, fused = _scene()
    with pytest.raises(MetricError, match="undefined"):
        m3("cc")(np.full_like(fused, 90), ir=ir, vi=vi)
    for name in ("vif", "cc", "scd"):
        with pytest.raises(MetricError, match="undefined"):
            m3(name)(fused, ir=np.full_like(ir, 50), vi=np.full_like(vi, 50))


@pytest.mark.parametrize("name", ALL)
def test_mismatched_sizes_raise(name):
    ir, vi, fused = _scene()
    with pytest.raises(MetricError):
        m3(name)(fused[:, 1:], ir=ir, vi=vi)
    with pytest.raises(MetricError):
        Sources(ir=ir[:, :-2], vi=vi)


@pytest.mark.parametrize("name", ALL)
def test_batch_singles_grey_rgb_and_memo(name):
    ir, vi, fused = _scene(h=170, w=176) if name == "ms_ssim" else _scene()  # 5 scales need >= 161 px
    metric = m3(name)
    sources = Sources(ir=ir, vi=vi)
    batch = metric(fused, sources=sources)  # frame by frame
    assert batch.shape == (2,) and batch[0] != batch[1]
    assert np.array_equal(batch, [metric(fused[i], ir=ir[i], vi=vi[i]) for i in range(2)])
    np.testing.assert_allclose(batched(metric, fused, Sources(ir=ir, vi=vi)), batch, rtol=1e-13, atol=0)
    assert np.array_equal(metric(np.repeat(fused[..., None], 3, axis=3), sources=sources), batch)
    colour = vi[:, :, ::-1].copy()
    assert np.array_equal(metric(colour, sources=sources), metric(bt601_grey(colour), sources=sources))
    # the two conventions share one Sources without mixing their memoised statistics
    tang(name if name in {m.name for m in metrics.list("tang")} else "en")(fused, sources=sources)
    assert np.array_equal(metric(fused, sources=sources), batch)
    assert all(key[0] in ("m3svd", "tang") for _, key in sources.memoised())
