"""pyiqa's no-reference metrics through the registry (the ``iqa`` extra): one line when pyiqa is absent, and the
same values as pyiqa itself when it is installed (CI has no torchvision, so that half runs where the extra is)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from m3svd import metrics
from m3svd.metrics import MetricError


def test_without_pyiqa_the_lookup_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # as on a machine without the extra
    with pytest.raises(MetricError, match=r"iqa extra.*pip install 'm3svd\[iqa\]'") as error:
        metrics.get("piqe", "pyiqa")
    assert "\n" not in str(error.value)


def test_pyiqa_metrics_give_pyiqa_values_on_uint8_frames(m3svd_frames):
    pyiqa = pytest.importorskip("pyiqa", reason="the iqa extra (pyiqa + torchvision) is not installed")
    import torch

    from m3svd.data import open_dataset

    _, vi = open_dataset(m3svd_frames).select("test", "clean")[0].frames(0, 2)
    piqe = metrics.get("piqe", "pyiqa")
    assert piqe.kind == "no-reference" and piqe.lower_better
    direct = pyiqa.create_metric("piqe", device="cpu")
    expected = [float(direct(torch.from_numpy(f.copy()).permute(2, 0, 1)[None].float() / 255)) for f in vi]
    np.testing.assert_allclose(piqe(vi), expected, rtol=1e-6)
    with pytest.raises(MetricError, match="no no-reference metric 'piqee'.*did you mean 'piqe'"):
        metrics.get("piqee", "pyiqa")
