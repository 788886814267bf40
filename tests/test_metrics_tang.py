"""The ``tang`` convention: golden values of Tang's toolbox under Octave, reader, edge cases."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA, batched

from m3svd import metrics
from m3svd.data.frames import read_image, to_grey
from m3svd.metrics import MetricError, Sources
from m3svd.metrics.conventions import tang as T

SHARED = SHARED_DATA.parent
GOLDEN = SHARED / "golden"

# CSV name -> registered name (the module docstring has the same table)
NAMES = {"EN": "en", "SD": "sd", "SF": "sf", "AG": "ag", "MI": "mi", "MSE": "mse", "PSNR": "psnr", "CC": "cc",
         "SCD": "scd", "VIF": "vif", "Qabf": "qabf", "SSIM": "ssim", "Nabf": "nabf", "MS_SSIM": "mef_ms_ssim"}
# Relative tolerances. Observed worst cases: EN..Nabf <= 5.2e-15, MI 3.7e-12, SCD 2.6e-11, MEF-MS-SSIM 6.7e-14,
# SSIM 3.7e-9 (Octave substitute; the README's own numpy check: 2.6e-9), VIF 7.6e-8 (separable OpenCV
# filtering vs Octave filter2 on an ill-conditioned sigma = E[x^2] - mu^2; the README's scipy check: 4.8e-8).
RTOL = {"en": 1e-12, "sd": 1e-12, "sf": 1e-12, "ag": 1e-12, "mi": 1e-10, "mse": 1e-12, "psnr": 1e-12,
        "cc": 1e-12, "scd": 1e-9, "vif": 5e-7, "qabf": 1e-12, "ssim": 5e-8, "nabf": 1e-12, "mef_ms_ssim": 1e-10}


def golden_path(*parts: str) -> Path:
    path = GOLDEN.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"golden data not available: {path} (the read-only ../shared/golden checkout)")
    return path


def load_golden(name: str) -> tuple[dict, dict]:
    """{id: {metric: value}} from ``golden/<name>``, and {id: subset row}."""
    values: dict = defaultdict(dict)
    with open(golden_path(name), newline="") as fh:
        for row in csv.DictReader(fh):
            values[row["id"]][NAMES[row["metric"]]] = float(row["value"])
    with open(golden_path("subset.csv"), newline="") as fh:
        items = {row["id"]: row for row in csv.DictReader(fh)}
    return dict(values), items


def read_item(row: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IR grey, VI as decoded (RGB), F as decoded (RGB or grey), the way the toolkit's readers give them."""
    ir = to_grey(read_image(SHARED / row["ir_path"]))
    return ir, read_image(SHARED / row["vi_path"]), read_image(SHARED / row["fused_path"])


def worst(errors: list[tuple[float, str, float, float]]) -> str:
    e, item, ours, ref = max(errors)
    return f"worst rel. err {e:.3e} on {item}: ours {ours!r}, golden {ref!r} ({len(errors)} items)"


@pytest.fixture(scope="module")
def tang_results():
    """Every golden item scored once for all its metrics: {metric: [(rel_err, id, ours, golden)]}."""
    values, items = load_golden("tang/tang_octave.csv")
    errors = defaultdict(list)
    for item, expected in values.items():
        ir, vi, fused = read_item(items[item])
        sources = Sources(ir=ir, vi=vi)
        for name, ref in expected.items():
            ours = float(metrics.get(name, "tang")(fused, sources=sources))
            errors[name].append((abs(ours - ref) / abs(ref), item, ours, ref))
    return errors


@pytest.mark.parametrize("name", sorted(RTOL))
def test_tang_matches_octave_golden(tang_results, name):
    errors = tang_results[name]
    assert len(errors) == (33 if name in ("nabf", "mef_ms_ssim") else 96)
    assert max(errors)[0] <= RTOL[name], worst(errors)


def test_golden_file_has_no_unmapped_metric():
    with open(golden_path("tang", "tang_octave.csv"), newline="") as fh:
        assert {row["metric"] for row in csv.DictReader(fh)} == set(NAMES)


# -- registry ----------------------------------------------------------------------------------------------
def test_registered_metrics_and_directions():
    got = {m.name: m for m in metrics.list("tang") if m.kind == "image"}
    assert set(got) == set(RTOL) | {"fmi_pixel", "fmi_dct", "fmi_w"}  # FMI: no golden rows
    for m in got.values():
        assert m.version == "1" and m.kind == "image" and m.convention == "tang"
        assert m.higher_is_better == (m.name not in ("mse", "nabf"))
        lo, hi = m.value_range
        assert lo < hi
    assert got["psnr"].value_range[0] == pytest.approx(20 * math.log10(255))


# -- reader ------------------------------------------------------------------------------------------------
def test_rgb2gray_weights_and_rounding():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30], [7, 7, 7], [255, 255, 255]]], np.uint8)
    expected = [round(255 * 0.298936021293775), round(255 * 0.587043074451121), round(255 * 0.114020904255103),
                math.floor(10 * 0.298936021293775 + 20 * 0.587043074451121 + 30 * 0.114020904255103 + 0.5), 7, 255]
    assert T.matlab_rgb2gray(rgb)[0].tolist() == expected


def test_grey_input_unchanged_and_identical_channels_exact():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (2, 16, 20), dtype=np.uint8)
    assert np.array_equal(T.tang_grey(grey), grey)
    assert np.array_equal(T.tang_grey(np.repeat(grey[..., None], 3, axis=3)), grey)


# -- edge cases --------------------------------------------------------------------------------------------
def _scene(n=2, h=48, w=56, seed=1):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 100 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0)
    ir = np.clip(base[None] + rng.normal(0, 12, (n, h, w)), 0, 255).astype(np.uint8)
    vi = np.clip(base[None, ..., None] * [1.1, 0.9, 0.7] + rng.normal(0, 15, (n, h, w, 3)), 0, 255).astype(np.uint8)
    fused = np.clip(0.5 * ir + 0.5 * vi.mean(axis=3) + rng.normal(0, 3, (n, h, w)), 0, 255).astype(np.uint8)
    return ir, vi, fused


ALL = sorted(RTOL)


def test_constant_fused_is_undefined_for_correlation_not_silently_zero():
    ir, vi, fused = _scene()
    flat = np.full_like(fused, 90)
    with pytest.raises(MetricError, match="undefined"):
        metrics.get("cc", "tang")(flat, ir=ir, vi=vi)
    for name in ("vif", "cc", "scd"):  # constant sources: no reference information, no correlation
        with pytest.raises(MetricError, match="undefined"):
            metrics.get(name, "tang")(fused, ir=np.full_like(ir, 50), vi=np.full_like(vi, 50))
    # zero-padded Sobel sees edges at the border of a constant image, so Qabf stays defined, as in MATLAB
    assert np.isfinite(metrics.get("qabf", "tang")(fused, ir=np.full_like(ir, 50), vi=np.full_like(vi, 50))).all()
    # metrics that are defined on a flat image give their true value, not an error
    assert metrics.get("en", "tang")(flat, ir=ir, vi=vi).tolist() == [0.0, 0.0]
    assert metrics.get("sd", "tang")(flat, ir=ir, vi=vi).tolist() == [0.0, 0.0]


def test_mef_ms_ssim_needs_three_scales_of_windows():
    ir, vi, fused = _scene(h=43, w=80)
    with pytest.raises(MetricError, match="44"):
        metrics.get("mef_ms_ssim", "tang")(fused, ir=ir, vi=vi)


@pytest.mark.parametrize("name", ALL)
def test_mismatched_sizes_raise(name):
    ir, vi, fused = _scene()
    with pytest.raises(MetricError):
        metrics.get(name, "tang")(fused[:, :-1], ir=ir, vi=vi)
    with pytest.raises(MetricError):
        metrics.get(name, "tang")(fused[:1], ir=ir, vi=vi)


@pytest.mark.parametrize("name", ALL)
def test_batch_equals_singles_and_grey_equals_replicated_rgb(name):
    ir, vi, fused = _scene()
    metric = metrics.get(name, "tang")
    batch = metric(fused, ir=ir, vi=vi)  # frame by frame
    singles = [metric(fused[i], ir=ir[i], vi=vi[i]) for i in range(len(fused))]
    assert batch.shape == (2,) and np.array_equal(batch, singles) and batch[0] != batch[1]
    np.testing.assert_allclose(batched(metric, fused, Sources(ir=ir, vi=vi)), batch, rtol=1e-13, atol=0)
    assert np.array_equal(metric(np.repeat(fused[..., None], 3, axis=3), ir=ir, vi=vi), batch)


@pytest.mark.parametrize("name", ALL)
def test_rgb_fused_is_scored_through_rgb2gray(name):
    ir, vi, _ = _scene()
    colour = vi[:, :, ::-1].copy()
    metric = metrics.get(name, "tang")
    grey = metric(T.matlab_rgb2gray(colour), ir=ir, vi=T.matlab_rgb2gray(vi))
    assert np.array_equal(metric(colour, ir=ir, vi=vi), grey)


@pytest.mark.parametrize("name", ALL)
def test_memo_reuse_is_identical(name):
    ir, vi, fused = _scene()
    metric = metrics.get(name, "tang")
    sources = Sources(ir=ir, vi=vi)
    first = metric(fused, sources=sources)
    keys = set(sources.memoised())
    if name not in ("en", "sd", "sf", "ag"):  # the fused-only metrics never touch the sources
        assert ("tang", "grey", "vi") in {k for _, k in keys}
    other = np.clip(fused.astype(int) + 5, 0, 255).astype(np.uint8)
    metric(other, sources=sources)
    assert set(sources.memoised()) == keys  # nothing fused-dependent is memoised
    assert np.array_equal(metric(fused, sources=sources), first)
    assert np.array_equal(metric(fused, ir=ir, vi=vi), first)
