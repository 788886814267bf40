"""Temporal metrics against ``golden/temporal`` (flowD, its literal TemCoCo variant, BiSWE, MS2R), given the stored
flows: the golden values were computed from exactly those arrays, so no flow is re-estimated here."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA, shared

from m3svd import flow as fl
from m3svd import metrics
from m3svd.metrics.temporal import VideoSources

GOLDEN = SHARED_DATA.parent / "golden" / "temporal"
CLIP = "0111_1716"
# golden metric name → registry (name, convention)
RTOL = 1e-4  # measured: ≤ 2.8e-5 (flowD), 1.3e-5 (BiSWE), 8e-8 (MS2R); read by metrics/build_cards.py
NAMES = {"flowD": ("flowd", "m3svd"), "flowD_literal": ("flowd", "temcoco"), "BiSWE": ("biswe", "vfbench"),
         "MS2R": ("ms2r", "vfbench")}


@pytest.fixture(scope="module")
def golden():
    if not (GOLDEN / "temporal.csv").exists():
        pytest.skip(f"golden data not available: {GOLDEN}")
    data = shared("m3svd", "test")
    ir = np.stack([cv2.imread(str(data / "infrared_Enhance" / CLIP / f"{i:04d}.png"))[..., 0] for i in range(10)])
    vi = np.stack([cv2.imread(str(data / "visible_Enhance" / CLIP / f"{i:04d}.png"))[..., ::-1] for i in range(10)])
    fused = {name: np.stack([cv2.imread(str(GOLDEN / "frames" / f"{name}_{i:04d}.png"), cv2.IMREAD_UNCHANGED)
                             for i in range(10)]) for name in ("avg", "flicker")}
    stored = fl.Lookup("golden/temporal")
    for name, frames in (("ir", ir), ("vi", vi), *fused.items()):
        with np.load(GOLDEN / f"flows_{name}.npz") as z:
            stored.add(frames, [z[f"fw_{i:04d}"] for i in range(9)], [z[f"bw_{i:04d}"] for i in range(9)])
    with open(GOLDEN / "temporal.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return VideoSources(ir=ir, vi=vi, flow=stored), fused, rows


@pytest.mark.parametrize("video", ["avg", "flicker"])
@pytest.mark.parametrize("golden_name", list(NAMES))
def test_golden_values(golden, video, golden_name):
    src, fused, rows = golden
    metric = metrics.get(*NAMES[golden_name])
    got = metric(fused[video], sources=src)
    mine = [r for r in rows if r["video"] == video and r["metric"] == golden_name]
    per = np.array([float(r["value"]) for r in mine if r["frames"] != "mean"])
    mean = next(float(r["value"]) for r in mine if r["frames"] == "mean")
    assert got.shape == per.shape == (len(fused[video]) - metric.span + 1,)
    np.testing.assert_allclose(got, per, rtol=RTOL)
    assert got.mean() == pytest.approx(mean, rel=RTOL)


def test_dis_parameters_are_the_golden_ones(golden):
    recorded = json.loads((GOLDEN / "temporal.json").read_text())["flows"]["dis_parameters"]
    params = fl.DIS().params
    assert {k: params[k] for k in recorded} == recorded
    assert params["preset"] == "medium" and fl.DIS().id == fl.estimator("dis").id != fl.DIS("fast").id
