"""Fusion-quality metrics: one registry, explicit conventions.

``get("qabf", convention="vifb")`` returns a :class:`Metric`; ``list()`` what is registered; ``score(metrics,
fused, sources, threads=2)`` scores a set on a batch, frames in parallel. Conventions
reproduce a lineage's reference implementation (``vifb``, ``tang``, ``cddfuse``, ``vfbench``) or follow the
leaderboard's definitions (``m3svd``); see ``specs/metrics.md``.
"""

from __future__ import annotations

import builtins
import importlib
import pkgutil

from m3svd.errors import did_you_mean
from m3svd.metrics.base import Metric, MetricError, Sources, score

DEFAULT_CONVENTION = "m3svd"
_REGISTRY: dict[tuple[str, str], Metric] = {}
_loaded = False

__all__ = ["Metric", "MetricError", "Sources", "get", "list", "register", "score"]


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


def get(name: str, convention: str = DEFAULT_CONVENTION) -> Metric:
    """The metric ``name`` in ``convention``; convention ``"pyiqa"`` wraps pyiqa's no-reference metrics (the
    ``iqa`` extra, :mod:`m3svd.metrics.pyiqa_adapter`)."""
    if convention == "pyiqa":
        from m3svd.metrics import pyiqa_adapter

        return pyiqa_adapter.metric(name.lower())
    _load()
    key = (name.lower(), convention)
    if key in _REGISTRY:
        return _REGISTRY[key]
    names = sorted({n for n, _ in _REGISTRY})
    if key[0] not in names:
        raise MetricError(f"no metric {name!r}" + did_you_mean(key[0], names) + f"; a no-reference IQA metric "
                          f"(BRISQUE, MUSIQ, …) comes from pyiqa: get({name!r}, 'pyiqa'), with the iqa extra")
    conventions = sorted(c for n, c in _REGISTRY if n == key[0])
    raise MetricError(f"metric {name!r} has no {convention!r} convention; it has {', '.join(conventions)}"
                      + did_you_mean(convention, conventions))
