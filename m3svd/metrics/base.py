"""The metric interface: one small contract for every lineage's implementation.

A :class:`Metric` scores fused frames against their sources. Inputs may be numpy arrays or torch tensors,
``uint8``, ``uint16`` or float (with ``data_range``, default by dtype), one image or a batch, grey or RGB,
channels-last or channels-first: :func:`m3svd.metrics.inputs.to_levels` converts them once to the ``uint8``
``N×H×W[×3]`` levels every convention is defined on. Each convention then reads those levels the way its
lineage reads files (grey or per channel, float32 or float64) inside its own functions.

One image in, one Python ``float`` out; a batch (a leading ``N`` axis, even ``N = 1``) gives a float64 array of
``N`` values (``N - span + 1`` for temporal metrics).

Source-only work (gradients, histograms, sub-band statistics) goes through :class:`Sources.memo`, so scoring
many fused candidates against the same :class:`Sources` computes it once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import InitVar, dataclass, field

import numpy as np

from m3svd.errors import M3SVDError
from m3svd.metrics.inputs import to_levels

KINDS = ("image", "temporal", "no-reference", "restoration")  # restoration: a restored stream vs its clean frames
_scoring = threading.local()  # per thread: (the fused frame score is running a metric set on, its memo) or None


class MetricError(M3SVDError, ValueError):
    """A metric got input it cannot score (shape, dtype), or is undefined on it (says which and why)."""


class MetricUndefined(MetricError):
    """A metric is undefined on some frames (constant image, identical sources); ``values`` holds every frame's
    value, non-finite where undefined, for callers that record undefined frames instead of stopping."""

    def __init__(self, message: str, values: np.ndarray):
        super().__init__(message)
        self.values = values


def _batch(name: str, array, data_range: float | None = None) -> tuple[np.ndarray, bool]:
    """``(uint8 N×H×W[×3] frames, single)``; an input that cannot be converted raises :class:`MetricError`."""
    try:
        return to_levels(name, array, data_range)
    except ValueError as error:
        raise MetricError(str(error)) from None


@dataclass(eq=False, kw_only=True)
class Sources:
    """The IR and VIS source frames of the fused frames, with a memo for derived arrays.

    Keyword-only, ``Sources(ir=..., vi=...)``: the two are the same shape when VIS is grey, so a swapped pair
    would score silently. Any input :mod:`m3svd.metrics.inputs` accepts; ``data_range`` applies to non-uint8 ones.
    """

    ir: np.ndarray
    vi: np.ndarray
    data_range: InitVar[float | None] = None
    _memo: dict = field(default_factory=dict, repr=False)
    _frames: dict = field(default_factory=dict, repr=False)

    def __post_init__(self, data_range):
        self.ir, _ = _batch("IR", self.ir, data_range)
        self.vi, _ = _batch("VIS", self.vi, data_range)
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
            self._frames[i] = Sources(ir=self.ir[i:i + 1], vi=self.vi[i:i + 1])
        return self._frames[i]


@dataclass(frozen=True)
class Metric:
    """``name`` in a ``convention``, with what a results table needs to interpret a value.

    ``reference`` says what the values were checked against: a reference implementation's outputs and the test
    that compares them, or ``None`` when no reference comparison exists (the definition is then read from the
    paper or code only). ``aliases`` are the names the lineage's own code uses for it (CDDFuse's ``VIFF`` is
    VIFp, registered as ``vif``), for the did-you-mean of :func:`m3svd.metrics.get`.
    """

    name: str
    convention: str
    compute: Callable[[Sources, np.ndarray], np.ndarray]  # (sources, fused N×H×W[×3] uint8) -> N values
    higher_is_better: bool
    value_range: tuple[float, float]
    version: str = "1"
    kind: str = "image"  # "image", "temporal", or "no-reference" (scores the fused frame alone: sources optional)
    description: str = ""
    span: int = 1  # consecutive frames per value: 1 image metrics, 2 frame pairs, 3 triplets (temporal)
    reference: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def lower_better(self) -> bool:  # pyiqa's spelling
        return not self.higher_is_better

    @property
    def id(self) -> str:
        return f"{self.name}@{self.convention}"

    def __call__(self, fused, *, ir=None, vi=None, sources: Sources | None = None,
                 data_range: float | None = None) -> float | np.ndarray:
        """The value of one image as a ``float``; for a batch (leading ``N``), float64 values of shape ``(N,)``
        (``(N - span + 1,)``: one per pair or triplet for temporal metrics). Sources by keyword (``ir=``,
        ``vi=``) or as a :class:`Sources`, which keeps source statistics for the next candidate."""
        fused, sources, single = _prepare(self.id, fused, ir, vi, sources, data_range,
                                          needs_sources=self.kind != "no-reference")
        return _single(_score([self], fused, sources)[self.name], single)

    def _check(self, fused: np.ndarray, sources: Sources | None) -> None:
        if sources is None and self.kind != "no-reference":
            raise MetricError(f"{self.id}: needs the IR and VIS sources (ir=..., vi=..., or sources=Sources(...))")
        if sources is not None and fused.shape[:3] != sources.ir.shape[:3]:
            raise MetricError(f"{self.id}: fused frames {fused.shape} do not match sources {sources.ir.shape}")
        if len(fused) < self.span:
            raise MetricError(f"{self.id}: needs at least {self.span} consecutive frames, found {len(fused)}")

    def checked(self, values: np.ndarray) -> np.ndarray:
        """``values``, or :class:`MetricUndefined` naming the first frame where one is not finite."""
        if not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise MetricUndefined(f"{self.id}: undefined on frame {bad} (e.g. a constant image); value {values[bad]}",
                                  values)
        return values

    def _compute(self, sources: Sources | None, fused: np.ndarray) -> np.ndarray:
        return np.asarray(self.compute(sources, fused), dtype=np.float64).reshape(len(fused) - self.span + 1)


def _prepare(label: str, fused, ir, vi, sources: Sources | None, data_range: float | None,
             needs_sources: bool) -> tuple[np.ndarray, Sources | None, bool]:
    """Convert the inputs once: ``(uint8 fused frames, sources, single image)``."""
    if sources is not None and (ir is not None or vi is not None):
        raise MetricError(f"{label}: pass the sources once, as ir=/vi= or as sources=, not both")
    if sources is None and (ir is not None or vi is not None or needs_sources):
        if ir is None or vi is None:
            raise MetricError(f"{label}: needs the IR and VIS sources (ir=..., vi=..., or sources=Sources(...))")
        sources = Sources(ir=ir, vi=vi, data_range=data_range)
    fused, single = _batch("fused", fused, data_range)
    return fused, sources, single


def _single(values: np.ndarray, single: bool) -> float | np.ndarray:
    return float(values[0]) if single and len(values) == 1 else values


def score(chosen: list[Metric], fused, sources: Sources | None = None, *, ir=None, vi=None,
          data_range: float | None = None, threads: int = 1, keep_undefined: bool = False,
          device: str | None = None) -> dict[str, float] | dict[str, np.ndarray]:
    """``{name: value}`` for every metric of ``chosen``, the same values as calling each: floats for one image,
    per-frame arrays for a batch. Sources as a :class:`Sources` or by keyword (``ir=``, ``vi=``).

    Image metrics run frame by frame, all of them on one frame before the next (its planes stay in that core's
    cache), on ``threads`` frames at once: OpenCV and numpy release the GIL, so two threads score the cddfuse
    set ≈ 1.8× faster per frame (``benchmarks/metrics_speed.py``); each frame's values do not depend on it.
    Other kinds run whole-batch after them. An undefined value raises :class:`MetricUndefined` unless
    ``keep_undefined``, which keeps it non-finite (``m3svd evaluate`` counts such frames).

    With a torch ``device`` (``"cpu"``, ``"cuda"``, …) the metrics that have a torch implementation
    (:func:`m3svd.metrics.torch_backend.serves`) are scored there, the whole batch at once in float64 — the same
    values to rounding — and the rest as above; the sources are uploaded once per :class:`Sources`.
    """
    names = [m.name for m in chosen]
    if len(set(names)) < len(names):
        raise MetricError(f"score: metric names repeat in {[m.id for m in chosen]}; score each convention apart")
    fused, sources, single = _prepare("score", fused, ir, vi, sources, data_range,
                                      needs_sources=any(m.kind != "no-reference" for m in chosen))
    values = _score(chosen, fused, sources, threads, keep_undefined, device)
    return {name: _single(v, single) for name, v in values.items()}


def _score(chosen: list[Metric], fused: np.ndarray, sources: Sources | None, threads: int = 1,
           keep_undefined: bool = False, device: str | None = None) -> dict[str, np.ndarray]:
    """:func:`score` on inputs already converted by :func:`_prepare`."""
    for m in chosen:
        m._check(fused, sources)
    values: dict[str, np.ndarray] = {} if device is None else _on_torch(chosen, fused, sources, device)
    per_frame = [m for m in chosen if m.kind == "image" and m.name not in values]
    if per_frame:
        frames = [sources] if len(fused) == 1 else [sources.frame(i) for i in range(len(fused))]

        def one(i: int) -> list[np.ndarray]:
            frame = fused[i:i + 1]
            _scoring.frame = (frame, {})
            try:
                return [m._compute(frames[i], frame) for m in per_frame]
            finally:
                _scoring.frame = None

        if threads > 1 and len(fused) > 1:
            with ThreadPoolExecutor(min(threads, len(fused))) as pool:
                rows = list(pool.map(one, range(len(fused))))
        else:
            rows = [one(i) for i in range(len(fused))]
        values.update({m.name: np.concatenate([row[k] for row in rows]) for k, m in enumerate(per_frame)})
    for m in chosen:
        if m.kind != "image":
            values[m.name] = m._compute(sources, fused)
        if not keep_undefined:
            m.checked(values[m.name])
    return {m.name: values[m.name] for m in chosen}


def fused_memo(fused: np.ndarray, key, compute: Callable[[], object]):
    """``compute()`` once per key while :func:`score` runs a metric set on this very fused frame (a convention reads
    it as grey, or as floats, the same way for every metric), returned read-only since metrics share it. Anywhere
    else it is computed each time: an array a caller may change in place between calls is never remembered."""
    current = getattr(_scoring, "frame", None)
    if current is None or current[0] is not fused:
        return compute()
    memo = current[1]
    if key not in memo:
        value = compute()
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        memo[key] = value
    return memo[key]


def _on_torch(chosen: list[Metric], fused: np.ndarray, sources: Sources, device: str) -> dict[str, np.ndarray]:
    """The values of the chosen metrics that torch serves, scored on ``device``; the sources' upload is memoised."""
    from m3svd.metrics import torch_backend

    names = tuple(m.name for m in chosen if torch_backend.serves(m))
    if not names:
        return {}
    scorer = torch_backend.scorer(names, device)
    on_device = sources.memo(("torch", str(scorer.device)), lambda: scorer.sources(ir=sources.ir, vi=sources.vi))
    return scorer.score(fused, sources=on_device)
