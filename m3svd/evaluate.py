"""Method × protocol → fused frames → per-frame metrics → results (DESIGN.md, "The flow of data").

One run writes, under ``out/``:

- ``fused/<clip>/<frame>.png`` — the method's fused frames, lossless, each written once (temp file, then rename);
- ``clips/<clip>.parquet`` — that clip's long-format rows (one per frame × metric), written after its frames, so
  a clip with a results file is complete; a rerun with the same run key (protocol hash, method identity and
  weights, input files, metric versions) skips it;
- ``results.parquet`` — every clip's rows; ``summary.parquet`` — per-clip means and the overall mean of clip means
  with a bootstrap confidence interval over clips; ``run.json`` — provenance of the run.

With ``predictions=DIR`` the fused frames are read from ``DIR/<clip>/*.png`` instead of produced by a method.
:func:`evaluate_methods` runs several methods in one pass, each into its own ``out/``, sharing every chunk's source
statistics and flows.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from m3svd import __version__
from m3svd.data.clip import Clip
from m3svd.data.frames import list_images, read_image, to_rgb
from m3svd.data.layouts import ClipSet, open_dataset
from m3svd.errors import DataError, M3SVDError
from m3svd.protocols import Protocol

RESULTS_SCHEMA = 1
BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


class EvaluationError(M3SVDError, ValueError):
    """An evaluation cannot start or continue: no data, a method that does not fit the protocol, bad predictions."""


# -- what to run -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MethodSpec:
    """How to rebuild the method in a worker process (methods hold weights; they are not sent, they are rebuilt)."""

    name: str
    device: str = "cpu"
    weights: str | None = None
    options: tuple[tuple[str, object], ...] = ()

    def build(self):
        from m3svd import methods

        return methods.create(self.name, device=self.device, weights=self.weights, **dict(self.options))


@dataclass(frozen=True)
class Job:
    """Everything one clip's evaluation needs, picklable (for ``--workers``): one output folder per method in
    ``methods``, or one for the ``predictions``."""

    protocol: Protocol
    dataset: str  # a dataset folder or "sample"
    clip: str
    outs: tuple[str, ...]
    methods: tuple[MethodSpec, ...] = ()
    predictions: str | None = None
    name: str | None = None  # the results' method name for predictions
    progress: bool = False
    flow_cache: str | None = None  # source-flow cache folder; None: flows kept in memory only
    metrics_device: str | None = None  # torch device for the image metrics that have a torch path; None: numpy
    threads: int = 1  # frames whose numpy image metrics are scored at once (metrics.score)


@dataclass
class Run:
    out: Path
    results: object  # pandas.DataFrame, long format
    summary: object  # pandas.DataFrame
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


# -- data ----------------------------------------------------------------------------------------------------
def find_dataset(protocol: Protocol, root: str | Path | None) -> ClipSet:
    """The dataset a protocol runs on: ``root`` itself if it holds one of the protocol's layouts, else the first of
    the protocol's folders under ``root`` (default: ``$M3SVD_ROOT`` or the cache directory)."""
    if protocol.layouts == ("sample",):
        return open_dataset("sample")
    from m3svd.paths import default_root

    base = Path(root).expanduser() if root is not None else default_root()
    candidates = [base] + [base / folder for folder in protocol.folders]
    for candidate in candidates:
        if candidate.is_dir():
            try:
                clipset = open_dataset(candidate)
            except DataError:
                continue
            if clipset.layout in protocol.layouts:
                return clipset
    looked = ", ".join(str(c) for c in candidates)
    raise EvaluationError(
        f"no {'/'.join(protocol.layouts)} dataset for protocol {protocol.id} (looked in {looked}); get it with "
        f"`m3svd download --subset {protocol.folders[-1]}`, pass --root DIR, or try the built-in data with "
        f"--protocol sample"
    )


def protocol_clips(protocol: Protocol, clipset: ClipSet) -> tuple[list[str], list[str]]:
    """``(present, missing)`` clip names of the protocol, in protocol order."""
    available = [c.name for c in clipset.select(protocol.split, protocol.variant)]
    wanted = protocol.clip_names(available)
    return [n for n in wanted if n in available], [n for n in wanted if n not in available]


def _open_clip(job: Job) -> tuple[Clip, Clip]:
    """``(input clip, reference clip)`` for one job."""
    clipset = open_dataset(job.dataset)
    clip = clipset.clip(job.clip, job.protocol.split, job.protocol.variant)
    if job.protocol.references == job.protocol.variant:
        return clip, clip
    if clip.reference is None or clip.reference.variant != job.protocol.references:
        raise EvaluationError(f"clip {clip.name}: protocol {job.protocol.id} needs its {job.protocol.references} "
                              f"reference, which this dataset does not have")
    return clip, clip.reference


def _frame_range(protocol: Protocol, clip: Clip) -> tuple[int, int]:
    start, stop = protocol.frames
    stop = len(clip) if stop is None else stop
    if not 0 <= start < stop <= len(clip):
        raise EvaluationError(f"clip {clip.name}: protocol {protocol.id} asks for frames [{start}, {stop}) "
                              f"but the clip has {len(clip)}")
    return start, stop


# -- one clip --------------------------------------------------------------------------------------------------
def run_key(job: Job, clip: Clip, reference: Clip, identity: dict) -> str:
    """Changes whenever the clip's rows could: protocol bytes, method identity, input files, metric versions."""
    from m3svd import metrics

    names = job.protocol.image_metrics + job.protocol.temporal_metrics
    parts = {
        "protocol": job.protocol.sha256,
        "method": identity,
        "inputs": [s.identity() for s in (clip.ir_source, clip.vi_source, reference.ir_source, reference.vi_source)],
        "metrics": [metrics.get(n, job.protocol.convention).id + "#" + metrics.get(n, job.protocol.convention).version
                    for n in names],
        "restoration": list(job.protocol.restoration_metrics),
        "schema": RESULTS_SCHEMA,
    }
    if job.predictions:
        folder = Path(job.predictions) / clip.name
        parts["predictions"] = [f"{p.name} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in list_images(folder)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _write_png(path: Path, frame: np.ndarray) -> None:
    import cv2

    bgr = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise EvaluationError(f"{path}: cannot encode a fused frame of shape {frame.shape}")
    tmp = path.with_name(f".{path.name}.tmp")
    data.tofile(str(tmp))
    os.replace(tmp, path)


def _predicted_frames(job: Job, clip: Clip, start: int, stop: int) -> Callable[[int, int], np.ndarray]:
    folder = Path(job.predictions) / clip.name
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: no fused frames for clip {clip.name} (expected one image per frame)")
    files = list_images(folder)
    if len(files) == len(clip):
        offset = 0
    elif len(files) == stop - start:  # only the protocol's frame range
        offset = start
    else:
        wanted = f"{len(clip)}" if stop - start == len(clip) else f"{len(clip)} (or the protocol's {stop - start})"
        raise EvaluationError(f"{folder}: expected {wanted} fused frames for clip {clip.name}, found {len(files)}")
    height, width = clip.size

    def read(a: int, b: int) -> np.ndarray:
        frames = []
        for path in files[a - offset:b - offset]:
            frame = to_rgb(read_image(path))
            if frame.shape[:2] != (height, width):
                raise EvaluationError(f"{path}: expected a {width}×{height} fused frame, found "
                                      f"{frame.shape[1]}×{frame.shape[0]}")
            frames.append(frame)
        return np.stack(frames)

    return read


def _restoration_scores(metric: str, restored: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """PSNR (data range 255) or SSIM (Wang et al., Gaussian σ=1.5, on luminance) of restored vs clean frames."""
    if metric == "psnr":
        diff = restored.astype(np.float64) - clean.astype(np.float64)
        mse = (diff.reshape(len(diff), -1) ** 2).mean(axis=1)
        with np.errstate(divide="ignore"):
            return np.where(mse == 0, np.inf, 10 * np.log10(255.0**2 / mse))
    from skimage.metrics import structural_similarity

    from m3svd.data.frames import BT601

    def grey(x):
        return x.astype(np.float64) @ BT601 if x.ndim == 4 else x.astype(np.float64)

    return np.array([structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False) for a, b in zip(grey(restored), grey(clean),
                                                                                        strict=True)])


def _values(metric, fused: np.ndarray, sources) -> np.ndarray:
    """Per-frame values; frames where the metric is undefined are kept as non-finite (the summary counts them)."""
    from m3svd.metrics.base import MetricUndefined

    try:
        return metric(fused, sources=sources)
    except MetricUndefined as undefined:
        return undefined.values


def _check_device(device: str) -> None:
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise EvaluationError(f"--metrics-device {device!r} is not a torch device (cpu, cuda, cuda:N)") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise EvaluationError(f"--metrics-device {device}: torch sees no CUDA device on this machine")


def _torch_scorer(device: str | None, protocol):
    """The torch scorer for the protocol's image metrics that have a torch path, or None (numpy for all)."""
    if device is None or protocol.convention != "m3svd":
        return None
    from m3svd.metrics.torch_backend import METRICS, TorchScorer

    names = [n for n in protocol.image_metrics if n in METRICS]
    return TorchScorer(names, device=device) if names else None


class _TemporalScorer:
    """Temporal metrics over a clip's fused streams (one per method), in chunks of bounded memory.

    Each chunk repeats the last ``span − 1`` frames of the one before, so every pair (triplet) of consecutive frames
    is scored exactly once and none straddles a chunk. A value is recorded at the **last** frame of its pair or
    triplet: the first ``span − 1`` frames of a clip have none. Every stream is scored against one set of source
    flows per chunk; those come from the on-disk cache when the same frames were met before (another run), keyed by
    content and estimator.
    """

    CHUNK = 16

    def __init__(self, names: tuple[str, ...], convention: str, flow: str, cache: str | None, streams: list):
        from m3svd import flow as fl
        from m3svd import metrics

        self.metrics = [metrics.get(n, convention) for n in names]
        self.estimator = fl.estimator(flow)
        self.cache = fl.FlowCache(cache) if cache else None
        self.carry = max((m.span for m in self.metrics), default=1) - 1
        self.streams = streams
        self.first = 0  # clip index of buffer[0]
        self.scored = None  # clip index of the first frame not yet scored as a last frame
        self.buffer: list[tuple] = []  # (ir, vi, (fused, digest) per stream)

    def push(self, first: int, ir, vi, fused: list[np.ndarray], digests: list[list[str]]) -> None:
        if not self.metrics:
            return
        if self.scored is None:
            self.first = self.scored = first
        self.buffer += [(ir[i], vi[i], [(f[i], d[i]) for f, d in zip(fused, digests, strict=True)])
                        for i in range(len(ir))]
        if len(self.buffer) - self.carry >= self.CHUNK:
            self.flush()

    def flush(self) -> None:
        from m3svd.metrics.temporal import VideoSources

        if not self.buffer or self.first + len(self.buffer) <= self.scored:
            return
        ir, vi = (np.stack([item[i] for item in self.buffer]) for i in range(2))
        sources = VideoSources(ir, vi, flow=self.estimator, cache=self.cache)
        for s, stream in enumerate(self.streams):
            fused = np.stack([item[2][s][0] for item in self.buffer])
            digests = [item[2][s][1] for item in self.buffer]
            for metric in self.metrics:
                if len(fused) < metric.span:
                    continue
                values = _values(metric, fused, sources)
                last = np.arange(metric.span - 1, len(fused))  # buffer index of each value's last frame
                new = self.first + last >= self.scored
                stream.emit(self.first + last[new], metric.name, values[new], [digests[i] for i in last[new]])
        self.scored = self.first + len(self.buffer)
        keep = min(self.carry, len(self.buffer))
        self.first += len(self.buffer) - keep
        self.buffer = self.buffer[len(self.buffer) - keep:]


SCORE_CHUNK = 8  # frames scored together; every stream of a clip is scored on the same chunks


class _Stream:
    """One method's (or the saved predictions') fused frames for one clip, and the rows scored from them.

    Frames come from the method's own windows (written to ``fused/`` as they are made) and are handed out in the
    clip's scoring chunks, so several methods advance in lockstep and share each chunk's source statistics.
    """

    def __init__(self, job: Job, spec: MethodSpec | None, out: str, clip: Clip, reference: Clip, span: range):
        self.job, self.spec, self.clip, self.span = job, spec, clip, span
        self.method = spec.build() if spec else None
        if self.method is not None and "ir" in self.method.inputs and "ir" not in job.protocol.inputs:
            raise EvaluationError(f"method {self.method.name!r} needs infrared input; protocol {job.protocol.id} "
                                  f"gives visible frames only")
        self.identity = self.method.identity() if self.method else {
            "method": job.name, "method_version": "predictions", "weights": None, "weights_sha256": None,
            "options": {}}
        self.key = run_key(job, clip, reference, self.identity)
        self.out = Path(out)
        self.result_path = self.out / "clips" / f"{clip.name}.parquet"
        self.columns: dict[str, list] = {k: [] for k in ("frame", "metric", "value", "fused_sha256")}
        self._frames = None  # the iterator of (first, fused, restored) windows, started on the first take
        self._first, self._fused, self._restored = span.start, None, {}

    def done(self) -> bool:
        """Results for this run key are on disk already."""
        import pandas as pd

        if not self.result_path.exists():
            return False
        previous = pd.read_parquet(self.result_path, columns=["run_key"])
        return bool(len(previous)) and bool((previous["run_key"] == self.key).all())

    def _windows(self):
        start, stop = self.span.start, self.span.stop
        if self.method is None:
            read = _predicted_frames(self.job, self.clip, start, stop)
            for a in range(start, stop, SCORE_CHUNK):
                yield a, read(a, min(a + SCORE_CHUNK, stop)), {}
            return
        protocol = self.job.protocol
        folder = self.out / "fused" / self.clip.name
        folder.mkdir(parents=True, exist_ok=True)
        for window in self.method.plan(stop - start):
            ir, vi = self.clip.frames(start + window.start, start + window.stop)
            fusion = self.method.fuse(ir if "ir" in protocol.inputs else None, vi)
            keep = slice(window.keep_start - window.start, window.keep_stop - window.start)
            fused = _checked_fusion(self.method.name, fusion.fused[keep], vi[keep].shape)
            first = start + window.keep_start
            for offset, frame in enumerate(fused):
                _write_png(folder / f"{first + offset:06d}.png", frame)
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

    def write(self, image_metrics: list, temporal: _TemporalScorer, input_sha256: str) -> None:
        """The clip's rows with provenance, sorted by frame then metric, written atomically."""
        import pandas as pd

        columns = self.columns
        order = {name: i for i, name in enumerate(dict.fromkeys(columns["metric"]))}
        table = pd.DataFrame(columns)
        table = table.iloc[np.lexsort((table["metric"].map(order), table["frame"]))].reset_index(drop=True)
        kinds = {m.name: m for m in image_metrics + temporal.metrics}
        convention = self.job.protocol.convention
        provenance = _provenance(self.job, self.spec, self.clip, self.identity, self.key, input_sha256,
                                 temporal.estimator.id)
        for column, value in provenance.items():
            table[column] = value
        table["convention"] = [kinds[m].convention if m in kinds else convention for m in table["metric"]]
        table["metric_version"] = [kinds[m].version if m in kinds else "1" for m in table["metric"]]
        table["kind"] = [kinds[m].kind if m in kinds else "restoration" for m in table["metric"]]
        table["higher_is_better"] = [kinds[m].higher_is_better if m in kinds else True for m in table["metric"]]
        _atomic_parquet(table[ROW_COLUMNS], self.result_path)


def evaluate_clip(job: Job) -> list[str]:
    """Fuse (or read) one clip for every output of the job, score every frame, write each output's
    ``clips/<clip>.parquet``; returns ``"done"`` or ``"skipped"`` per output.

    Outputs still to do advance together, chunk by chunk: each chunk's source statistics (image metrics) and
    source flows (temporal metrics) are computed once and used for every method.
    """
    from m3svd import metrics

    protocol = job.protocol
    clip, reference = _open_clip(job)
    start, stop = _frame_range(protocol, clip)
    specs = job.methods or (None,)
    streams = [_Stream(job, spec, out, clip, reference, range(start, stop)) for spec, out in
               zip(specs, job.outs, strict=True)]
    outcomes = ["skipped" if stream.done() else "done" for stream in streams]
    streams = [stream for stream, outcome in zip(streams, outcomes, strict=True) if outcome == "done"]
    if not streams:
        return outcomes
    image_metrics = [metrics.get(n, protocol.convention) for n in protocol.image_metrics]
    on_torch = _torch_scorer(job.metrics_device, protocol)
    temporal = _TemporalScorer(protocol.temporal_metrics, protocol.convention, protocol.flow, job.flow_cache,
                               streams)
    input_digest = hashlib.sha256()
    bar = _bar(job.progress, stop - start, clip.name if len(streams) == 1 else f"{clip.name} ×{len(streams)}")
    for a in range(start, stop, SCORE_CHUNK):
        b = min(a + SCORE_CHUNK, stop)
        ir, vi = clip.frames(a, b)
        input_digest.update(ir.data)
        input_digest.update(vi.data)
        ref_ir, ref_vi = (ir, vi) if reference is clip else reference.frames(a, b)
        sources = metrics.Sources(ref_ir, ref_vi)
        torch_sources = on_torch.sources(ref_ir, ref_vi) if on_torch else None
        chunk_fused, chunk_digests = [], []
        for stream in streams:
            fused, restored = stream.take(a, b)
            digests = [hashlib.sha256(np.ascontiguousarray(f).data).hexdigest() for f in fused]
            values = on_torch.score(fused, sources=torch_sources) if on_torch else {}
            values.update(metrics.score([m for m in image_metrics if m.name not in values], fused, sources,
                                        threads=job.threads, keep_undefined=True))
            values = {m.name: values[m.name] for m in image_metrics}
            for name, frames in restored.items():
                clean = ref_ir if name == "ir" else ref_vi
                for metric in protocol.restoration_metrics:
                    values[f"restored_{name}_{metric}"] = _restoration_scores(metric, frames, clean)
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


ROW_COLUMNS = [
    "schema", "toolkit_version", "protocol", "protocol_version", "protocol_sha256", "dataset_layout", "clip",
    "variant", "lossy", "input_sha256", "frame", "metric", "convention", "metric_version", "kind", "higher_is_better",
    "value", "method", "method_version", "weights_sha256", "method_options", "source", "flow_estimator", "device",
    "fused_sha256", "run_key",
]


def _provenance(job: Job, spec: MethodSpec | None, clip: Clip, identity: dict, key: str, input_sha256: str,
                flow_id: str) -> dict:
    return {
        "schema": RESULTS_SCHEMA,
        "toolkit_version": __version__,
        "protocol": job.protocol.id,
        "protocol_version": job.protocol.version,
        "protocol_sha256": job.protocol.sha256,
        "dataset_layout": clip.layout,
        "clip": clip.name,
        "variant": clip.variant or "clean",
        "lossy": bool(clip.lossy),
        "input_sha256": input_sha256,
        "method": identity["method"],
        "method_version": identity["method_version"],
        "weights_sha256": identity["weights_sha256"] or "",
        "method_options": json.dumps(identity["options"], sort_keys=True, default=str),
        "source": "predictions" if job.predictions else "method",
        "flow_estimator": flow_id if job.protocol.temporal_metrics else "",
        "device": spec.device if spec else "",
        "run_key": key,
    }


def _checked_fusion(name: str, fused: np.ndarray, shape: tuple) -> np.ndarray:
    fused = np.asarray(fused)
    if fused.dtype != np.uint8 or fused.shape != shape:
        raise EvaluationError(f"method {name!r} returned fused frames {fused.shape} {fused.dtype}; expected "
                              f"{shape} uint8")
    return fused


def _atomic_parquet(table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, path)


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _bar(show: bool, total: int, desc: str):
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", leave=False, file=sys.stderr)


# -- summary ------------------------------------------------------------------------------------------------------
def summarise(results) -> object:
    """Per-clip means, and per metric the mean of clip means with a bootstrap CI over clips (seeded)."""
    import pandas as pd

    defined = results.assign(value=results["value"].where(np.isfinite(results["value"])))
    per_clip = (defined.groupby(["metric", "clip"], sort=True)["value"]
                .agg(mean="mean", frames="size", defined="count").reset_index())
    per_clip["undefined"] = per_clip["frames"] - per_clip.pop("defined")
    rows = []
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    for metric, group in per_clip.groupby("metric", sort=True):
        means = group["mean"].to_numpy()
        finite = means[np.isfinite(means)]
        if len(finite) > 1:
            draws = rng.choice(finite, size=(BOOTSTRAP_SAMPLES, len(finite)), replace=True).mean(axis=1)
            low, high = np.quantile(draws, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
        else:
            low = high = float(finite[0]) if len(finite) else float("nan")
        rows.append({"metric": metric, "clip": "", "mean": float(finite.mean()) if len(finite) else float("nan"),
                     "ci_low": float(low), "ci_high": float(high), "frames": int(group["frames"].sum()),
                     "undefined": int(group["undefined"].sum()), "clips": len(group)})
    overall = pd.DataFrame(rows)
    per_clip = per_clip.assign(ci_low=np.nan, ci_high=np.nan, clips=1)
    summary = pd.concat([overall, per_clip[overall.columns]], ignore_index=True)
    meta = results.iloc[0]
    for column in ("protocol", "protocol_version", "protocol_sha256", "method", "method_version", "weights_sha256"):
        summary[column] = meta[column]
    directions = results.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    summary["higher_is_better"] = summary["metric"].map(directions)
    return summary


def format_summary(summary, metrics_order: list[str] | None = None) -> str:
    """A terminal table: one row per clip and the overall mean with its confidence interval."""
    overall = summary[summary["clip"] == ""].set_index("metric")
    names = [m for m in (metrics_order or list(overall.index)) if m in overall.index]
    names += [m for m in overall.index if m not in names]
    clips = [c for c in dict.fromkeys(summary["clip"]) if c]
    table = summary.pivot_table(index="clip", columns="metric", values="mean")
    width = max(10, *(len(n) + 2 for n in names))
    arrows = {m: "↑" if overall.loc[m, "higher_is_better"] else "↓" for m in names}
    lines = [f"{'clip':<12}" + "".join(f"{n + arrows[n]:>{width}}" for n in names)]
    for clip in clips:
        lines.append(f"{clip:<12}" + "".join(f"{table.loc[clip, n]:>{width}.4f}" for n in names))
    lines.append(f"{'mean':<12}" + "".join(f"{overall.loc[n, 'mean']:>{width}.4f}" for n in names))
    half = {n: (overall.loc[n, "ci_high"] - overall.loc[n, "ci_low"]) / 2 for n in names}
    lines.append(f"{'±95% CI/2':<12}" + "".join(f"{half[n]:>{width}.4f}" for n in names))
    return "\n".join(lines)


# -- the run -------------------------------------------------------------------------------------------------------
def evaluate(
    protocol: Protocol,
    out: str | Path,
    *,
    method: MethodSpec | None = None,
    predictions: str | Path | None = None,
    name: str | None = None,
    **options,
) -> Run:
    """Evaluate a method (or saved predictions) on every clip of a protocol present under ``root``.

    ``options`` are :func:`evaluate_methods`'s: ``root``, ``workers``, ``executor``, ``ray_address``,
    ``flow_cache``, ``metrics_device``, ``progress``, ``log``. With ``predictions=DIR`` the fused frames are read
    from ``DIR/<clip>/*.png`` and the results carry ``name``.
    """
    if (method is None) == (predictions is None):
        raise EvaluationError("give a method or a predictions folder, not both or neither")
    if predictions is not None:
        if not Path(predictions).is_dir():
            raise EvaluationError(f"{predictions}: no such predictions folder")
        return _evaluate(protocol, [(None, out)], predictions=str(predictions), name=name, **options)[0]
    return evaluate_methods(protocol, [(method, out)], **options)[0]


def evaluate_methods(
    protocol: Protocol,
    runs: list[tuple[MethodSpec, str | Path]],
    *,
    root: str | Path | None = None,
    workers: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    flow_cache: str | Path | bool | None = None,
    metrics_device: str | None = None,
    progress: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> list[Run]:
    """Evaluate several methods in one pass over the protocol's clips, each into its own ``out`` folder.

    The results are those of separate :func:`evaluate` runs (same rows, run keys and files), but each chunk of
    source frames is decoded, and its source statistics and flows computed, once for all the methods.

    ``executor="local"`` runs clips in this process (``workers=1``) or in ``workers`` processes; ``"ray"`` runs
    each clip as a Ray task on the cluster at ``ray_address`` (default: a local Ray instance with ``workers``
    CPUs). Every executor writes the same files; the ``out`` folders must be on storage the workers share. A local
    process scores a chunk's frames on its share of the cores (one thread per core with ``workers=1``); the
    values do not depend on it.

    ``flow_cache``: the folder where source-video flows are kept for temporal metrics (default: ``cache/flow``
    under the dataset root, shared by every method and run); ``False`` keeps them in memory only.

    ``metrics_device`` (e.g. ``"cuda"``): score the ``m3svd`` convention's image metrics that have a torch path
    (:mod:`m3svd.metrics.torch_backend`) on that device in float64 — the same values as numpy to 1e-9, so results
    do not depend on the device; the rest stay on numpy.
    """
    if not runs:
        raise EvaluationError("no method to evaluate")
    outs = [Path(out).resolve() for _, out in runs]
    if len(set(outs)) < len(outs):
        raise EvaluationError("each method needs its own output folder")
    for spec, _ in runs:
        built = spec.build()  # fail fast (unknown method, options, missing weights) before any clip runs
        if "ir" in built.inputs and "ir" not in protocol.inputs:
            raise EvaluationError(f"method {spec.name!r} needs infrared input; protocol {protocol.id} gives "
                                  f"visible frames only")
        del built
    return _evaluate(protocol, runs, root=root, workers=workers, executor=executor, ray_address=ray_address,
                     flow_cache=flow_cache, metrics_device=metrics_device, progress=progress, log=log)


def _evaluate(protocol: Protocol, runs: list, *, predictions: str | None = None, name: str | None = None,
              root=None, workers=1, executor="local", ray_address=None, flow_cache=None, metrics_device=None,
              progress=False, log=lambda line: None) -> list[Run]:
    if executor not in EXECUTORS:
        raise EvaluationError(f"unknown executor {executor!r}; choose {', '.join(EXECUTORS)}")
    if metrics_device is not None:
        _check_device(metrics_device)
    clipset = find_dataset(protocol, root)
    present, missing = protocol_clips(protocol, clipset)
    if not present:
        raise EvaluationError(f"{clipset.root}: none of the clips of protocol {protocol.id} is there")
    if missing:
        log(f"{len(present)} of {len(present) + len(missing)} protocol clips present; the summary covers those "
            f"only (missing: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''})")
    outs = [Path(out) for _, out in runs]
    for out in outs:
        out.mkdir(parents=True, exist_ok=True)
    dataset = "sample" if clipset.layout == "sample" else str(clipset.root)
    if flow_cache is None:
        from m3svd.flow import default_cache_dir

        flow_cache = default_cache_dir()
    cache = str(flow_cache) if flow_cache and protocol.temporal_metrics else None
    specs = tuple(spec for spec, _ in runs if spec is not None)
    threads = 1 if executor == "ray" else _threads_per_worker(workers)  # a Ray task holds one CPU
    jobs = [Job(protocol, dataset, clip, tuple(str(out) for out in outs), specs, predictions, name,
                progress and workers == 1, cache, metrics_device, threads) for clip in present]
    outcomes = _run_ray(jobs, workers, ray_address) if executor == "ray" else _run_jobs(jobs, workers, progress)
    return [_finish(protocol, out, [o[i] for o in outcomes], jobs, clipset, dataset, missing, metrics_device, log)
            for i, out in enumerate(outs)]


def _finish(protocol, out: Path, outcomes: list[str], jobs: list[Job], clipset, dataset: str, missing: list[str],
            metrics_device: str | None, log) -> Run:
    """One output's results, summary and run.json from its clip files."""
    import pandas as pd

    present = [job.clip for job in jobs]
    skipped = [clip for clip, outcome in zip(present, outcomes, strict=True) if outcome == "skipped"]
    for clip in skipped:
        log(f"{clip}: results for these inputs, method and weights exist already in {out}; skipped")
    results = pd.concat([pd.read_parquet(out / "clips" / f"{clip}.parquet") for clip in present], ignore_index=True)
    summary = summarise(results)
    for row in summary[(summary["clip"] == "") & (summary["undefined"] > 0)].itertuples():
        log(f"{row.metric}: undefined on {row.undefined} of {row.frames} frames (e.g. constant or identical images); "
            f"stored as non-finite values and left out of the means")
    _atomic_parquet(results, out / "results.parquet")
    _atomic_parquet(summary, out / "summary.parquet")
    run_info = {
        "toolkit_version": __version__, "protocol": protocol.key, "protocol_sha256": protocol.sha256,
        "dataset": dataset, "dataset_layout": clipset.layout, "clips": present, "missing_clips": missing,
        "complete": not missing, "method": results.iloc[0]["method"], "source": results.iloc[0]["source"],
        "python": platform.python_version(), "platform": platform.platform(), "metrics_device": metrics_device,
    }
    tmp = out / ".run.json.tmp"
    tmp.write_text(json.dumps(run_info, indent=2) + "\n")
    os.replace(tmp, out / "run.json")
    return Run(out, results, summary, skipped, missing)


def _threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def _run_jobs(jobs: list[Job], workers: int, progress: bool) -> list[str]:
    if workers <= 1 or len(jobs) == 1:
        return [evaluate_clip(job) for job in jobs]
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn"),
                             initializer=_limit_threads, initargs=(_threads_per_worker(workers),)) as pool:
        futures = [pool.submit(evaluate_clip, job) for job in jobs]
        bar = _bar(progress, len(jobs), "clips")
        outcomes = []
        for future in futures:
            outcomes.append(future.result())
            bar.update(1)
        bar.close()
        return outcomes


EXECUTORS = ("local", "ray")


def _run_ray(jobs: list[Job], workers: int, address: str | None) -> list[str]:
    """One Ray task per clip (one CPU each); a local instance is started, and stopped, when none is running."""
    try:
        import ray
    except ImportError:
        raise EvaluationError("--executor ray needs Ray: pip install 'm3svd[distributed]'") from None
    started = not ray.is_initialized()
    if started:
        kwargs = {"address": address} if address else {"num_cpus": workers, "object_store_memory": 100 * 2**20}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
    try:
        task = ray.remote(num_cpus=1)(evaluate_clip)
        return ray.get([task.remote(job) for job in jobs])
    finally:
        if started:
            ray.shutdown()


def _limit_threads(threads: int) -> None:
    """Workers share the cores: without this each would start one thread per core in torch and OpenCV. They also
    keep freed memory, as the CLI process does (:func:`m3svd.memory.keep_freed_memory`)."""
    import cv2
    import torch

    from m3svd.memory import keep_freed_memory

    keep_freed_memory()

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
