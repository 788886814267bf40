"""Network weights for metrics and flow estimators: the user's file, else the weights registry's, always hashed.

Deep flow networks, the feaCD backbone and NIQE's model need files that no package index ships. They are looked
up, in this order, at an explicit ``path``, at ``$<ENV>`` (a file), in ``$M3SVD_WEIGHTS`` (a folder of the user's
own files, used as given), then through :mod:`m3svd.weights` for a registered file (the weights cache and torch's
hub cache, verified against the registry; downloaded on first use unless ``M3SVD_OFFLINE=1``). A miss is one line
naming the file and where to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

from m3svd.weights import WeightsMissing, load_state_dict

__all__ = ["WeightsMissing", "find_weights", "load_state_dict"]


def find_weights(filename: str, what: str, path: str | Path | None = None, env: str | None = None, *,
                 name: str) -> Path:
    """The weights file for ``what`` (e.g. "ResNet-18 ImageNet"), or :class:`WeightsMissing` in one line.

    ``name``: the file's entry in the weights registry, which supplies (and verifies) it when the user did not
    name a file."""
    if path is not None:
        p = Path(path).expanduser()
        if p.is_file():
            return p
        raise WeightsMissing(f"{what} weights not found: {p} (no such file)")
    if env and os.environ.get(env):
        p = Path(os.environ[env]).expanduser()
        if p.is_file():
            return p
        raise WeightsMissing(f"{what} weights not found: {p} (from ${env}; no such file)")
    from m3svd import weights

    user = Path(os.environ["M3SVD_WEIGHTS"]).expanduser() / filename if os.environ.get("M3SVD_WEIGHTS") else None
    return user if user is not None and user.is_file() else weights.ensure(name).path
