"""Flow estimators, warping, the source-flow cache and the local-weights contract of the temporal metrics."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from m3svd import flow as fl
from m3svd import metrics
from m3svd.files import sha256_file
from m3svd.flow import raftnet as arch
from m3svd.flow.weights import WeightsMissing
from m3svd.metrics import MetricError
from m3svd.metrics.temporal import VideoSources


def texture(h=96, w=128, seed=0) -> np.ndarray:
    noise = np.random.default_rng(seed).random((h, w))
    return cv2.normalize(cv2.GaussianBlur(noise, (0, 0), 2.0), None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def shifted(img: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    """``img`` with its content moved by (dx, dy): out(x, y) = img(x - dx, y - dy)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, img.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """Every weight folder points at an empty place."""
    monkeypatch.setenv("M3SVD_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("M3SVD_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("M3SVD_RESNET18", "M3SVD_RAFT_LARGE", "M3SVD_RAFT_SMALL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


@pytest.mark.parametrize("est", [fl.DIS(), fl.Farneback()], ids=["dis", "farneback"])
def test_direction_convention(est):
    a = texture()
    b = shifted(a, 3.0, -2.0)  # content moves right 3 px, up 2 px
    o = est(a, b)
    inner = (slice(16, -16), slice(16, -16))
    assert o.dtype == np.float32 and o.shape == a.shape + (2,)
    assert np.median(o[inner][..., 0]) == pytest.approx(3.0, abs=0.25)
    assert np.median(o[inner][..., 1]) == pytest.approx(-2.0, abs=0.25)
    back = fl.warp(b, o)  # backward warp of the second frame lands on the first
    assert np.abs(back - a)[inner].mean() < 2.0


def test_warp_is_exact_bilinear_with_border_clamp():
    img = np.arange(12, dtype=np.float64).reshape(3, 4)
    o = np.zeros((3, 4, 2))
    o[..., 0] = 0.25
    o[0, 0] = (-5.0, -5.0)  # clamps to the corner
    o[2, 3] = (0.5, 0.5)  # beyond the last pixel: clamps to it
    out = fl.warp(img, o)
    assert out[1, 1] == pytest.approx(5.25, abs=1e-12) and out[0, 0] == 0.0 and out[2, 3] == 11.0


def test_fast_masks_and_grids_equal_the_definitions_bit_for_bit():
    """VideoFlows makes its masks with pair_masks (planes, shared warps) and metrics warp with a reused Grid: both
    must equal fb_mask / lai_noc_mask / warp exactly, threshold ties included (quantised flows make
    |fw + W(bw, fw)| = 1 px exactly on many pixels), else cached masks would depend on the code path."""
    a, b = texture(60, 80, seed=4), shifted(texture(60, 80, seed=4), 2.3, -1.1)
    dis = fl.DIS("fast")
    flows = [(fl.quantise(dis(a, b)) * fl.QUANTUM, fl.quantise(dis(b, a)) * fl.QUANTUM)]
    rng = np.random.default_rng(0)
    ties = np.zeros((60, 80, 2))
    ties[..., 0] = 1.0  # every pixel moves 1 px right, nothing comes back: |d| = 1, on the threshold
    flows.append((ties, np.zeros((60, 80, 2))))
    flows.append((rng.integers(-80, 80, (60, 80, 2)) * fl.QUANTUM, rng.integers(-80, 80, (60, 80, 2)) * fl.QUANTUM))
    for fw, bw in flows:
        fb_a, fb_b, noc = fl.pair_masks(fw, bw)
        assert np.array_equal(fb_a, fl.fb_mask(fw, bw)) and np.array_equal(fb_b, fl.fb_mask(bw, fw))
        assert np.array_equal(noc, fl.lai_noc_mask(fw, bw))
        grid = fl.Grid(fw)
        for image in (rng.random((60, 80)) * 255, rng.random((60, 80, 3)) * 255, bw):
            assert np.array_equal(grid.warp(image), fl.warp(image, fw))
    assert not any(mask.any() for mask in fl.pair_masks(*flows[1])[:2])  # |d| = 1 is not < 1, both ways


def test_flow_cache_hit_miss_and_atomicity(tmp_path, monkeypatch):
    frames = np.stack([shifted(texture(), 1.5 * i) for i in range(4)])
    cache = fl.FlowCache(tmp_path / "cache")
    first = fl.VideoFlows(frames, fl.DIS("fast"), cache, masks=True).compute_all()
    assert (cache.hits, cache.misses) == (0, 3)
    files = sorted((tmp_path / "cache").rglob("*.npz"))
    assert len(files) == 3 and not list((tmp_path / "cache").rglob("*.tmp"))
    assert (tmp_path / "cache" / fl.DIS("fast").id / "estimator.json").is_file()
    again = fl.VideoFlows(frames, fl.DIS("fast"), cache, masks=True)
    for i in range(3):
        assert np.array_equal(again.fw(i), first.fw(i)) and np.array_equal(again.bw(i), first.bw(i))
        assert np.array_equal(again.fb_a(i), first.fb_a(i)) and np.array_equal(again.noc(i), first.noc(i))
    assert (cache.hits, cache.misses) == (3, 3)
    # without a cache the (quantised) flows are the same, bit for bit
    assert np.array_equal(fl.VideoFlows(frames, fl.DIS("fast")).fw(1), first.fw(1))
    # other parameters: another key; an unreadable entry is recomputed and rewritten
    fl.VideoFlows(frames[:2], fl.DIS("fast", PatchSize=12), cache).fw(0)
    assert cache.misses == 4
    files[0].write_bytes(b"truncated")
    fl.VideoFlows(frames, fl.DIS("fast"), cache, masks=True).compute_all()
    assert (cache.hits, cache.misses) == (5, 5) and files[0].stat().st_size > 100
    # a write that fails half-way leaves neither the entry nor a temporary file behind
    def broken(f, array, **options):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(OSError, match="disk full"):
        fl.VideoFlows(frames[:2], fl.DIS("ultrafast"), cache).fw(0)
    assert not list((tmp_path / "cache" / fl.DIS("ultrafast").id).rglob("*.npz"))
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_metrics_same_with_and_without_cache(tmp_path):
    ir = np.stack([shifted(texture(seed=1), 1.0 * i) for i in range(4)])
    vi = np.repeat(np.stack([shifted(texture(seed=2), 1.0 * i) for i in range(4)])[..., None], 3, axis=3)
    fused = ((ir.astype(np.int32) + vi[..., 0] + 1) // 2).astype(np.uint8)
    cache = fl.FlowCache(tmp_path)
    for name in ("flowd", "biswe", "warp_error", "tgf"):
        m = metrics.get(name)
        plain = m(fused, sources=VideoSources(ir=ir, vi=vi, flow="dis-fast"))
        assert np.array_equal(m(fused, sources=VideoSources(ir=ir, vi=vi, flow="dis-fast", cache=cache)), plain)
        assert np.array_equal(m(fused, sources=VideoSources(ir=ir, vi=vi, flow="dis-fast", cache=cache)), plain)
    assert cache.hits > 0 and cache.misses == 6  # 3 pairs × 2 sources, computed once
    assert len(metrics.get("flowd")(fused, ir=ir, vi=vi)) == 3 and len(metrics.get("biswe")(fused, ir=ir, vi=vi)) == 2
    with pytest.raises(MetricError, match="at least 3 consecutive frames"):
        metrics.get("ms2r")(fused[:2], ir=ir[:2], vi=vi[:2])


def test_missing_weights_is_one_line_naming_the_file(no_weights):
    with pytest.raises(WeightsMissing) as raft_error:
        fl.raft("large")
    message = str(raft_error.value)
    assert "\n" not in message and arch.DEFAULT_FILES["large"] in message and "download.pytorch.org" in message
    with pytest.raises(WeightsMissing, match="no such file") as given:
        fl.estimator("raft-small", weights=no_weights / "nope.pth")
    assert str(no_weights / "nope.pth") in str(given.value)
    frames = np.zeros((3, 16, 16), np.uint8)
    with pytest.raises(WeightsMissing) as feacd_error:
        metrics.get("feacd")(frames, ir=frames, vi=np.zeros((3, 16, 16, 3), np.uint8))
    assert "\n" not in str(feacd_error.value) and "resnet18-f37072fd.pth" in str(feacd_error.value)


def test_raft_layout_weights_and_adapters(no_weights):
    # torchvision's parameter counts (Raft_Large_Weights / Raft_Small_Weights meta "num_params")
    assert sum(p.numel() for p in arch.raft_large().parameters()) == 5_257_536
    assert sum(p.numel() for p in arch.raft_small().parameters()) == 990_162
    torch.manual_seed(0)
    path = no_weights / "weights" / arch.DEFAULT_FILES["small"]
    path.parent.mkdir(parents=True)
    torch.save(arch.raft_small().state_dict(), path)
    est = fl.estimator("raft-small", iters=2)  # found in $M3SVD_WEIGHTS under torchvision's file name
    o = est(texture(124, 130), texture(124, 130, seed=3))  # padded to 128×136 inside, cropped back
    assert o.shape == (124, 130, 2) and np.isfinite(o).all()
    assert est.params["weights_sha256"] == sha256_file(path) and est.params["iters"] == 2
    with pytest.raises(fl.FlowError, match="too small"):
        est(texture(60, 100), texture(60, 100))
    bad = no_weights / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(RuntimeError, match="Missing key"):
        fl.raft("small", weights=bad)

    class Sea(torch.nn.Module):  # stands in for a user's SEA-RAFT: 0–255 input, dict output
        def forward(self, a, b, iters, test_mode):
            assert a.max() > 1.5 and iters == 4 and test_mode
            return {"flow": [torch.zeros(1, 2, *a.shape[-2:]), torch.ones(1, 2, *a.shape[-2:])]}

    sea = fl.sea_raft(Sea(), "ab" * 32, config="spring-S")
    assert np.array_equal(sea(texture(), texture()), np.ones((96, 128, 2), np.float32))
    assert sea.params["config"] == "spring-S" and sea.id.startswith("sea-raft-")
    with pytest.raises(fl.FlowError, match="unknown flow estimator 'pwc'"):
        fl.estimator("pwc")
