"""No-reference IQA from pyiqa (the ``iqa`` extra) as registry metrics: ``metrics.get("piqe", "pyiqa")``.

pyiqa needs torchvision, so it is an optional extra; without it every lookup is one line saying how to install
it. Metrics whose weights pyiqa would download (MUSIQ, BRISQUE's SVM, …) work offline once the file is in pyiqa's
cache (``torch.hub.get_dir()/pyiqa``); otherwise the lookup says which. pyiqa scores RGB in [0, 1]: grey frames
are repeated over three channels. NIQE has a native implementation (``metrics.get("niqe")``), reading its
pristine model from a local file.
"""

from __future__ import annotations

import contextlib
import io
import re
from functools import lru_cache

import numpy as np

from m3svd.errors import did_you_mean
from m3svd.metrics.base import Metric, MetricError

CONVENTION = "pyiqa"
INSTALL = "pip install 'm3svd[iqa]' (pyiqa needs a torchvision that matches torch)"


def _pyiqa():
    try:
        import pyiqa
    except ImportError as error:
        raise MetricError(f"pyiqa metrics need the iqa extra, which is not importable here ({error}): "
                          f"{INSTALL}") from None
    return pyiqa


@lru_cache(maxsize=4)  # networks can be large: keep the last few
def _network(name: str, device: str):
    pyiqa = _pyiqa()
    said = io.StringIO()
    try:
        with contextlib.redirect_stdout(said), contextlib.redirect_stderr(said):
            return pyiqa.create_metric(name, device=device)
    except Exception as error:  # noqa: BLE001 - offline weight fetches fail in many ways; each gets one line
        import torch

        fetch = re.search(r'Downloading: "([^"]+)" to (\S+)', said.getvalue())
        needs = (f"needs {fetch.group(2)} (from {fetch.group(1)}), which it cannot download here" if fetch else
                 f"cannot be created offline; put its weights in {torch.hub.get_dir()}/pyiqa")
        cause = str(error).splitlines()[0] if str(error) else ""
        raise MetricError(f"pyiqa {name}: {needs} ({type(error).__name__}: {cause})") from None


def metric(name: str, device: str = "cpu") -> Metric:
    """The pyiqa no-reference metric ``name`` as a :class:`Metric` (kind ``no-reference``)."""
    pyiqa = _pyiqa()
    available = sorted(pyiqa.list_models(metric_mode="NR"))
    if name not in available:
        raise MetricError(f"pyiqa has no no-reference metric {name!r}" + did_you_mean(name, available))
    net = _network(name, device)

    def compute(sources, fused: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(fused)).to(torch.float32) / 255.0
        x = x[:, None].repeat(1, 3, 1, 1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        with torch.inference_mode():
            return np.array([float(net(frame[None].to(device))) for frame in x])

    return Metric(name, CONVENTION, compute, not net.lower_better, (-np.inf, np.inf), f"pyiqa-{pyiqa.__version__}",
                  "no-reference", f"pyiqa {pyiqa.__version__} '{name}' on the fused frame alone (RGB in [0, 1]).",
                  reference=f"pyiqa {pyiqa.__version__} itself (this wraps it)")
