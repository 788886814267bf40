"""The metric interface: one small contract for every lineage's implementation.

A :class:`Metric` scores a batch of ``N`` fused frames against their sources and returns ``N`` values.
Inputs are what the readers give (``uint8``; IR ``N×H×W``, VIS ``N×H×W×3`` RGB, fused ``N×H×W`` or
``N×H×W×3``; a single frame without the leading ``N`` works too). Each convention converts them the way its
lineage reads files (grey or per channel, float32 or float64) inside its own functions.

Source-only work (gradients, histograms, sub-band statistics) goes through :class:`Sources.memo`, so scoring
many fused candidates against the same :class:`Sources` computes it once.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from m3svd.errors import M3SVDError

KINDS = ("image", "temporal", "no-reference")


class MetricError(M3SVDError, ValueError):
    """A metric got input it cannot score (shape, dtype), or is undefined on it (says which and why)."""


class MetricUndefined(MetricError):
    """A metric is undefined on some frames (constant image, identical sources); ``values`` holds every frame's
    value, non-finite where undefined, for callers that record undefined frames instead of stopping."""

    def __init__(self, message: str, values: np.ndarray):
        super().__init__(message)
        self.values = values


def _batch(name: str, array, grey_or_rgb: bool) -> np.ndarray:
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise MetricError(f"{name}: expected uint8 frames (0-255), found {a.dtype}")
    single = a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3 and grey_or_rgb)
    a = a[None] if single else a
    if a.ndim not in (3, 4) or (a.ndim == 4 and a.shape[-1] != 3):
        raise MetricError(f"{name}: expected N×H×W or N×H×W×3 frames, found shape {np.shape(array)}")
    return a


@dataclass(eq=False)
class Sources:
    """IR ``N×H×W`` and VIS ``N×H×W×3`` (or grey ``N×H×W``) source frames, with a memo for derived arrays."""

    ir: np.ndarray
    vi: np.ndarray
    _memo: dict = field(default_factory=dict, repr=False)
    _frames: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.ir = _batch("IR", self.ir, grey_or_rgb=True)
        self.vi = _batch("VIS", self.vi, grey_or_rgb=True)
        if self.ir.shape[:3] != self.vi.shape[:3]:
            raise MetricError(f"IR frames {self.ir.shape} and VIS frames {self.vi.shape} differ in size or count")

    def __len__(self) -> int:
        return len(self.ir)

    def memo(self, key, compute: Callable[[], object]):
        """``compute()`` once per key for these sources (key: a tuple naming the quantity and convention)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def memoised(self) -> dict:
        """What is memoised so far, ``{(frame, key): value}``: frame ``None`` for the batch, ``i`` for
        :meth:`frame` ``i``."""
        out = {(None, k): v for k, v in self._memo.items()}
        out.update({(i, k): v for i, s in self._frames.items() for k, v in s._memo.items()})
        return out

    def frame(self, i: int) -> Sources:
        """Frame ``i`` alone, with its own memo, kept like the batch's: image metrics score a batch frame by
        frame, because one 640×480 frame's float64 planes stay in cache where a batch's do not (measured:
        the cddfuse set ≈ 17 % faster per frame, ``benchmarks/metrics_speed.py``)."""
        if i not in self._frames:
            self._frames[i] = Sources(self.ir[i:i + 1], self.vi[i:i + 1])
        return self._frames[i]


@dataclass(frozen=True)
class Metric:
    """``name`` in a ``convention``, with what a results table needs to interpret a value."""

    name: str
    convention: str
    compute: Callable[[Sources, np.ndarray], np.ndarray]  # (sources, fused N×H×W[×3] uint8) -> N values
    higher_is_better: bool
    value_range: tuple[float, float]
    version: str = "1"
    kind: str = "image"  # "image", "temporal", or "no-reference" (scores the fused frame alone: sources optional)
    description: str = ""
    span: int = 1  # consecutive frames per value: 1 image metrics, 2 frame pairs, 3 triplets (temporal)

    @property
    def lower_better(self) -> bool:  # pyiqa's spelling
        return not self.higher_is_better

    @property
    def id(self) -> str:
        return f"{self.name}@{self.convention}"

    def __call__(self, fused, ir=None, vi=None, sources: Sources | None = None) -> np.ndarray:
        """Per-frame values, float64, shape ``(N,)`` (``(N - span + 1,)``: one per pair or triplet for temporal
        metrics). Pass ``sources`` to reuse source statistics."""
        fused, sources = self._inputs(fused, ir, vi, sources)
        if self.kind == "image":  # frame by frame: see Sources.frame
            return score([self], fused, sources)[self.name]
        return self.checked(self._compute(sources, fused))

    def _inputs(self, fused, ir, vi, sources: Sources | None) -> tuple[np.ndarray, Sources | None]:
        if sources is None and (ir is not None or self.kind != "no-reference"):
            if ir is None or vi is None:
                raise MetricError(f"{self.id}: needs the IR and VIS sources (or a Sources object)")
            sources = Sources(ir, vi)
        fused = _batch("fused", fused, grey_or_rgb=True)
        if sources is not None and fused.shape[:3] != sources.ir.shape[:3]:
            raise MetricError(f"{self.id}: fused frames {fused.shape} do not match sources {sources.ir.shape}")
        if len(fused) < self.span:
            raise MetricError(f"{self.id}: needs at least {self.span} consecutive frames, found {len(fused)}")
        return fused, sources

    def checked(self, values: np.ndarray) -> np.ndarray:
        """``values``, or :class:`MetricUndefined` naming the first frame where one is not finite."""
        if not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise MetricUndefined(f"{self.id}: undefined on frame {bad} (e.g. a constant image); value {values[bad]}",
                                  values)
        return values

    def _compute(self, sources: Sources | None, fused: np.ndarray) -> np.ndarray:
        return np.asarray(self.compute(sources, fused), dtype=np.float64).reshape(len(fused) - self.span + 1)


def score(chosen: list[Metric], fused, sources: Sources, threads: int = 1,
          keep_undefined: bool = False) -> dict[str, np.ndarray]:
    """``{name: per-frame values}`` for every metric of ``chosen`` on the batch, the same values as calling each.

    Image metrics run frame by frame, all of them on one frame before the next (its planes stay in that core's
    cache), on ``threads`` frames at once: OpenCV and numpy release the GIL, so two threads score the cddfuse
    set ≈ 1.8× faster per frame (``benchmarks/metrics_speed.py``); each frame's values do not depend on it.
    Other kinds run whole-batch after them. An undefined value raises :class:`MetricUndefined` unless
    ``keep_undefined``, which keeps it non-finite (``m3svd evaluate`` counts such frames).
    """
    names = [m.name for m in chosen]
    if len(set(names)) < len(names):
        raise MetricError(f"score: metric names repeat in {[m.id for m in chosen]}; score each convention apart")
    per_frame = [m for m in chosen if m.kind == "image"]
    values: dict[str, np.ndarray] = {}
    if per_frame:
        fused, sources = per_frame[0]._inputs(fused, None, None, sources)
        frames = [sources] if len(fused) == 1 else [sources.frame(i) for i in range(len(fused))]

        def one(i: int) -> list[np.ndarray]:
            return [m._compute(frames[i], fused[i:i + 1]) for m in per_frame]

        if threads > 1 and len(fused) > 1:
            with ThreadPoolExecutor(min(threads, len(fused))) as pool:
                rows = list(pool.map(one, range(len(fused))))
        else:
            rows = [one(i) for i in range(len(fused))]
        values = {m.name: np.concatenate([row[k] for row in rows]) for k, m in enumerate(per_frame)}
    for m in chosen:
        if m.kind != "image":
            try:
                values[m.name] = m(fused, sources=sources)
            except MetricUndefined as undefined:
                if not keep_undefined:
                    raise
                values[m.name] = undefined.values
        elif not keep_undefined:
            m.checked(values[m.name])
    return {m.name: values[m.name] for m in chosen}
