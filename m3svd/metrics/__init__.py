"""Fusion-quality metrics: one registry, explicit conventions.

``get("qabf", convention="vifb")`` returns a :class:`Metric`; ``list()`` what is registered; ``score(["en",
"ssim"], fused, ir=ir, vi=vi)`` scores a set (names or :class:`Metric` objects), frames in parallel with
``threads``. Conventions reproduce a lineage's reference implementation (``vifb``, ``tang``, ``cddfuse``,
``vfbench``) or follow the leaderboard's definitions (``m3svd``); see ``metrics/CONVENTIONS.md``.

In a notebook::

    from m3svd import metrics
    metrics.get("qabf")(fused, ir=ir, vi=vi)            # one image in → one float out
    metrics.score(["en", "ssim"], fused, ir=ir, vi=vi)  # {"en": float, "ssim": float}
    metrics.get("ssim")(batch, sources=metrics.Sources(ir=irs, vi=vis))  # N frames → N values

Frames may be numpy or torch, ``uint8``/``uint16``/float with ``data_range`` (default by dtype), grey or RGB,
``H×W[×C]``, ``N×H×W[×C]`` or ``[N×]C×H×W``: see :mod:`m3svd.metrics.inputs` for how they become the 8-bit
levels the metrics are defined on.
"""

from __future__ import annotations

import builtins
import importlib
import pkgutil

from m3svd.errors import did_you_mean
from m3svd.metrics import base
from m3svd.metrics.base import Metric, MetricError, MetricUndefined, Sources

DEFAULT_CONVENTION = "m3svd"
_REGISTRY: dict[tuple[str, str], Metric] = {}
_loaded = False

__all__ = ["Metric", "MetricError", "MetricUndefined", "Sources", "convention_names", "get", "list", "register",
           "score"]


def register(metric: Metric) -> Metric:
    key = (metric.name, metric.convention)
    if key in _REGISTRY:
        raise ValueError(f"metric {metric.id} registered twice")
    _REGISTRY[key] = metric
    return metric


def _load() -> None:
    """Import every module of ``m3svd.metrics.conventions`` once; each registers its metrics."""
    global _loaded
    if not _loaded:
        _loaded = True
        from m3svd.metrics import conventions

        for module in pkgutil.iter_modules(conventions.__path__):
            importlib.import_module(f"{conventions.__name__}.{module.name}")


def list(convention: str | None = None) -> builtins.list[Metric]:  # noqa: A001 - the registry's verb
    """Registered metrics, sorted by name then convention."""
    _load()
    chosen = (m for m in _REGISTRY.values() if convention in (None, m.convention))
    return sorted(chosen, key=lambda m: (m.name, m.convention))


def convention_names() -> builtins.list[str]:
    """Every registered convention, sorted."""
    _load()
    return sorted({c for _, c in _REGISTRY})


def get(name: str, convention: str = DEFAULT_CONVENTION) -> Metric:
    """The metric ``name`` in ``convention``; convention ``"pyiqa"`` wraps pyiqa's no-reference metrics (the
    ``iqa`` extra, :mod:`m3svd.metrics.pyiqa_adapter`). A name the convention lacks points to the closest name
    in that convention, or to the one its lineage calls by that name (``get("viff", "cddfuse")`` → ``vif``)."""
    if convention == "pyiqa":
        from m3svd.metrics import pyiqa_adapter

        return pyiqa_adapter.metric(name.lower())
    _load()
    key = (name.lower(), convention)
    if key in _REGISTRY:
        return _REGISTRY[key]
    known = convention_names()
    if convention not in known:
        raise MetricError(f"no metric convention {convention!r}; there are {', '.join(known)}, and 'pyiqa'"
                          + did_you_mean(convention, known))
    here = {m.name: m for m in _REGISTRY.values() if m.convention == convention}
    alias = next((m.name for m in here.values() if key[0] in (a.lower() for a in m.aliases)), None)
    hint = f" (did you mean {alias!r}? {convention} calls it {name!r})" if alias else ""
    elsewhere = sorted(c for n, c in _REGISTRY if n == key[0])
    if elsewhere:
        raise MetricError(f"metric {name!r} has no {convention!r} convention; it has {', '.join(elsewhere)}" + hint)
    names = sorted({n for n, _ in _REGISTRY})
    hint = hint or did_you_mean(key[0], sorted(here)) or did_you_mean(key[0], names)
    raise MetricError(f"no metric {name!r} in {convention!r}" + hint
                      + f"; a no-reference IQA metric (BRISQUE, MUSIQ, …) comes from pyiqa: get({name!r}, 'pyiqa'), "
                      "with the iqa extra")


def score(chosen, fused, sources: Sources | None = None, *, ir=None, vi=None, convention: str = DEFAULT_CONVENTION,
          data_range: float | None = None, threads: int = 1, keep_undefined: bool = False,
          device: str | None = None) -> dict:
    """``{name: value}`` of every metric in ``chosen`` — names (looked up in ``convention``) or :class:`Metric`
    objects — on the same fused frames: a ``float`` each for one image, per-frame arrays for a batch.
    Sources as ``ir=``/``vi=`` or a :class:`Sources`; see :func:`m3svd.metrics.base.score` for ``threads`` and
    for ``device`` (torch, e.g. ``"cuda"``, for the metrics that have a torch implementation)."""
    if isinstance(chosen, str | Metric):
        chosen = [chosen]
    chosen = [get(m, convention) if isinstance(m, str) else m for m in chosen]
    return base.score(chosen, fused, sources, ir=ir, vi=vi, data_range=data_range, threads=threads,
                      keep_undefined=keep_undefined, device=device)
