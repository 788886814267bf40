"""Shared fixtures: the read-only real data in ``../shared/data`` (skipped with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _private_data_root(tmp_path_factory):
    """Tests never read or write the user's data root (datasets, the flow cache, the weights cache): a fresh one per
    session, and the weights registry offline."""
    os.environ["M3SVD_ROOT"] = str(tmp_path_factory.mktemp("m3svd-root"))
    os.environ["M3SVD_OFFLINE"] = "1"  # a test never reaches the internet for weights; network tests opt back in


def shared(*parts: str) -> Path:
    """Path under ``../shared/data``; skips the calling test when it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} (the read-only ../shared/data checkout)")
    return path


def golden_model(name: str) -> Path:
    """Path of a file in ``../shared/golden/models`` (model conformance data); skips the calling test when absent."""
    path = SHARED_DATA.parent / "golden" / "models" / name
    if not path.exists():
        pytest.skip(f"golden data not available: {path} (the read-only ../shared/golden checkout)")
    return path


@pytest.fixture
def m3svd_frames() -> Path:
    """Four-folder M3SVD image release: test/{infrared_Enhance,...}/<3 clips>/0000..0019.png."""
    return shared("m3svd")


@pytest.fixture
def m3svd_videos() -> Path:
    """GitHub sample layout: test/{infrared,visible}/<3 clips>.mp4 (lossy, clean variant)."""
    return shared("m3svd_videos")


@pytest.fixture
def tno() -> Path:
    return shared("tno")


def batched(metric, fused, sources):
    """``metric``'s compute on the whole batch in one call. ``Metric.__call__`` scores image metrics one frame at a
    time, so comparing calls on a batch and on single frames never reaches the batched code; this does."""
    import numpy as np

    values = np.asarray(metric.compute(sources, np.asarray(fused)), dtype=np.float64).reshape(len(fused))
    return metric.checked(values)
