"""The metric registry and the Metric contract every convention shares."""

from __future__ import annotations

import numpy as np
import pytest

from m3svd import metrics
from m3svd.metrics import Metric, MetricError, Sources


@pytest.fixture
def toy(monkeypatch):
    """A registry holding one metric: mean absolute difference to the IR source (lower is better)."""
    monkeypatch.setattr(metrics, "_REGISTRY", {})
    monkeypatch.setattr(metrics, "_loaded", True)
    calls = []

    def compute(sources: Sources, fused):
        ir = sources.memo(("toy", "ir"), lambda: calls.append(1) or sources.ir.astype(np.float64))
        grey = fused.mean(axis=-1) if fused.ndim == 4 else fused
        return np.where(grey.std(axis=(1, 2)) > 0, np.abs(grey - ir).mean(axis=(1, 2)), np.nan)

    metric = metrics.register(Metric("toy", "m3svd", compute, higher_is_better=False, value_range=(0, 255)))
    return metric, calls


def test_get_list_and_hints(toy):
    metric, _ = toy
    assert metrics.get("TOY") is metric and metrics.list() == [metric] and metric.lower_better
    with pytest.raises(MetricError, match="did you mean 'toy'"):
        metrics.get("tooy")
    with pytest.raises(MetricError, match=r"no metric 'brisque'.*get\('brisque', 'pyiqa'\)"):
        metrics.get("brisque")  # where a user looks first for a no-reference metric
    with pytest.raises(MetricError, match="no 'vifb' convention; it has m3svd"):
        metrics.get("toy", "vifb")
    with pytest.raises(ValueError, match="registered twice"):
        metrics.register(metric)


def test_batch_single_frames_and_memo(toy):
    metric, calls = toy
    rng = np.random.default_rng(0)
    ir = rng.integers(0, 256, (3, 8, 10), dtype=np.uint8)
    vi = rng.integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    fused = rng.integers(0, 256, (3, 8, 10), dtype=np.uint8)
    sources = Sources(ir, vi)
    batch = metric(fused, sources=sources)
    again = metric(fused[::-1], sources=Sources(ir[::-1], vi[::-1]))
    assert batch.shape == (3,) and np.allclose(again, batch[::-1])
    assert np.allclose([metric(fused[i], ir[i], vi[i])[0] for i in range(3)], batch)
    before = len(calls)
    metric(fused, sources=sources)
    assert len(calls) == before  # source work is done once per Sources object, not per call


def test_bad_input_is_one_clear_error(toy):
    metric, _ = toy
    ir, vi = np.zeros((8, 10), np.uint8), np.zeros((8, 10, 3), np.uint8)
    with pytest.raises(MetricError, match=r"fused frames \(1, 8, 9\) do not match sources \(1, 8, 10\)"):
        metric(np.zeros((8, 9), np.uint8), ir, vi)
    with pytest.raises(MetricError, match="expected uint8"):
        metric(np.zeros((8, 10)), ir, vi)
    with pytest.raises(MetricError, match="differ in size"):
        Sources(ir, np.zeros((8, 11, 3), np.uint8))
    with pytest.raises(MetricError, match="undefined on frame 0"):
        metric(np.full((8, 10), 7, np.uint8), ir, vi)  # the toy is undefined on constant frames: never a silent 0


def test_score_a_set_in_threads_gives_each_metrics_values():
    """``metrics.score`` (what ``m3svd evaluate`` calls) equals calling each metric, bit for bit, threaded or not."""
    rng = np.random.default_rng(1)
    ir = rng.integers(0, 256, (4, 40, 48), dtype=np.uint8)
    vi = rng.integers(0, 256, (4, 40, 48, 3), dtype=np.uint8)
    fused = ((ir.astype(np.int32) + vi[..., 1] + 1) // 2).astype(np.uint8)
    chosen = [m for m in metrics.list("cddfuse") if m.kind == "image"]
    alone = {m.name: m(fused, sources=Sources(ir, vi)) for m in chosen}
    for threads in (1, 3):
        scored = metrics.score(chosen, fused, Sources(ir, vi), threads=threads)
        assert list(scored) == [m.name for m in chosen]
        for name, values in scored.items():
            np.testing.assert_array_equal(values, alone[name], err_msg=f"{name}, {threads} threads")

    fused[2] = 9  # a constant frame: CC is undefined there
    cc = metrics.get("cc", "cddfuse")
    with pytest.raises(metrics.base.MetricUndefined, match="cc@cddfuse: undefined on frame 2"):
        metrics.score([cc], fused, Sources(ir, vi), threads=2)
    kept = metrics.score([cc], fused, Sources(ir, vi), threads=2, keep_undefined=True)["cc"]
    assert np.isnan(kept[2]) and np.isfinite(kept[[0, 1, 3]]).all()
    with pytest.raises(MetricError, match="names repeat"):
        metrics.score([cc, metrics.get("cc", "tang")], fused, Sources(ir, vi))
