"""``restoration``: how well a method that also restores its inputs (denoised IR, deblurred VIS) recovers the clean
frames, for the degraded protocols' ``[metrics] restoration``.

Not fusion metrics: each compares one restored stream with its clean reference, so ``Sources`` holds the clean
frames of that stream in both its slots (``restoration_sources``) and the "fused" argument is the restored stream.
Both are defined here, once, with their own version, so result rows say which definition made them.

- ``psnr``: 10·log10(255² / MSE) over every pixel and channel of the uint8 frames, data range 255; identical frames
  are undefined (+inf), kept as such.
- ``ssim``: Wang et al.'s SSIM with an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, L = 255, population
  covariance, on the BT.601 luminance in float64 (grey frames as they are), as ``skimage.metrics``
  ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` computes it.
"""

from __future__ import annotations

import numpy as np

from m3svd.data.frames import BT601
from m3svd.metrics import register
from m3svd.metrics.base import Metric, Sources

CONVENTION = "restoration"


def restoration_sources(clean: np.ndarray) -> Sources:
    """The clean reference of one stream as the ``Sources`` a restoration metric scores against."""
    return Sources(ir=clean, vi=clean)


def _psnr(sources: Sources, restored: np.ndarray) -> np.ndarray:
    clean = sources.ir
    diff = restored.astype(np.float64) - clean.astype(np.float64)
    mse = (diff.reshape(len(diff), -1) ** 2).mean(axis=1)
    with np.errstate(divide="ignore"):
        return 10 * np.log10(255.0**2 / mse)  # identical frames: +inf


def _luminance(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float64) @ BT601 if frames.ndim == 4 else frames.astype(np.float64)


def _ssim(sources: Sources, restored: np.ndarray) -> np.ndarray:
    from skimage.metrics import structural_similarity

    return np.array([structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False)
                     for a, b in zip(_luminance(restored), _luminance(sources.ir), strict=True)])


PSNR = register(Metric("psnr", CONVENTION, _psnr, higher_is_better=True, value_range=(0.0, float("inf")),
                       version="1", kind="restoration",
                       description="PSNR of restored vs clean frames (data range 255); identical frames: +inf"))
SSIM = register(Metric("ssim", CONVENTION, _ssim, higher_is_better=True, value_range=(-1.0, 1.0), version="1",
                       kind="restoration", description="SSIM (Wang, Gaussian σ=1.5) of restored vs clean luminance"))
