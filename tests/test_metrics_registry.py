"""The metric registry and the Metric contract every convention shares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import batched

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
    with pytest.raises(MetricError, match="no metric convention 'vifb'; there are m3svd, and 'pyiqa'"):
        metrics.get("toy", "vifb")
    with pytest.raises(ValueError, match="registered twice"):
        metrics.register(metric)


def test_batch_single_frames_and_memo(toy):
    metric, calls = toy
    rng = np.random.default_rng(0)
    ir = rng.integers(0, 256, (3, 8, 10), dtype=np.uint8)
    vi = rng.integers(0, 256, (3, 8, 10, 3), dtype=np.uint8)
    fused = rng.integers(0, 256, (3, 8, 10), dtype=np.uint8)
    sources = Sources(ir=ir, vi=vi)
    batch = metric(fused, sources=sources)
    again = metric(fused[::-1], sources=Sources(ir=ir[::-1], vi=vi[::-1]))
    assert batch.shape == (3,) and np.allclose(again, batch[::-1])
    assert np.allclose([metric(fused[i], ir=ir[i], vi=vi[i]) for i in range(3)], batch)
    assert np.array_equal(batched(metric, fused, Sources(ir=ir, vi=vi)), batch)  # the batched compute
    before = len(calls)
    metric(fused, sources=sources)
    assert len(calls) == before  # source work is done once per Sources object, not per call


def test_bad_input_is_one_clear_error(toy):
    metric, _ = toy
    ir, vi = np.zeros((8, 10), np.uint8), np.zeros((8, 10, 3), np.uint8)
    with pytest.raises(MetricError, match=r"fused frames \(1, 8, 9\) do not match sources \(1, 8, 10\)"):
        metric(np.zeros((8, 9), np.uint8), ir=ir, vi=vi)
    with pytest.raises(MetricError, match=r"fused: values must lie in \[0, 1\] \(data_range 1\); found 2"):
        metric(np.full((8, 10), 2.0), ir=ir, vi=vi)
    with pytest.raises(MetricError, match="fused: no default data_range for int64 frames; pass data_range"):
        metric(np.zeros((8, 10), np.int64), ir=ir, vi=vi)
    with pytest.raises(MetricError, match=r"expected H×W, .* found shape \(2, 8, 10, 5\)"):
        metric(np.zeros((2, 8, 10, 5), np.uint8), ir=ir, vi=vi)
    with pytest.raises(MetricError, match="differ in size"):
        Sources(ir=ir, vi=np.zeros((8, 11, 3), np.uint8))
    with pytest.raises(MetricError, match="undefined on frame 0"):
        metric(np.full((8, 10), 7, np.uint8), ir=ir, vi=vi)  # the toy is undefined on constant frames: never a silent 0


def test_a_set_reads_each_frame_once_and_no_metric_alters_what_it_shares():
    """In every convention, on grey and RGB frames, scoring the whole image set (which shares each frame's reading
    among its metrics, read-only) gives each metric's own values bit for bit, threaded or not."""
    rng = np.random.default_rng(2)
    ir = rng.integers(0, 256, (2, 168, 176), dtype=np.uint8)  # 168: the least MS-SSIM's five scales take
    vi = rng.integers(0, 256, (2, 168, 176, 3), dtype=np.uint8)
    grey = ((ir.astype(np.int32) + vi[..., 1] + 1) // 2).astype(np.uint8)
    rgb = np.stack([vi[..., 2], ir, vi[..., 0]], axis=-1)
    for convention in ("cddfuse", "m3svd", "tang", "vfbench", "vifb"):
        chosen = [m for m in metrics.list(convention) if m.kind == "image"]
        for fused in (grey, rgb):
            alone = {m.name: m(fused, sources=Sources(ir=ir, vi=vi)) for m in chosen}
            for threads in (1, 2):
                scored = metrics.score(chosen, fused, Sources(ir=ir, vi=vi), threads=threads)
                for name, values in scored.items():
                    np.testing.assert_array_equal(values, alone[name], err_msg=f"{name}@{convention}, {threads} "
                                                  f"threads, {fused.ndim - 1}-d frames")


def test_score_a_set_in_threads_gives_each_metrics_values():
    """``metrics.score`` (what ``m3svd evaluate`` calls) equals calling each metric, bit for bit, threaded or not."""
    rng = np.random.default_rng(1)
    ir = rng.integers(0, 256, (4, 40, 48), dtype=np.uint8)
    vi = rng.integers(0, 256, (4, 40, 48, 3), dtype=np.uint8)
    fused = ((ir.astype(np.int32) + vi[..., 1] + 1) // 2).astype(np.uint8)
    chosen = [m for m in metrics.list("cddfuse") if m.kind == "image"]
    alone = {m.name: m(fused, sources=Sources(ir=ir, vi=vi)) for m in chosen}
    for threads in (1, 3):
        scored = metrics.score(chosen, fused, Sources(ir=ir, vi=vi), threads=threads)
        assert list(scored) == [m.name for m in chosen]
        for name, values in scored.items():
            np.testing.assert_array_equal(values, alone[name], err_msg=f"{name}, {threads} threads")

    fused[2] = 9  # a constant frame: CC is undefined there
    cc = metrics.get("cc", "cddfuse")
    with pytest.raises(metrics.base.MetricUndefined, match="cc@cddfuse: undefined on frame 2"):
        metrics.score([cc], fused, Sources(ir=ir, vi=vi), threads=2)
    kept = metrics.score([cc], fused, Sources(ir=ir, vi=vi), threads=2, keep_undefined=True)["cc"]
    assert np.isnan(kept[2]) and np.isfinite(kept[[0, 1, 3]]).all()
    with pytest.raises(MetricError, match="names repeat"):
        metrics.score([cc, metrics.get("cc", "tang")], fused, Sources(ir=ir, vi=vi))


# -- the API a notebook user meets: any input layout and dtype, names, keyword sources, hints --------------------
def _scene():
    """One real-looking RGB frame pair (smooth texture + noise) and an average fusion, uint8 H×W and H×W×3."""
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:48, 0:64]
    vi = np.clip(np.stack([100 + 60 * np.sin(x / (4 + c) + y / 7) for c in range(3)], -1)
                 + rng.normal(0, 9, (48, 64, 3)), 0, 255).astype(np.uint8)
    ir = np.clip(128 + 80 * np.cos(y / 6.0) + rng.normal(0, 9, (48, 64)), 0, 255).astype(np.uint8)
    fused = ((vi.astype(np.int32) + ir[..., None]) // 2).astype(np.uint8)
    return ir, vi, fused


@pytest.mark.parametrize("name", ["qabf", "mi", "en", "ssim"])
def test_one_metric_gives_identical_values_for_numpy_torch_float_and_uint8_inputs(name):
    """The notebook session of the API: float numpy in [0, 1], torch NCHW float, torch uint8, uint8 HWC."""
    torch = pytest.importorskip("torch")
    ir, vi, fused = _scene()
    metric = metrics.get(name)
    expected = metric(fused, ir=ir, vi=vi)  # uint8 H×W×3: one image in, one float out
    assert type(expected) is float
    as_float = {k: a.astype(np.float32) / 255 for k, a in (("fused", fused), ("ir", ir), ("vi", vi))}
    assert metric(as_float["fused"], ir=as_float["ir"], vi=as_float["vi"]) == expected
    nchw = {k: torch.from_numpy(a).permute(2, 0, 1)[None] if a.ndim == 3 else torch.from_numpy(a)[None, None]
            for k, a in as_float.items()}
    batch = metric(nchw["fused"], ir=nchw["ir"], vi=nchw["vi"])  # a batch (N = 1) in, per-frame values out
    assert isinstance(batch, np.ndarray) and batch.tolist() == [expected]
    chw_uint8 = torch.from_numpy(fused).permute(2, 0, 1)
    assert metric(chw_uint8, ir=torch.from_numpy(ir), vi=torch.from_numpy(vi).permute(2, 0, 1)) == expected
    assert metric(fused.astype(np.uint16) * 257, ir=ir, vi=vi) == expected  # uint16: data_range 65535
    assert metric(fused.astype(np.float64), ir=ir, vi=vi, data_range=255) == expected
    assert metric(torch.from_numpy(fused).double().permute(2, 0, 1)[None] / 255 * 4, ir=ir.astype(float) * 4 / 255,
                  vi=vi.astype(float) * 4 / 255, data_range=4).tolist() == [expected]


def test_every_level_survives_a_round_trip_through_every_float_type():
    torch = pytest.importorskip("torch")
    from m3svd.metrics.inputs import to_levels

    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for dtype in (np.float16, np.float32, np.float64):
        assert np.array_equal(to_levels("x", (levels / 255).astype(dtype))[0][0], levels), dtype
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        tensor = (torch.from_numpy(levels).double() / 255).to(dtype)
        assert np.array_equal(to_levels("x", tensor)[0][0], levels), dtype


def test_float_input_between_levels_is_quantised_like_an_8_bit_file_and_out_of_range_is_an_error():
    from m3svd.metrics.inputs import to_levels

    got, single = to_levels("x", np.array([[0.0, 0.4 / 255, 0.6 / 255, 1.0 + 0.4 / 255]]))
    assert single and got.tolist() == [[[0, 0, 1, 255]]]
    with pytest.raises(ValueError, match=r"x: values must lie in \[0, 1\] \(data_range 1\); found -0.01"):
        to_levels("x", np.array([[0.5, -0.01]]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        to_levels("x", np.array([[0.5, np.nan]]))
    with pytest.raises(ValueError, match="uint8 frames are levels 0-255, so data_range must be 255"):
        to_levels("x", np.zeros((4, 4), np.uint8), data_range=1.0)


def test_layouts_single_image_and_batch():
    torch = pytest.importorskip("torch")
    from m3svd.metrics.inputs import to_levels

    rgb = np.random.default_rng(0).integers(0, 256, (2, 6, 7, 3), dtype=np.uint8)
    for given, single in ((rgb[0], True), (rgb, False), (np.moveaxis(rgb, -1, 1), False),
                          (torch.from_numpy(rgb[0]).permute(2, 0, 1), True), (torch.from_numpy(rgb).permute(0, 3, 1, 2),
                                                                                False)):
        got, is_single = to_levels("x", given)
        assert is_single == single and np.array_equal(got, rgb[:1] if single else rgb)
    grey = rgb[..., 0]
    for given, single in ((grey[0], True), (grey, False), (grey[:, None], False), (grey[0][..., None], True),
                          (torch.from_numpy(grey), False), (torch.from_numpy(grey)[:, None], False)):
        got, is_single = to_levels("x", given)
        assert is_single == single and np.array_equal(got, grey[:1] if single else grey)


def test_score_takes_names_and_returns_floats_for_one_image():
    ir, vi, fused = _scene()
    got = metrics.score(["en", "ssim"], fused, ir=ir, vi=vi)
    assert got == {"en": metrics.get("en")(fused, ir=ir, vi=vi), "ssim": metrics.get("ssim")(fused, ir=ir, vi=vi)}
    assert all(type(v) is float for v in got.values())
    cdd = metrics.score(["ssim", metrics.get("en", "vifb")], fused, ir=ir, vi=vi, convention="cddfuse")
    assert cdd == {"ssim": metrics.get("ssim", "cddfuse")(fused, ir=ir, vi=vi),
                   "en": metrics.get("en", "vifb")(fused, ir=ir, vi=vi)}
    batch = metrics.score("en", np.stack([fused, fused[::-1]]), ir=np.stack([ir, ir]), vi=np.stack([vi, vi]))
    assert batch["en"].shape == (2,)
    with pytest.raises(MetricError, match="did you mean 'ssim'"):
        metrics.score(["en", "sssim"], fused, ir=ir, vi=vi)
    with pytest.raises(MetricError, match="pass the sources once"):
        metrics.score(["en"], fused, Sources(ir=ir, vi=vi), ir=ir, vi=vi)


def test_sources_are_keyword_only_so_a_swapped_pair_cannot_be_passed():
    ir, vi, fused = _scene()
    with pytest.raises(TypeError):
        Sources(ir, vi)  # positional: refused
    with pytest.raises(TypeError):
        metrics.get("qabf")(fused, ir, vi)
    from m3svd.metrics.temporal import VideoSources

    with pytest.raises(TypeError):
        VideoSources(ir, vi)
    src = Sources(vi=vi, ir=ir)  # any order by name
    assert src.ir.shape == (1, 48, 64) and src.vi.shape == (1, 48, 64, 3)
    assert metrics.MetricUndefined is metrics.base.MetricUndefined


def test_did_you_mean_knows_each_conventions_own_names():
    with pytest.raises(MetricError, match=r"'viff' has no 'cddfuse' convention; it has m3svd \(did you mean 'vif'\? "
                                          r"cddfuse calls it 'viff'\)"):
        metrics.get("viff", convention="cddfuse")
    with pytest.raises(MetricError, match=r"did you mean 'mi'\? vifb calls it 'Mutinf'"):
        metrics.get("Mutinf", "vifb")
    with pytest.raises(MetricError, match=r"did you mean 'mef_ms_ssim'\?"):
        metrics.get("ms_ssim", "tang")
    with pytest.raises(MetricError, match=r"no metric convention 'cdfuse'.*\(did you mean 'cddfuse'\?\)"):
        metrics.get("ssim", "cdfuse")
    with pytest.raises(MetricError, match=r"^metric 'nabf' has no 'cddfuse' convention; it has m3svd, tang, tang2022$"):
        metrics.get("nabf", "cddfuse")  # no spurious 'qabf': the user named a real metric


def test_metrics_without_any_reference_comparison_say_so():
    registered = metrics.list()
    unchecked = {m.name for m in registered} - {m.name for m in registered if m.reference}
    assert unchecked == {"feacd", "flicker", "fmi_dct", "fmi_edge", "fmi_pixel", "fmi_w", "ms_ssim", "nmi",
                         "tgf", "tof", "viff", "warp_error"}
    for m in registered:  # every claim names the test that makes it, and that test exists
        if m.reference:
            test = m.reference.rsplit("; ", 1)[1]
            assert test.startswith("tests/") and (Path(__file__).parents[1] / test).is_file(), m.id
