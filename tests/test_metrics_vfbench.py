"""``vfbench`` convention: golden VF-Bench spatial metrics (96 items × 4) and edge cases."""

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

CONVENTION = "vfbench"
SHARED = SHARED_DATA.parent
GOLDEN = SHARED_DATA.parent / "golden"
NAMES = ("vif", "ssim", "mi", "qabf")
GOLDEN_NAME = {"vif": "VIF", "ssim": "SSIM", "mi": "MI", "qabf": "Qabf"}
# Golden README §3: VF-Bench keeps VIF's per-channel num/den and the per-channel MI in float32 (≈1e-7);
# observed max over the 96 items: VIF 1.5e-7, MI 1.3e-7, SSIM 3.5e-14, Qabf 3.7e-16.
RTOL = {"vif": 1e-6, "mi": 1e-6, "ssim": 1e-10, "qabf": 1e-10}


@pytest.fixture(scope="module")
def golden_run():
    """Every item scored once for all metrics; items that share sources share one ``Sources`` (its memo)."""
    subset, table = GOLDEN / "subset.csv", GOLDEN / "vfbench" / "vfbench.csv"
    if not subset.exists() or not table.exists():
        pytest.skip(f"golden data not available: {GOLDEN}")
    expected = {(r["id"], r["metric"]): float(r["value"]) for r in csv.DictReader(table.open())}
    by_sources = defaultdict(list)
    for item in csv.DictReader(subset.open()):
        by_sources[(item["ir_path"], item["vi_path"])].append(item)
    ours = {}
    for (ir_path, vi_path), group in by_sources.items():
        src = Sources(ir=to_grey(read_image(SHARED / ir_path)), vi=read_image(SHARED / vi_path))
        for item in group:
            fused = read_image(SHARED / item["fused_path"])
            for name in NAMES:
                ours[(item["id"], GOLDEN_NAME[name])] = float(get(name, CONVENTION)(fused, sources=src))
    return ours, expected


@pytest.mark.parametrize("name", NAMES)
def test_golden(golden_run, name):
    ours, expected = golden_run
    key = GOLDEN_NAME[name]
    errors = [(abs(v - expected[(i, m)]) / abs(expected[(i, m)]), i, v, expected[(i, m)])
              for (i, m), v in ours.items() if m == key]
    assert len(errors) == 96
    err, item, value, ref = max(errors)
    assert err <= RTOL[name], f"{name}: worst relative error {err:.3g} on {item} (ours {value!r}, golden {ref!r})"


def test_golden_covers_every_row(golden_run):
    ours, expected = golden_run
    assert set(ours) == set(expected)


def test_registry():
    got = {m.name: m for m in list_metrics(CONVENTION) if m.kind == "image"}
    assert set(got) == set(NAMES)
    assert all(m.higher_is_better and m.version == "1" and m.description for m in got.values())
    assert "MEAN" in got["vif"].description and "MEAN" in got["ssim"].description


# --------------------------------------------------------------------------------------------- edge cases


def test_channels_are_scored_separately():
    """A metric on an RGB triple = the channel mean of the metric on each channel stacked into grey."""
    ir, vi, fused = noise_triplets(n=1)
    for name in NAMES:
        metric = get(name, CONVENTION)
        per_channel = [metric(fused[..., c], ir=ir, vi=np.repeat(vi[..., c:c + 1], 3, axis=-1)) for c in range(3)]
        np.testing.assert_allclose(metric(fused, ir=ir, vi=vi), np.mean(per_channel), rtol=1e-13)


def test_ssim_of_identical_sources_is_one():
    ir, _, _ = noise_triplets()
    assert np.allclose(get("ssim", CONVENTION)(ir, ir=ir, vi=ir), 1.0, rtol=0, atol=1e-14)


def test_constant_fused_and_flat_sources():
    ir, vi, fused = noise_triplets()
    flat = np.full(ir.shape, 128, np.uint8)
    for name in NAMES:
        assert np.isfinite(get(name, CONVENTION)(flat, ir=ir, vi=vi)).all(), name
    assert np.array_equal(get("mi", CONVENTION)(flat, ir=ir, vi=vi), [0.0, 0.0])
    black = Sources(ir=np.zeros_like(ir), vi=np.zeros_like(vi))
    for name in ("vif", "qabf"):  # every channel 0/0 (VIF: NaN channels dropped, none left; Qabf: Σ g = 0)
        with pytest.raises(MetricError, match="undefined"):
            get(name, CONVENTION)(fused, sources=black)


def test_vif_drops_nan_channels():
    from m3svd.metrics.pixel import vifp_reference, vifp_terms

    ir, vi, fused = noise_triplets(n=1)
    vi_one_flat = vi.copy()
    vi_one_flat[..., 0] = 0
    ir_flat = np.zeros_like(ir)  # IR flat on every channel, VI flat on channel 0 only → channel 0 is NaN
    # IR flat: VIFp(IR→F) = 0/0 on every channel, so every channel is NaN and nothing is left
    with pytest.raises(MetricError, match="undefined"):
        get("vif", CONVENTION)(fused, ir=ir_flat, vi=vi_one_flat)
    # VI flat on one channel only: that channel is dropped, the other two averaged
    value = get("vif", CONVENTION)(fused, ir=ir, vi=vi_one_flat)
    parts = []
    for c in (1, 2):
        f = fused[..., c].astype(float)
        ni, di = vifp_terms(vifp_reference(ir.astype(float)), f)
        nv, dv = vifp_terms(vifp_reference(vi_one_flat[..., c].astype(float)), f)
        parts.append((ni[0] / di[0] + nv[0] / dv[0]) / 2)
    np.testing.assert_allclose(value, np.mean(parts), rtol=1e-13)


def test_mismatched_sizes_name_both_shapes():
    ir, vi, fused = noise_triplets()
    with pytest.raises(MetricError, match=r"\(2, 40, 50, 3\).*\(2, 48, 64\)"):
        get("ssim", CONVENTION)(fused[:, :40, :50], ir=ir, vi=vi)


@pytest.mark.parametrize("name", NAMES)
def test_grey_and_rgb_fused_agree(name):
    ir, vi, fused = noise_triplets()
    grey = fused[..., 2]
    metric = get(name, CONVENTION)
    assert np.array_equal(metric(grey, ir=ir, vi=vi), metric(np.repeat(grey[..., None], 3, axis=-1), ir=ir, vi=vi))


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
    again = metric(fused, sources=src)
    assert np.array_equal(again, batch)
    assert src.memoised().keys() == memo.keys() and all(src.memoised()[k] is memo[k] for k in memo)
    assert {(CONVENTION, "planes", "ir"), (CONVENTION, "planes", "vi")} <= {k for _, k in memo}
