"""Where datasets live on this machine when the user does not say (shared by ``import`` and ``download``)."""

from __future__ import annotations

import os
from pathlib import Path


def default_root() -> Path:
    """``$M3SVD_ROOT``, else ``$XDG_CACHE_HOME/m3svd``, else ``~/.cache/m3svd``.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec asks: it would make the root depend on the
    working directory, and a dataset imported once must be found again from anywhere.
    """
    explicit = os.environ.get("M3SVD_ROOT")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME")
    base = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    return base / "m3svd"
