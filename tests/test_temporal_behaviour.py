"""Temporal metrics on a real M3SVD clip: injected flicker and jitter must score worse than the clean fusion, and
what each metric does with a frozen (static) output is pinned down (metrics/CONVENTIONS.md, "Temporal metrics").

Frames 0–7 of the lossless test clip 0111_1716, downscaled to 320×240 (the metrics are defined per pixel; the
half-size frames keep DIS and ResNet-18 fast). feaCD runs on a seeded random ResNet-18 saved to a temporary file,
since the ImageNet weights are not available offline; the properties tested do not depend on them.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import shared

from m3svd import metrics
from m3svd.metrics.temporal import FROZEN_REWARDED, VideoSources, resnet18

CLIP, FRAMES = "0111_1716", 8


def _read(path):
    return cv2.resize(cv2.imread(str(path)), (320, 240), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = shared("m3svd", "test")
    ir = np.stack([_read(root / "infrared_Enhance" / CLIP / f"{i:04d}.png")[..., 0] for i in range(FRAMES)])
    vi = np.stack([_read(root / "visible_Enhance" / CLIP / f"{i:04d}.png")[..., ::-1] for i in range(FRAMES)])
    vg = np.stack([cv2.cvtColor(np.ascontiguousarray(v), cv2.COLOR_RGB2GRAY) for v in vi])
    clean = ((ir.astype(np.int32) + vg + 1) // 2).astype(np.uint8)
    gain = 1 + 0.05 * np.where(np.arange(FRAMES) % 2, 1, -1)  # ±5 % per-frame gain
    shifts = np.random.default_rng(1).integers(-2, 3, (FRAMES, 2))  # up to 2 px per-frame camera shake
    shifts[0] = 0
    variants = {
        "clean": clean,
        "flicker": np.clip(np.rint(clean * gain[:, None, None]), 0, 255).astype(np.uint8),
        "jitter": np.stack([cv2.warpAffine(f, np.float32([[1, 0, dx], [0, 1, dy]]), f.shape[::-1],
                                           borderMode=cv2.BORDER_REPLICATE)
                            for f, (dx, dy) in zip(clean, shifts, strict=True)]),
        "frozen": np.repeat(clean[:1], FRAMES, axis=0),
    }
    torch.manual_seed(0)
    net = resnet18()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    weights = tmp_path_factory.mktemp("weights") / "resnet18-random.pth"
    torch.save(net.state_dict(), weights)
    src = VideoSources(ir=ir, vi=vi, resnet18=weights)
    chosen = [m for m in metrics.list() if m.kind == "temporal"]
    values = {(m.id, v): m(fused, sources=src) for v, fused in variants.items() for m in chosen}
    return chosen, values


def _worse(metric, bad, good):
    return bad < good if metric.higher_is_better else bad > good


def test_flicker_and_jitter_score_worse(scored):
    chosen, values = scored
    assert len(chosen) >= 15
    for m in chosen:
        clean = values[m.id, "clean"].mean()
        for injected in ("flicker", "jitter"):
            assert _worse(m, values[m.id, injected].mean(), clean), (m.id, injected, clean)


def test_frozen_output(scored):
    """A static output wins BiSWE and flicker outright and flowD on this near-static clip; feaCD and TGF penalise it
    on every clip tried, which is why a protocol naming a metric in FROZEN_REWARDED also names tgf."""
    chosen, values = scored
    frozen = {m.id: values[m.id, "frozen"] for m in chosen}
    clean = {m.id: values[m.id, "clean"].mean() for m in chosen}
    for conv in ("vfbench", "m3svd"):
        assert frozen[f"biswe@{conv}"].max() < 1e-9
    for conv in ("vbench", "m3svd"):
        assert (frozen[f"flicker@{conv}"] == 1.0).all()
    for conv in ("temcoco", "m3svd"):
        assert (frozen[f"feacd@{conv}"] == 2.0).all() and clean[f"feacd@{conv}"] < 2.0  # m_F = 0: cosine 0
        assert frozen[f"flowd@{conv}"].mean() < clean[f"flowd@{conv}"]  # documented weakness of flowD
    assert frozen["tgf@m3svd"].mean() > 1.2 * clean["tgf@m3svd"]
    assert {"biswe", "flicker", "flowd"} <= set(FROZEN_REWARDED) and "tgf" not in FROZEN_REWARDED
