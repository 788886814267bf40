"""Temporal metrics inside `m3svd evaluate`: chunked scoring equals whole-clip scoring, source flows are cached
across methods, and protocols cannot rank by a metric a frozen output wins without one that penalises it."""

from pathlib import Path

import numpy as np
import pytest
from synthetic import protocol_file

from m3svd import metrics, protocols
from m3svd.data import open_dataset
from m3svd.data.frames import list_images, read_image
from m3svd.evaluate import MethodSpec, evaluate
from m3svd.evaluate.scoring import TemporalScorer
from m3svd.metrics.temporal import VideoSources
from m3svd.protocols import ProtocolError

TEMPORAL = ["flowd", "biswe", "ms2r", "warp_error", "tof", "flicker", "tgf"]


def _protocol(tmp_path: Path, temporal=TEMPORAL, image=("ssim",), frames=(0, 12)) -> Path:
    """A third of the sample, every temporal metric."""
    return protocol_file(tmp_path / "temporal.toml", id="temporal", layouts=["sample"], folders=["sample"], split=None,
                         frames=frames, image=image, temporal=temporal)


def _values(run) -> dict:
    rows = run.results
    return {(r.metric, r.frame): r.value for r in rows.itertuples()}


def test_chunks_score_every_pair_once_like_the_whole_clip(tmp_path, monkeypatch):
    protocol = protocols.load(_protocol(tmp_path))
    monkeypatch.setattr(TemporalScorer, "CHUNK", 3)  # 12 frames → 4 chunks, each repeating 2 frames
    chunked = evaluate(protocol, tmp_path / "chunked", method=MethodSpec("gff"), flow_cache=False)
    rows = chunked.results
    for name in TEMPORAL:
        span = metrics.get(name).span
        frames = sorted(rows.loc[rows["metric"] == name, "frame"])
        assert frames == list(range(span - 1, 12)), name  # recorded at the last frame of each pair/triplet
    # the same values as the metrics on the whole 12-frame window at once
    clip = open_dataset("sample").clip("sample", None, "clean")
    ir, vi = clip.frames(0, 12)
    fused = np.stack([read_image(p) for p in list_images(tmp_path / "chunked" / "fused" / "sample")])
    sources = VideoSources(ir=ir, vi=vi)
    got = _values(chunked)
    for name in TEMPORAL:
        metric = metrics.get(name)
        whole = metric(fused, sources=sources)
        ours = [got[(name, f)] for f in range(metric.span - 1, 12)]
        np.testing.assert_allclose(ours, whole, rtol=1e-12, atol=1e-12, err_msg=name)
    assert set(rows.loc[rows["kind"] == "temporal", "metric"]) == set(TEMPORAL)
    assert rows["flow_estimator"].str.startswith("dis-").all()


class _Rows:
    """A stream stand-in: the rows TemporalScorer emits, in emission order."""

    def __init__(self):
        self.rows = []

    def emit(self, frames, name, values, digests):
        self.rows += [(int(f), name, float(v), d) for f, v, d in zip(frames, values, digests, strict=True)]


def test_threads_give_the_rows_of_one_thread_bit_for_bit(tmp_path, monkeypatch):
    """Flows computed pair by pair on threads and metrics side by side: the same rows, same order, same bits, for
    two streams sharing source flows across chunks (with and without the disk cache)."""
    monkeypatch.setattr(TemporalScorer, "CHUNK", 4)
    ir, vi = open_dataset("sample").clip("sample", None, "clean").frames(0, 11)
    grey = vi.astype(np.float64) @ [0.299, 0.587, 0.114]
    fused = [np.rint((ir + grey) / 2).astype(np.uint8), np.rint(0.3 * ir[..., None] + 0.7 * vi).astype(np.uint8)]
    runs = {}
    for threads, cache in ((1, None), (2, None), (2, str(tmp_path / "flows")), (2, str(tmp_path / "flows"))):
        streams = [_Rows(), _Rows()]
        scorer = TemporalScorer(tuple(TEMPORAL), "m3svd", "dis", cache, streams, threads)
        for a in range(0, 11, 3):
            chunk = [f[a:a + 3] for f in fused]
            scorer.push(a, ir[a:a + 3], vi[a:a + 3], chunk, [[f"{s}:{a + i}" for i in range(len(c))]
                                                             for s, c in enumerate(chunk)])
        scorer.flush()
        runs.setdefault((threads, cache), []).append([s.rows for s in streams])
    reference = runs[1, None][0]
    assert len(reference[0]) == 5 * 10 + 2 * 9 and reference[0] != reference[1]
    for got in runs.values():
        assert all(rows == reference for rows in got)


def test_predictions_score_temporal_metrics_like_the_method(tmp_path):
    protocol = protocols.load(_protocol(tmp_path))
    made = evaluate(protocol, tmp_path / "made", method=MethodSpec("laplacian"), flow_cache=False)
    read = evaluate(protocol, tmp_path / "read", predictions=tmp_path / "made" / "fused", name="laplacian",
                    flow_cache=False)
    assert _values(made) == _values(read)


def test_source_flows_are_cached_once_and_shared_across_methods(tmp_path):
    protocol = protocols.load(_protocol(tmp_path, temporal=["flowd", "tgf"]))
    cache = tmp_path / "flows"
    first = evaluate(protocol, tmp_path / "gff", method=MethodSpec("gff"), flow_cache=cache)
    entries = sorted(p.relative_to(cache) for p in cache.rglob("*.npz"))
    assert len(entries) == 2 * 11  # one per consecutive pair of each source (tgf masks use both; flowd shares VIS)
    mtimes = {p: (cache / p).stat().st_mtime_ns for p in entries}
    second = evaluate(protocol, tmp_path / "max", method=MethodSpec("max"), flow_cache=cache)
    assert sorted(p.relative_to(cache) for p in cache.rglob("*.npz")) == entries
    assert {p: (cache / p).stat().st_mtime_ns for p in entries} == mtimes  # read, not rewritten
    uncached = evaluate(protocol, tmp_path / "max-nocache", method=MethodSpec("max"), flow_cache=False)
    assert _values(second) == _values(uncached)
    assert _values(first) != _values(second)


def test_frozen_rewarded_metrics_need_a_metric_that_penalises_frozen_output(tmp_path):
    with pytest.raises(ProtocolError, match=r"frozen \(static\) output wins flicker.*tgf or feacd"):
        protocols.load(_protocol(tmp_path, temporal=["flicker"]))
    with pytest.raises(ProtocolError, match=r"temporal lists 'ssim', an image metric"):
        protocols.load(_protocol(tmp_path, temporal=["ssim", "tgf"]))
    with pytest.raises(ProtocolError, match=r"image lists 'tgf', a temporal metric"):
        protocols.load(_protocol(tmp_path, image=["tgf"], temporal=["tgf"]))


def test_every_bundled_protocol_scores_time_with_a_frozen_output_guard():
    """Every video protocol; the image-pair benchmarks (one frame per clip) have no time to score."""
    for protocol in protocols.list():
        if protocol.layouts in (("pairs",), ("vifb",)):
            assert not protocol.temporal_metrics, protocol.id
            continue
        assert protocol.temporal_metrics, protocol.id
        assert "tgf" in protocol.temporal_metrics, protocol.id
