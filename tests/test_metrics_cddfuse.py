"""``cddfuse`` convention: golden CDDFuse ``Evaluator`` values (96 items × 13 metrics) and edge cases."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest
from conftest import SHARED_DATA, batched
from synthetic import noise_triplets

from m3svd.data.frames import read_image, to_grey
from m3svd.metrics import MetricError, Sources, get
from m3svd.metrics import list as list_metrics

CONVENTION = "cddfuse"
SHARED = SHARED_DATA.parent
GOLDEN = SHARED_DATA.parent / "golden"
NAMES = ("en", "sd", "sf", "ag", "mi", "mse", "cc", "psnr", "scd", "vif", "qabf", "ssim", "ssim_dr255")
GOLDEN_NAME = {"vif": "VIFF", "qabf": "Qabf", "ssim_dr255": "SSIM_dr255"}

# Relative tolerance against `value_f64_inputs` (float64 code on the reader's arrays). Observed max over the 96
# items: VIF 2.8e-8 (the reference's local variance E[x²]−μ² is ill-conditioned where it lands just above its
# 1e-10 threshold, and g = σ12/(σ1²+1e-10) amplifies it: separable vs scipy 2-D filtering moves such pixels);
# every other metric ≤ 3.1e-15.
RTOL_F64 = defaultdict(lambda: 1e-12, vif=1e-7)
# Against the faithful float32 `value` column (the README's observed float32-vs-float64 spread).
RTOL_F32 = defaultdict(lambda: 2e-6, ssim=1e-3)


def _golden_items():
    subset = GOLDEN / "subset.csv"
    table = GOLDEN / "cddfuse" / "cddfuse.csv"
    if not subset.exists() or not table.exists():
        pytest.skip(f"golden data not available: {GOLDEN}")
    items = list(csv.DictReader(subset.open()))
    expected = {(r["id"], r["metric"]): (float(r["value"]), float(r["value_f64_inputs"]))
                for r in csv.DictReader(table.open())}
    return items, expected


@pytest.fixture(scope="module")
def golden_run():
    """Every item scored once for all metrics; items that share sources share one ``Sources`` (its memo)."""
    items, expected = _golden_items()
    by_sources = defaultdict(list)
    for item in items:
        by_sources[(item["ir_path"], item["vi_path"])].append(item)
    ours = {}
    for (ir_path, vi_path), group in by_sources.items():
        src = Sources(ir=to_grey(read_image(SHARED / ir_path)), vi=read_image(SHARED / vi_path))
        for item in group:
            fused = read_image(SHARED / item["fused_path"])
            for name in NAMES:
                ours[(item["id"], name)] = float(get(name, CONVENTION)(fused, sources=src))
    return ours, expected


def _worst(ours, expected, name, column):
    key = GOLDEN_NAME.get(name, name.upper())
    errors = [(abs(v - expected[(i, key)][column]) / abs(expected[(i, key)][column]), i, v, expected[(i, key)][column])
              for (i, n), v in ours.items() if n == name]
    assert len(errors) == 96
    return max(errors)


@pytest.mark.parametrize("name", NAMES)
def test_golden_f64_inputs(golden_run, name):
    err, item, ours, ref = _worst(*golden_run, name, column=1)
    assert err <= RTOL_F64[name], f"{name}: worst relative error {err:.3g} on {item} (ours {ours!r}, golden {ref!r})"


@pytest.mark.parametrize("name", NAMES)
def test_golden_faithful_float32_column(golden_run, name):
    err, item, ours, ref = _worst(*golden_run, name, column=0)
    assert err <= RTOL_F32[name], f"{name}: worst relative error {err:.3g} on {item} (ours {ours!r}, golden {ref!r})"


def test_golden_covers_every_row(golden_run):
    ours, expected = golden_run
    assert {(i, GOLDEN_NAME.get(n, n.upper())) for i, n in ours} == set(expected)


# --------------------------------------------------------------------------------------------- registry


def test_registry_and_directions():
    got = {m.name: m for m in list_metrics(CONVENTION)}
    assert set(got) == set(NAMES)
    for m in got.values():
        assert m.higher_is_better == (m.name != "mse")
        assert m.version == "1" and m.kind == "image" and m.description
        assert m.value_range[0] < m.value_range[1]
    assert "VIFp" in got["vif"].description and "data_range=2" in got["ssim"].description


def test_ssim_box_mean_is_scipys_uniform_filter_bit_for_bit():
    """SSIM with data_range=2 is ill-conditioned: the transposed column pass must not change one bit."""
    from scipy.ndimage import uniform_filter

    from m3svd.metrics.conventions.cddfuse import _box

    rng = np.random.default_rng(3)
    for shape in [(2, 48, 64), (1, 480, 640), (1, 5, 9), (1, 1, 7), (1, 30, 1)]:
        x = rng.standard_normal(shape) * 100
        expected = uniform_filter(x, size=(1, 7, 7))
        assert np.array_equal(_box(x), expected)
        assert np.array_equal(_box(x, out=x), expected)  # in place, as the SSIM cross term uses it


def test_ssim_integer_box_mean_is_scipys_uniform_filter_bit_for_bit():
    """The SSIM planes (grey levels, their squares and cross products) take the transpose-free box: it must give
    scipy's doubles too, borders and tiny planes included."""
    from scipy.ndimage import uniform_filter

    from m3svd.metrics.conventions.cddfuse import _box_integer

    rng = np.random.default_rng(4)
    for shape in [(2, 48, 64), (1, 480, 640), (1, 5, 9), (1, 1, 7), (1, 30, 1), (1, 3, 3)]:
        for top in (255, 255 * 255):
            x = rng.integers(0, top + 1, shape).astype(np.float64)
            expected = uniform_filter(x, size=(1, 7, 7))
            assert np.array_equal(_box_integer(x), expected)
            assert np.array_equal(_box_integer(x, out=x), expected)


# --------------------------------------------------------------------------------------------- edge cases


def test_grey_conversion_is_the_opencv_float32_reader():
    from m3svd.metrics.conventions.cddfuse import read_grey

    _, vi, _ = noise_triplets()
    f = vi.astype(np.float64)
    approx = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    grey = read_grey(vi)
    assert grey.dtype == np.float64 and np.array_equal(grey, np.round(grey))
    assert np.abs(grey - approx).max() <= 0.5 + 1e-4
    grey_in = vi[..., 0]
    assert np.array_equal(read_grey(grey_in), grey_in.astype(np.float64))
    assert np.array_equal(read_grey(np.repeat(grey_in[..., None], 3, axis=-1)), grey_in)


def test_constant_fused_image():
    ir, vi, _ = noise_triplets()
    flat = np.full(ir.shape, 128, np.uint8)
    src = Sources(ir=ir, vi=vi)
    with pytest.raises(MetricError, match="undefined"):
        get("cc", CONVENTION)(flat, sources=src)
    with pytest.raises(MetricError, match="undefined"):  # peak max(F) = 0 → log10(0)
        get("psnr", CONVENTION)(np.zeros_like(flat), sources=src)
    assert np.array_equal(get("en", CONVENTION)(flat, sources=src), [0.0, 0.0])
    assert np.array_equal(get("sd", CONVENTION)(flat, sources=src), [0.0, 0.0])
    assert np.array_equal(get("mi", CONVENTION)(flat, sources=src), [0.0, 0.0])  # sklearn: 0 for one label
    for name in ("sf", "ag", "mse", "psnr", "scd", "vif", "qabf", "ssim", "ssim_dr255"):
        assert np.isfinite(get(name, CONVENTION)(flat, sources=src)).all(), name


def test_flat_sources_vif_maps_nan_to_one():
    ir, vi, fused = noise_triplets()
    src = Sources(ir=np.full_like(ir, 7), vi=np.full_like(vi, 200))
    assert np.array_equal(get("vif", CONVENTION)(fused, sources=src), [2.0, 2.0])  # 0/0 → 1.0 per source
    assert np.isfinite(get("qabf", CONVENTION)(fused, sources=src)).all()  # zero padding: edges at the border
    black = Sources(ir=np.zeros_like(ir), vi=np.zeros_like(vi))
    with pytest.raises(MetricError, match="undefined"):  # Σ(g_A + g_B) = 0
        get("qabf", CONVENTION)(fused, sources=black)


def test_mismatched_sizes_name_both_shapes():
    ir, vi, fused = noise_triplets()
    small = fused[:, :40, :50]
    with pytest.raises(MetricError, match=r"\(2, 40, 50, 3\).*\(2, 48, 64\)"):
        get("qabf", CONVENTION)(small, ir=ir, vi=vi)
    with pytest.raises(MetricError, match=r"\(2, 48, 64\).*\(2, 40, 50, 3\)"):
        Sources(ir=ir, vi=vi[:, :40, :50])
    with pytest.raises(MetricError, match=r"fused: values must lie in \[0, 1\].*pass the data_range"):
        get("en", CONVENTION)(fused.astype(np.float32), ir=ir, vi=vi)  # 0-255 floats, data_range left at 1
    assert np.array_equal(get("en", CONVENTION)(fused.astype(np.float32), ir=ir, vi=vi, data_range=255),
                          get("en", CONVENTION)(fused, ir=ir, vi=vi))


@pytest.mark.parametrize("name", NAMES)
def test_grey_and_rgb_fused_agree(name):
    ir, vi, fused = noise_triplets()
    grey = fused[..., 1]
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    metric = get(name, CONVENTION)
    assert np.array_equal(metric(grey, ir=ir, vi=vi), metric(rgb, ir=ir, vi=vi))


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_single_calls_and_memo(name):
    ir, vi, fused = noise_triplets(n=3, seed=1)
    metric = get(name, CONVENTION)
    src = Sources(ir=ir, vi=vi)
    batch = metric(fused, sources=src)  # frame by frame
    single = np.array([metric(fused[i], ir=ir[i], vi=vi[i]) for i in range(3)])
    np.testing.assert_array_equal(batch, single)
    np.testing.assert_allclose(batched(metric, fused, Sources(ir=ir, vi=vi)), batch, rtol=1e-13, atol=0)
    assert len(set(batch)) == 3  # the frames really differ
    memo = src.memoised()
    again = metric(fused, sources=src)  # memoised source quantities reused, nothing recomputed
    assert np.array_equal(again, batch)
    assert src.memoised().keys() == memo.keys() and all(src.memoised()[k] is memo[k] for k in memo)
    keys = {k for _, k in memo}
    assert all(k[0] == CONVENTION for k in keys)
    if name not in ("en", "sd", "sf", "ag"):  # the sources' grey, as float64 or as its uint8 levels (mi, qabf)
        assert all({(CONVENTION, "grey", s), (CONVENTION, "levels8", s)} & keys for s in ("ir", "vi"))
