"""``m3svd``: the leaderboard's convention — the M3SVD authors' definitions (Tang's toolbox) with its bugs fixed.

Same metrics and formulas as ``tang`` (see that module's table), on the toolkit's own grey frames, with every
known bug of ``specs/metrics.md`` §3 that touches these metrics fixed. ``metrics/CONVENTIONS.md`` lists the
fixes and their reasons; each metric's ``description`` says what it changes.

Reader: grey = BT.601 weights (0.299, 0.587, 0.114) in float64, rounded to ``uint8`` (``np.rint``) — exactly
``m3svd.data.frames.to_grey``; grey frames and frames with three equal channels are unchanged. EN and MI use the
``uint8`` grey; everything else uses it as float64 on 0–255; MSE on [0, 1] as in the toolbox.

Unchanged from ``tang`` (equal on equal grey input): en, sd, sf, mse, cc, scd, vif, mef_ms_ssim.
Fixed: mi (no 254/255 saturation), psnr (no +48.13 dB), ssim (C1, C2 for L = 255), nabf (fused image in its
place), qabf (strength ratio 1 where g_source = g_F), ag (mean over the M·N pixels it sums).
"""

from __future__ import annotations

import numpy as np

from m3svd.data.frames import BT601
from m3svd.metrics import register
from m3svd.metrics.base import Metric
from m3svd.metrics.conventions import tang as T

CONVENTION = "m3svd"


def bt601_grey(frames: np.ndarray) -> np.ndarray:
    """Grey ``uint8`` N×H×W: ``rint(RGB·(0.299, 0.587, 0.114))`` in float64 (``to_grey``, batched)."""
    if frames.ndim != 4:
        return np.ascontiguousarray(frames)
    return np.clip(np.rint(frames.astype(np.float64) @ BT601), 0, 255).astype(np.uint8)


M3SVD = T.Reader(CONVENTION, bt601_grey)
_BASE = "M3SVD convention (Tang toolbox definitions, bugs fixed) on BT.601 float64 grey frames"

_METRICS = [
    ("en", T.compute_en(M3SVD), True, (0.0, 8.0), "Entropy of the uint8 grey fused frame, 256 bins, bits."),
    ("sd", T.compute_sd(M3SVD), True, (0.0, 127.5), "Population standard deviation of F (0-255)."),
    ("sf", T.compute_sf(M3SVD), True, (0.0, T.SF_MAX),
     "Spatial frequency: sqrt(mean row-diff^2 + mean col-diff^2)."),
    ("ag", T.compute_ag(M3SVD, per_pixel=True), True, (0.0, 255.0),
     "Average gradient: mean over the M*N pixels of sqrt((gx^2+gy^2)/2), MATLAB gradient. Fix: Tang (and "
     "VIFB) sum over M*N pixels but divide by (M-1)(N-1); here the divisor is M*N."),
    ("mi", T.compute_mi(M3SVD, saturate=False), True, (0.0, 16.0),
     "MI(F,IR)+MI(F,VI) in bits on a full 256x256 joint histogram. Fix: Tang's Hab.m indexes with uint8+1, "
     "which saturates and merges levels 254 and 255 in the joint histogram only (bias 0 to +0.28 bits)."),
    ("mse", T.compute_mse(M3SVD), False, (0.0, 1.0), "(MSE(IR,F)+MSE(VI,F))/2 on [0,1] data."),
    ("psnr", T.compute_psnr(M3SVD, offset_bug=False), True, (0.0, T.INF),
     "10*log10(1/MSE) with MSE the [0,1] mean of the two sources, i.e. the standard 10*log10(255^2/MSE_255). "
     "Fix: Tang computes 20*log10(255/sqrt(MSE)) on [0,1] data, the standard value + 48.13 dB."),
    ("cc", T.compute_cc(M3SVD), True, (-1.0, 1.0), "(r(IR,F)+r(VI,F))/2, Pearson correlation."),
    ("scd", T.compute_scd(M3SVD), True, (-2.0, 2.0),
     "Sum of correlations of differences: r(F-VI,IR)+r(F-IR,VI)."),
    ("vif", T.compute_vif(M3SVD), True, (0.0, T.INF),
     "VIFp(IR->F)+VIFp(VI->F): 4-scale pixel-domain VIF (Sheikh-Bovik), sigma_n^2 = 2, summed."),
    ("qabf", T.compute_qabf(M3SVD, equal_is_one=True), True, (0.0, 1.0),
     "Xydeas-Petrovic Q^AB/F, zero-padded Sobel. Fix: where g_source = g_F the strength ratio is 1 (the "
     "lineage's code sets it to g_F, so equal edges of strength above 1 score like saturated ones)."),
    ("nabf", T.compute_nabf(M3SVD, tang_order=False), False, (0.0, 1.0),
     "Shreyamsha Kumar's Nabf(F; IR, VI): artefact weight where F's gradient exceeds both sources'. Fix: "
     "Tang calls analysis_nabf(IR, VI, F) against its (fused, source, source) signature, scoring IR as the "
     "fused image."),
    ("ssim", T.compute_ssim(M3SVD, dynamic_range=255.0), True, (-1.0, 1.0),
     "(SSIM(F,IR)+SSIM(F,VI))/2, Gaussian 11x11 sigma 1.5, replicate padding, same-size map, C1 = (0.01*255)^2, "
     "C2 = (0.03*255)^2. Fix: Tang's MATLAB ssim on 0-255 doubles assumes DynamicRange 1 (C1 = 1e-4, "
     "C2 = 9e-4), so flat regions with tiny noise score near 0."),
    ("mef_ms_ssim", T.compute_mef_ms_ssim(M3SVD), True, (0.0, 1.0),
     "MEF-MS-SSIM (Ma, Zeng, Wang 2015) of F against the stack (IR, VI), 3 scales, K = 0.03 - the metric "
     "Tang's toolbox reports as 'MS_SSIM' (renamed: it is not Wang's MS-SSIM)."),
]

for _name, _compute, _hib, _range, _desc in _METRICS:
    register(Metric(_name, CONVENTION, _compute, _hib, _range, "1", "image", f"{_BASE}. {_desc}"))
