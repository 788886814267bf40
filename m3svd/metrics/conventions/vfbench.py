"""``vfbench`` convention: VF-Bench ``src/util/metric.py`` spatial metrics (VF-Bench@100fc558).

Reading as VF-Bench's PIL loader: a grey frame is stacked into 3 identical channels, RGB is kept; values are
integer 0–255, float64 inside the metrics. Every metric is computed per channel c on (F_c, IR_c, VI_c) and
averaged over the 3 channels (no grey conversion). See ``metrics/CONVENTIONS.md``.

Exactness: SSIM and Qabf are float64 like the original; the original stores VIF's per-channel numerator and
denominator and the per-channel MI in float32 tensors, so its values carry ≈1e-7 relative rounding that this
float64 code does not reproduce. VF-Bench's random noise for frames whose maximum is < 1 is not reproduced
(it is unseeded); such frames are scored as they are.
"""

from __future__ import annotations

import math

import numpy as np

from m3svd.metrics import register
from m3svd.metrics.base import Metric, Sources, fused_memo
from m3svd.metrics.pixel import (
    gaussian_window,
    mutual_information,
    qabf_combine,
    sobel_strength_angle,
    ssim_map,
    ssim_moments,
    vifp_reference,
    vifp_terms,
)

CONVENTION = "vfbench"


def _channels(fused: np.ndarray) -> np.ndarray:
    """The fused frames' float64 planes, once per frame for a whole metric set."""
    return fused_memo(fused, (CONVENTION, "channels"), lambda: read_channels(fused))


def read_channels(frames: np.ndarray) -> np.ndarray:
    """``N×H×W`` grey or ``N×H×W×3`` RGB ``uint8`` → float64 planes ``(3N)×H×W`` ordered frame-major
    (frame 0 R, G, B, frame 1 R, …); grey frames give three identical planes."""
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    n, h, w, c = frames.shape
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float64).reshape(n * c, h, w)


def _source_planes(src: Sources) -> tuple[np.ndarray, np.ndarray]:
    ir = src.memo((CONVENTION, "planes", "ir"), lambda: read_channels(src.ir))
    vi = src.memo((CONVENTION, "planes", "vi"), lambda: read_channels(src.vi))
    return ir, vi


def _per_frame(values: np.ndarray, n: int) -> np.ndarray:
    return values.reshape(n, 3)


# --------------------------------------------------------------------------------------------- VIF


def vif(src: Sources, fused: np.ndarray) -> np.ndarray:
    """mean_c [(VIFp(IR_c→F_c) + VIFp(VI_c→F_c))/2], NaN channels (0/0: a flat source) left out."""
    f = _channels(fused)
    pair = np.zeros(len(f))
    for name, planes in zip(("ir", "vi"), _source_planes(src), strict=True):
        ref = src.memo((CONVENTION, "vifp", name), lambda planes=planes: vifp_reference(planes))
        num, den = vifp_terms(ref, f)
        with np.errstate(invalid="ignore", divide="ignore"):
            pair += num / den
    per_channel = _per_frame(pair / 2, len(fused))
    ok = np.isfinite(per_channel)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, per_channel, 0.0).sum(axis=1) / ok.sum(axis=1)  # NaN if every channel is NaN


# --------------------------------------------------------------------------------------------- SSIM

SSIM_TAPS = gaussian_window(11, 1.5)  # 11×11 Gaussian σ 1.5; the image is reflect-padded by 5 px (no edge repeat)
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def ssim(src: Sources, fused: np.ndarray) -> np.ndarray:
    """mean_c [(SSIM(F_c,IR_c) + SSIM(F_c,VI_c))/2], Gaussian 11/1.5, reflect-101 padding, full-size map."""
    f = _channels(fused)
    mom_f = ssim_moments(f, SSIM_TAPS)
    total = np.zeros(len(f))
    for name, s in zip(("ir", "vi"), _source_planes(src), strict=True):
        mom_s = src.memo((CONVENTION, "gauss11", name), lambda s=s: ssim_moments(s, SSIM_TAPS))
        total += ssim_map(s, f, mom_s, mom_f, SSIM_TAPS, SSIM_C1, SSIM_C2).mean(axis=(1, 2))
    return _per_frame(total / 2, len(fused)).mean(axis=1)


# --------------------------------------------------------------------------------------------- MI, Qabf


def mi(src: Sources, fused: np.ndarray) -> np.ndarray:
    """mean_c MI(F_c, IR_c) + mean_c MI(F_c, VI_c), contingency table, nats."""
    f = _channels(fused)
    ir, vi = _source_planes(src)
    n = len(fused)
    return (_per_frame(mutual_information(f, ir), n).mean(axis=1)
            + _per_frame(mutual_information(f, vi), n).mean(axis=1))


def qabf(src: Sources, fused: np.ndarray) -> np.ndarray:
    """mean_c Qabf(IR_c, VI_c, F_c), the VIFB/CDDFuse formula per channel."""
    ir, vi = _source_planes(src)
    sob_ir = src.memo((CONVENTION, "sobel", "ir"), lambda: sobel_strength_angle(ir))
    sob_vi = src.memo((CONVENTION, "sobel", "vi"), lambda: sobel_strength_angle(vi))
    values = qabf_combine(sob_ir, sob_vi, sobel_strength_angle(_channels(fused)))
    return _per_frame(values, len(fused)).mean(axis=1)


# --------------------------------------------------------------------------------------------- registry

_Q = "VF-Bench metric.py, per RGB channel (grey stacked x3), channel mean"
for _name, _fn, _range, _desc in [
    ("vif", vif, (0.0, math.inf), "Sheikh-Bovik VIFp (sigma_n^2 = 2), MEAN of the two sources, NaN channels dropped"),
    ("ssim", ssim, (-1.0, 1.0), "SSIM Gaussian 11x11 sigma 1.5 with 5-px reflect padding, MEAN of the two sources"),
    ("mi", mi, (0.0, 2 * math.log(256)), "contingency-table MI in nats, SUM over sources of the channel means"),
    ("qabf", qabf, (0.0, 1.0), "Xydeas-Petrovic Qabf (zero padding, the g_A = g_F -> g_F quirk) per channel"),
]:
    register(Metric(_name, CONVENTION, _fn, True, _range, version="1", kind="image", description=f"{_desc} ({_Q})",
                    reference="VF-Bench metric.py outputs; tests/test_metrics_vfbench.py"))
