"""One clip's evaluation: every method's (or the predictions') fused frames, scored chunk by chunk in lockstep so
each chunk's source statistics and flows are computed once for all of them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from m3svd.data.clip import Clip
from m3svd.evaluate.inputs import frame_range, open_clip, predicted_frames, read_frames, subset_range
from m3svd.evaluate.jobs import EvaluationError, Job, MethodSpec, Source
from m3svd.evaluate.scoring import TemporalScorer, restoration_metrics, restoration_scores
from m3svd.evaluate.store import ROW_COLUMNS, provenance, run_key, write_png
from m3svd.files import atomic_parquet
from m3svd.progress import progress_bar

SCORE_CHUNK = 8  # frames scored together; every stream of a clip is scored on the same chunks


class Stream:
    """One method's (or the saved predictions') fused frames for one clip, and the rows scored from them.

    Frames come from the method's own windows (written to ``fused/`` as they are made) and are handed out in the
    clip's scoring chunks, so several methods advance in lockstep and share each chunk's source statistics.
    """

    def __init__(self, job: Job, source: Source, out: str, clip: Clip, reference: Clip, span: range):
        self.job, self.source, self.clip, self.span = job, source, clip, span
        self.method = source.build_for(job.protocol) if isinstance(source, MethodSpec) else None
        self.identity = (self.method or source).identity()
        self.key = run_key(job, source, clip, reference, self.identity)
        self.out = Path(out)
        self.result_path = self.out / "clips" / f"{clip.name}.parquet"
        self.columns: dict[str, list] = {k: [] for k in ("frame", "metric", "value", "fused_sha256")}
        self._frames = None  # the iterator of (first, fused, restored) windows, started on the first take
        self._first, self._fused, self._restored = span.start, None, {}

    def done(self) -> bool:
        """Results for this run key are on disk already (a file that cannot be read whole, or lacks a column, is
        damaged: it is recomputed, and :attr:`damaged` says why)."""
        import pandas as pd
        import pyarrow

        self.damaged = None
        if not self.result_path.exists():
            return False
        try:
            previous = pd.read_parquet(self.result_path)
        except (OSError, ValueError, pyarrow.ArrowException) as error:
            self.damaged = f"unreadable ({str(error).splitlines()[0] if str(error) else type(error).__name__})"
            return False
        if list(previous.columns) != ROW_COLUMNS:
            self.damaged = "its columns are not those of a results file"
            return False
        return bool(len(previous)) and bool((previous["run_key"] == self.key).all())

    def _windows(self):
        start, stop = self.span.start, self.span.stop
        if self.method is None:
            read = predicted_frames(self.source.folder, self.clip, *frame_range(self.job.protocol, self.clip))
            for a in range(start, stop, SCORE_CHUNK):
                yield a, read(a, min(a + SCORE_CHUNK, stop)), {}
            return
        protocol = self.job.protocol
        folder = self.out / "fused" / self.clip.name
        for first, fused, fusion, keep in fused_windows(self.method, self.clip, start, stop, protocol.inputs,
                                                        folder):
            restored = {}
            if protocol.restoration_metrics and self.method.restores:
                restored = {"ir": fusion.ir[keep], "vi": fusion.vi[keep]}
            yield first, fused, restored

    def take(self, a: int, b: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Fused (and restored) frames ``[a, b)``; chunks are taken in order, so earlier frames are dropped."""
        if self._frames is None:
            self._frames = self._windows()
        while self._fused is None or self._first + len(self._fused) < b:
            first, fused, restored = next(self._frames)
            if self._fused is None:
                self._first, self._fused, self._restored = first, fused, restored
            else:
                self._fused = np.concatenate([self._fused, fused])
                self._restored = {k: np.concatenate([v, restored[k]]) for k, v in self._restored.items()}
        lo, hi = a - self._first, b - self._first
        taken = self._fused[lo:hi], {k: v[lo:hi] for k, v in self._restored.items()}
        self._first, self._fused = b, self._fused[hi:]
        self._restored = {k: v[hi:] for k, v in self._restored.items()}
        return taken

    def emit(self, frames, name: str, values, digests) -> None:
        self.columns["frame"] += [int(f) for f in frames]
        self.columns["metric"] += [name] * len(values)
        self.columns["value"] += [float(x) for x in values]
        self.columns["fused_sha256"] += digests

    def write(self, image_metrics: list, temporal: TemporalScorer, input_sha256: str) -> None:
        """The clip's rows with provenance, sorted by frame then metric, written atomically (one table built whole:
        with many methods and one-frame clips, column-by-column assignment cost more than the rows)."""
        import pandas as pd

        columns = {k: np.asarray(v) for k, v in self.columns.items()}
        order = {name: i for i, name in enumerate(dict.fromkeys(self.columns["metric"]))}
        rank = np.array([order[m] for m in self.columns["metric"]], dtype=np.int64)
        sort = np.lexsort((rank, columns["frame"].astype(np.int64)))
        metric = columns["metric"][sort].tolist()
        kinds = {m.name: m for m in image_metrics + temporal.metrics}
        kinds.update({f"restored_{stream}_{m.name}": m for m in restoration_metrics(self.job.protocol)
                      for stream in ("ir", "vi")})  # each row stamped with the definition that made it
        stamp = provenance(self.job, self.source, self.clip, self.identity, self.key, input_sha256,
                           temporal.estimator.id)
        table = pd.DataFrame({
            **stamp,
            "frame": columns["frame"][sort].astype(np.int64),
            "metric": metric,
            "value": columns["value"][sort].astype(np.float64),
            "fused_sha256": columns["fused_sha256"][sort].tolist(),
            "convention": [kinds[m].convention for m in metric],
            "metric_version": [kinds[m].version for m in metric],
            "kind": [kinds[m].kind for m in metric],
            "higher_is_better": [kinds[m].higher_is_better for m in metric],
        })
        atomic_parquet(self.result_path, table[ROW_COLUMNS])


def fused_windows(method, clip: Clip, start: int, stop: int, inputs: tuple[str, ...], folder: Path):
    """Fuse frames ``[start, stop)`` of a clip window by window, writing each kept frame to ``folder/<frame>.png``
    (numbered in the clip) as it is made; yields ``(first frame, fused, the method's Fusion, kept slice)``."""
    folder.mkdir(parents=True, exist_ok=True)
    for window in method.plan(stop - start):
        ir, vi = read_frames(clip, start + window.start, start + window.stop)
        fusion = method.fuse(ir if "ir" in inputs else None, vi)
        keep = slice(window.keep_start - window.start, window.keep_stop - window.start)
        fused = checked_fusion(method.name, fusion.fused[keep], vi[keep].shape)
        first = start + window.keep_start
        for offset, frame in enumerate(fused):
            write_png(folder / f"{first + offset:06d}.png", frame)
        yield first, fused, fusion, keep


def evaluate_clip(job: Job) -> list[str]:
    """Fuse (or read) one clip for every output of the job, score every frame, write each output's
    ``clips/<clip>.parquet``; returns ``"done"``, ``"skipped"`` or ``"redone: <why>"`` (a damaged results file)
    per output.

    Outputs still to do advance together, chunk by chunk: each chunk's source statistics (image metrics) and
    source flows (temporal metrics) are computed once and used for every method.
    """
    from m3svd import metrics

    protocol = job.protocol
    clip, reference = open_clip(job)
    start, stop = subset_range(protocol, clip, job.subset)
    streams = [Stream(job, source, out, clip, reference, range(start, stop)) for source, out in
               zip(job.sources, job.outs, strict=True)]
    outcomes = ["skipped" if stream.done() else f"redone: {stream.damaged}" if stream.damaged else "done"
                for stream in streams]
    streams = [stream for stream, outcome in zip(streams, outcomes, strict=True) if outcome != "skipped"]
    if not streams:
        return outcomes
    image_metrics = [metrics.get(n, protocol.convention) for n in protocol.image_metrics]
    temporal = TemporalScorer(protocol.temporal_metrics, protocol.convention, protocol.flow, job.flow_cache,
                               streams, job.threads)
    input_digest = hashlib.sha256()
    label = clip.name if len(streams) == 1 else f"{clip.name} ×{len(streams)}"
    bar = progress_bar(job.progress, stop - start, label, step=None)  # lines: every 30 s; clips count the steps
    for a in range(start, stop, SCORE_CHUNK):
        b = min(a + SCORE_CHUNK, stop)
        ir, vi = read_frames(clip, a, b)
        input_digest.update(ir.data)
        input_digest.update(vi.data)
        ref_ir, ref_vi = (ir, vi) if reference is clip else read_frames(reference, a, b)
        sources = metrics.Sources(ir=ref_ir, vi=ref_vi)
        chunk_fused, chunk_digests = [], []
        for stream in streams:
            fused, restored = stream.take(a, b)
            digests = [hashlib.sha256(np.ascontiguousarray(f).data).hexdigest() for f in fused]
            values = metrics.score(image_metrics, fused, sources, threads=job.threads, keep_undefined=True,
                                   device=job.metrics_device)
            for name, frames in restored.items():
                clean = ref_ir if name == "ir" else ref_vi
                for metric in protocol.restoration_metrics:
                    values[f"restored_{name}_{metric}"] = restoration_scores(metric, frames, clean)
            for name, v in values.items():
                stream.emit(range(a, b), name, v, digests)
            chunk_fused.append(fused)
            chunk_digests.append(digests)
        temporal.push(a, ref_ir, ref_vi, chunk_fused, chunk_digests)
        bar.update(b - a)
    temporal.flush()
    bar.close()
    for stream in streams:
        stream.write(image_metrics, temporal, input_digest.hexdigest())
    return outcomes


def checked_fusion(name: str, fused: np.ndarray, shape: tuple) -> np.ndarray:
    fused = np.asarray(fused)
    if fused.dtype != np.uint8 or fused.shape != shape:
        raise EvaluationError(f"method {name!r} returned fused frames {fused.shape} {fused.dtype}; expected "
                              f"{shape} uint8")
    return fused
