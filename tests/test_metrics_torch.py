"""The torch path of the leaderboard metrics: the numpy registry's numbers, on CPU here and on CUDA when lent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import shared

from m3svd import metrics
from m3svd.data.frames import BT601
from m3svd.metrics.base import MetricError, MetricUndefined, Sources
from m3svd.metrics.conventions.m3svd import bt601_grey
from m3svd.metrics.torch_backend import METRICS, TorchScorer, grey

FLOAT32_RTOL = 1e-4  # measured ≤ 1.1e-5 (VIF, Nabf) on these frames; everything else ≤ 3e-7
FLOAT32_ATOL = 1e-7  # Nabf of a smooth fusion is ≈ 1e-6


def _clip(frames: int = 2) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    root = shared("m3svd", "test")
    read = lambda folder, i, flag: cv2.imread(str(root / folder / "0114_1611" / f"{i:04d}.png"), flag)  # noqa: E731
    ir = np.stack([read("infrared_Enhance", i, cv2.IMREAD_GRAYSCALE) for i in range(frames)])
    vi = np.stack([read("visible_Enhance", i, cv2.IMREAD_COLOR)[..., ::-1] for i in range(frames)])
    return ir[:, :240, :320].copy(), vi[:, :240, :320].copy()


def _candidates(ir: np.ndarray, vi: np.ndarray) -> dict[str, np.ndarray]:
    """Fusions with different character: smooth (low Nabf), max (sharp), noisy (artefacts: high Nabf)."""
    noise = np.random.default_rng(0).normal(0, 12, vi.shape)
    return {
        "average": ((vi.astype(np.int64) + ir[..., None]) // 2).astype(np.uint8),
        "max": np.maximum(vi, ir[..., None]),
        "noisy": np.clip(vi + noise, 0, 255).astype(np.uint8),
    }


@pytest.fixture(scope="module")
def frames():
    ir, vi = _clip()
    sources = Sources(ir=ir, vi=vi)
    fused = _candidates(ir, vi)
    reference = {(c, m): metrics.get(m)(f, sources=sources) for c, f in fused.items() for m in METRICS}
    return ir, vi, fused, reference


def _agree(scorer: TorchScorer, frames, rtol: float, atol: float = 0.0) -> None:
    ir, vi, fused, reference = frames
    sources = scorer.sources(ir=ir, vi=vi)
    for candidate, f in fused.items():
        got = scorer.score(f, sources=sources)
        for name in METRICS:
            np.testing.assert_allclose(got[name], reference[candidate, name], rtol=rtol, atol=atol,
                                       err_msg=f"{name} on the {candidate} fusion")


def test_float64_equals_the_numpy_registry(frames):
    _agree(TorchScorer(dtype=torch.float64), frames, rtol=1e-9)


def test_float32_within_stated_tolerance(frames):
    _agree(TorchScorer(dtype=torch.float32), frames, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_float64_and_float32(frames):
    _agree(TorchScorer(device="cuda", dtype=torch.float64), frames, rtol=1e-9)
    _agree(TorchScorer(device="cuda", dtype=torch.float32), frames, rtol=FLOAT32_RTOL, atol=FLOAT32_ATOL)


def test_grey_rounds_ties_like_the_numpy_reader():
    """RGB triples where a plain float64 weighted sum rounds differently from numpy's: the table gets them right."""
    levels = np.arange(256)
    rgb = np.stack(np.meshgrid(levels[::3], levels, levels, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.uint8)
    naive = np.rint(rgb[:, 0] * BT601[0] + rgb[:, 1] * BT601[1] + rgb[:, 2] * BT601[2]).astype(np.uint8)
    expected = bt601_grey(rgb[None, None])[0, 0]
    ties = rgb[naive != expected]
    assert len(ties) > 0  # the case the table exists for
    np.testing.assert_array_equal(grey(torch.from_numpy(ties[None, None]))[0, 0].numpy(), expected[naive != expected])


def test_sources_are_reused_across_candidates(frames):
    """A second candidate scored on the same TorchSources finds every source quantity memoised: the memo holds the
    very objects the first call made (a recomputation would replace them), and the values equal fresh sources'."""
    ir, vi, fused, _ = frames
    scorer = TorchScorer()
    sources = scorer.sources(ir=ir, vi=vi)
    scorer.score(fused["max"], sources=sources)
    made = dict(sources.memo)
    assert {"entropy", "ssim", "vif", "qabf", "nabf"} <= set(made)
    computed = []
    sources.memo = _Recording(made, computed)
    second = scorer.score(fused["noisy"], sources=sources)
    assert computed == [] and all(sources.memo[k] is made[k] for k in made)
    fresh = scorer.score(fused["noisy"], ir=ir, vi=vi)
    for name in METRICS:
        np.testing.assert_array_equal(second[name], fresh[name], err_msg=name)


class _Recording(dict):
    """A memo that records every key it has to compute (a miss), so a test can assert there were none."""

    def __init__(self, held, misses):
        super().__init__(held)
        self.misses = misses

    def __contains__(self, key):
        found = super().__contains__(key)
        if not found:
            self.misses.append(key)
        return found


def test_undefined_is_non_finite_never_zero(frames):
    ir, vi, _, _ = frames
    flat = np.full(vi.shape, 90, np.uint8)
    got = TorchScorer(["cc", "en"]).score(flat, ir=ir, vi=vi)
    assert not np.isfinite(got["cc"]).any()
    assert (got["en"] == 0).all()  # a constant frame's entropy is truly 0
    with pytest.raises(MetricUndefined):
        metrics.get("cc")(flat, ir=ir, vi=vi)


def test_errors_name_the_problem():
    ir = np.zeros((1, 16, 16), np.uint8)
    with pytest.raises(MetricError, match="no torch implementation of 'qcb'"):
        TorchScorer(["qcb"])
    with pytest.raises(MetricError, match=r"fused frames \(1, 8, 16\) do not match sources \(1, 16, 16\)"):
        TorchScorer().score(np.zeros((1, 8, 16), np.uint8), ir=ir, vi=ir)
    with pytest.raises(MetricError, match=r"fused: values must lie in \[0, 1\]"):
        TorchScorer().score(np.full((1, 16, 16), 255.0), ir=ir, vi=ir)  # 0-255 floats need data_range=255


def test_float_and_torch_inputs_score_as_their_uint8_levels(frames):
    ir, vi, fused, reference = frames
    scorer = TorchScorer(["en", "qabf", "ssim"])
    f = torch.from_numpy(fused["max"]).permute(0, 3, 1, 2).float() / 255  # N×C×H×W float in [0, 1]
    got = scorer.score(f, ir=torch.from_numpy(ir)[:, None].float() / 255, vi=torch.from_numpy(vi).permute(0, 3, 1, 2))
    for name in scorer.metrics:
        np.testing.assert_allclose(got[name], reference["max", name], rtol=1e-9, err_msg=name)


def test_score_with_a_device_is_the_one_path_for_both_backends(frames):
    """``metrics.score(..., device=)`` sends the metrics torch serves to torch and the rest (qcb, and every other
    convention's) to numpy, in one call and one result; values as numpy's to 1e-9; the upload is memoised on the
    Sources, so a second candidate reuses it."""
    ir, vi, fused, reference = frames
    sources = Sources(ir=ir, vi=vi)
    chosen = ["en", "qabf", "qcb", "ssim", "vif"]
    got = metrics.score(chosen, fused["max"], sources, device="cpu")
    assert list(got) == chosen
    for name in ("en", "qabf", "ssim", "vif"):
        np.testing.assert_allclose(got[name], reference["max", name], rtol=1e-9, err_msg=name)
    np.testing.assert_array_equal(got["qcb"], metrics.get("qcb")(fused["max"], sources=Sources(ir=ir, vi=vi)))
    uploaded = sources.memo(("torch", "cpu"), lambda: None)
    assert uploaded is not None and "ssim" in uploaded.memo  # torch's source-only work, kept for the next candidate
    metrics.score(chosen, fused["noisy"], sources, device="cpu")
    assert sources.memo(("torch", "cpu"), lambda: None) is uploaded
    vifb = metrics.score(["qabf"], fused["max"][0], ir=ir[0], vi=vi[0], convention="vifb", device="cpu")
    assert vifb == {"qabf": metrics.get("qabf", "vifb")(fused["max"][0], ir=ir[0], vi=vi[0])}  # numpy: no torch twin


def test_score_with_a_device_keeps_the_undefined_contract(frames):
    ir, vi, _, _ = frames
    flat = np.full(vi.shape, 90, np.uint8)
    with pytest.raises(MetricUndefined, match="cc@m3svd: undefined on frame 0"):
        metrics.score(["cc"], flat, ir=ir, vi=vi, device="cpu")
    kept = metrics.score(["cc", "en"], flat, ir=ir, vi=vi, device="cpu", keep_undefined=True)
    assert not np.isfinite(kept["cc"]).any() and (kept["en"] == 0).all()
