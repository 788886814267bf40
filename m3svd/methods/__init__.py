"""Fusion methods behind one interface (:class:`Method`), classical and deep alike.

``create("gff", device="cpu")`` builds a method; ``list()`` what is registered. Every module and package under
``m3svd/methods/`` registers its methods on import.
"""

from __future__ import annotations

import builtins
import importlib
import pkgutil

from m3svd.errors import did_you_mean
from m3svd.methods.base import Fusion, Method, MethodError, Window, plan_windows

_REGISTRY: dict[str, type[Method]] = {}
_loaded = False

__all__ = ["Fusion", "Method", "MethodError", "Window", "create", "get", "list", "plan_windows", "register"]


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import m3svd.methods as package

        for module in pkgutil.iter_modules(package.__path__):
            if module.name != "base":
                importlib.import_module(f"{package.__name__}.{module.name}")


def list() -> builtins.list[type[Method]]:  # noqa: A001 - the registry's verb
    """Registered method classes, sorted by name."""
    _load()
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get(name: str) -> type[Method]:
    _load()
    if name not in _REGISTRY:
        raise MethodError(f"no method {name!r}" + did_you_mean(name, _REGISTRY) + "; see `m3svd ls methods`")
    return _REGISTRY[name]


def create(name: str, device: str = "cpu", weights=None, **options) -> Method:
    return get(name)(device=device, weights=weights, **options)
