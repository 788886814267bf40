"""Metrics on fused frames: per-frame values that keep undefined frames, the check of a torch device, restoration
scores, and the temporal scorer that walks a clip in chunks of bounded memory."""

from __future__ import annotations

import numpy as np

from m3svd.evaluate.jobs import EvaluationError


def restoration_scores(metric: str, restored: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """The registered restoration metric ``metric`` (:mod:`m3svd.metrics.conventions.restoration`) of restored vs
    clean frames, per frame; undefined frames (identical: PSNR +inf) kept."""
    from m3svd import metrics
    from m3svd.metrics.conventions.restoration import CONVENTION, restoration_sources

    return per_frame_values(metrics.get(metric, CONVENTION), restored, restoration_sources(clean))


def restoration_metrics(protocol) -> list:
    """The protocol's restoration metrics, as registered (their convention and version go into the rows)."""
    from m3svd import metrics
    from m3svd.metrics.conventions.restoration import CONVENTION

    return [metrics.get(name, CONVENTION) for name in protocol.restoration_metrics]


def per_frame_values(metric, fused: np.ndarray, sources) -> np.ndarray:
    """Per-frame values; frames where the metric is undefined are kept as non-finite (the summary counts them)."""
    from m3svd.metrics.base import MetricUndefined

    try:
        return metric(fused, sources=sources)
    except MetricUndefined as undefined:
        return undefined.values


def check_device(device: str, flag: str = "--metrics-device") -> None:
    """A device torch knows and this machine has; checked before any clip runs, so a typo never reaches the rows."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise EvaluationError(f"{flag} {device!r} is not a torch device (cpu, cuda, cuda:N)") from None
    if parsed.type not in ("cpu", "cuda", "mps"):
        raise EvaluationError(f"{flag} {device!r}: unsupported device type {parsed.type!r}; use cpu, cuda or cuda:N")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise EvaluationError(f"{flag} {device}: torch sees no CUDA device on this machine; use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise EvaluationError(f"{flag} {device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                                  f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise EvaluationError(f"{flag} {device}: torch sees no MPS device on this machine; use cpu")


class TemporalScorer:
    """Temporal metrics over a clip's fused streams (one per method), in chunks of bounded memory.

    Each chunk repeats the last ``span − 1`` frames of the one before, so every pair (triplet) of consecutive frames
    is scored exactly once and none straddles a chunk. A value is recorded at the **last** frame of its pair or
    triplet: the first ``span − 1`` frames of a clip have none. Every stream is scored against one set of source
    flows per chunk; those come from the on-disk cache when the same frames were met before (another run), keyed by
    content and estimator.

    ``threads`` > 1: each chunk's flows are computed pair by pair on that many threads, then a stream's metrics
    run side by side (OpenCV, numpy and torch release the GIL); each value is the one computed on one thread.
    """

    CHUNK = 16

    def __init__(self, names: tuple[str, ...], convention: str, flow: str, cache: str | None, streams: list,
                 threads: int = 1):
        from m3svd import flow as fl
        from m3svd import metrics

        self.metrics = [metrics.get(n, convention) for n in names]
        self.estimator = fl.estimator(flow)
        self.cache = fl.FlowCache(cache) if cache else None
        self.carry = max((m.span for m in self.metrics), default=1) - 1
        self.streams = streams
        self.threads = threads
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
        from concurrent.futures import ThreadPoolExecutor

        from m3svd.metrics.temporal import THREADED, VideoSources, prefetch

        if not self.buffer or self.first + len(self.buffer) <= self.scored:
            return
        ir, vi = (np.stack([item[i] for item in self.buffer]) for i in range(2))
        sources = VideoSources(ir=ir, vi=vi, flow=self.estimator, cache=self.cache)
        with ThreadPoolExecutor(self.threads) if self.threads > 1 else _Inline() as pool:
            for s, stream in enumerate(self.streams):
                fused = np.stack([item[2][s][0] for item in self.buffer])
                digests = [item[2][s][1] for item in self.buffer]
                chosen = [m for m in self.metrics if len(fused) >= m.span]
                prefetch(sources, fused, [m.name for m in chosen], pool)
                threaded = {m.name: pool.submit(per_frame_values, m, fused, sources)
                            for m in chosen if m.name in THREADED}
                results = [threaded[m.name].result() if m.name in threaded else per_frame_values(m, fused, sources)
                           for m in chosen]
                for metric, values in zip(chosen, results, strict=True):
                    last = np.arange(metric.span - 1, len(fused))  # buffer index of each value's last frame
                    new = self.first + last >= self.scored
                    stream.emit(self.first + last[new], metric.name, values[new], [digests[i] for i in last[new]])
        self.scored = self.first + len(self.buffer)
        keep = min(self.carry, len(self.buffer))
        self.first += len(self.buffer) - keep
        self.buffer = self.buffer[len(self.buffer) - keep:]


class _Inline:
    """A one-thread stand-in for ``ThreadPoolExecutor``: ``map`` and ``submit`` run in the calling thread."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def map(fn, *iterables):
        return map(fn, *iterables)

    @staticmethod
    def submit(fn, *args):
        from concurrent.futures import Future

        done = Future()
        try:
            done.set_result(fn(*args))
        except BaseException as error:  # raised again by result(), in order, as a pool would
            done.set_exception(error)
        return done
