"""``m3svd``: the leaderboard's convention — the M3SVD authors' definitions (Tang's toolbox) with its bugs fixed.

Same metrics and formulas as ``tang`` (see that module's table), on the toolkit's own grey frames, with every
known bug of Tang's toolbox that touches these metrics fixed. ``metrics/CONVENTIONS.md`` lists the
fixes and their reasons; each metric's ``description`` says what it changes.

Reader: grey = BT.601 weights (0.299, 0.587, 0.114) in float64, rounded to ``uint8`` (``np.rint``) — exactly
``m3svd.data.frames.to_grey``; grey frames and frames with three equal channels are unchanged. EN and MI use the
``uint8`` grey; everything else uses it as float64 on 0–255; MSE on [0, 1] as in the toolbox.

Unchanged from ``tang`` (equal on equal grey input): en, sd, sf, mse, cc, scd, vif, mef_ms_ssim.
Fixed: mi (no 254/255 saturation), psnr (no +48.13 dB), ssim (C1, C2 for L = 255), nabf (fused image in its
place), qabf (strength ratio 1 where g_source = g_F), ag (mean over the M·N pixels it sums), fmi_pixel / fmi_edge /
fmi_dct / fmi_w (pixel features under the pixel name; each window compared with the raw fused window).

Not in Tang's toolbox, defined here on the same grey frames (the lineage that has them named in each
description): ce, ei, qcb, qcv (VIFB), rmse (√ of this convention's MSE, not VIFB's norm), nmi (Hossny, MEFB),
viff (Han et al., MEFB's "VIF"), ms_ssim (Wang's 5-scale MS-SSIM, not Tang's "MS_SSIM").
"""

from __future__ import annotations

import math

import numpy as np

from m3svd.data.frames import BT601
from m3svd.metrics import register
from m3svd.metrics.base import Metric, MetricError
from m3svd.metrics.conventions import tang as T
from m3svd.metrics.conventions import vifb as V
from m3svd.metrics.pixel import (
    entropy_bits,
    entropy_mi,
    gaussian_window,
    hist256,
    ms_ssim_combine,
    ms_ssim_min_size,
    ms_ssim_pyramid,
    sobel3,
    vif_pyramid,
    viff_combine,
    viff_maps,
    vifp_reference,
)

CONVENTION = "m3svd"


def bt601_grey(frames: np.ndarray) -> np.ndarray:
    """Grey ``uint8`` N×H×W: ``rint(RGB·(0.299, 0.587, 0.114))`` in float64 (``to_grey``, batched)."""
    if frames.ndim != 4:
        return np.ascontiguousarray(frames)
    return np.clip(np.rint(frames.astype(np.float64) @ BT601), 0, 255).astype(np.uint8)


M3SVD = T.Reader(CONVENTION, bt601_grey)


# ---------------------------------------------------------------------------------------------------------
# metrics Tang's toolbox does not have, on this convention's grey frames
def _pair_memo(sources, name: str, fn):
    """``(fn(IR), fn(VI))`` on the uint8 grey sources, once per :class:`Sources`."""
    ir, vi = M3SVD.sources(sources)
    return M3SVD.memo(sources, name, lambda: (fn(ir), fn(vi)))


def ce(sources, fused):
    """(CE(IR,F) + CE(VI,F))/2, VIFB's cross entropy: 256-bin KL in bits, bins empty in either image skipped."""
    h_ir, h_vi = _pair_memo(sources, "hist256", hist256)
    h_f = hist256(T._fused(M3SVD, fused))
    return (V.cross_entropy_bits(h_ir, h_f) + V.cross_entropy_bits(h_vi, h_f)) / 2


def ei(sources, fused):
    gx, gy = sobel3(T.f64(T._fused(M3SVD, fused)), "replicate")
    return np.sqrt(gx * gx + gy * gy).mean(axis=(1, 2))


_MSE = T.compute_mse(M3SVD)


def rmse(sources, fused):
    return np.sqrt(_MSE(sources, fused))


def qcb(sources, fused):
    c_ir, c_vi = _pair_memo(sources, "qcb_contrast", V.qcb_contrast)
    return V.qcb_combine(c_ir, c_vi, V.qcb_contrast(T._fused(M3SVD, fused)))


def qcv(sources, fused):
    return V.qcv_combine(list(_pair_memo(sources, "qcv_source", V.qcv_source)), T._fused(M3SVD, fused))


def nmi(sources, fused):
    """Hossny's NMI 2·[MI(IR,F)/(H(IR)+H(F)) + MI(VI,F)/(H(VI)+H(F))], bits, full joint histogram."""
    ir, vi = M3SVD.sources(sources)
    h_ir, h_vi = M3SVD.memo(sources, "entropy", lambda: (entropy_bits(ir), entropy_bits(vi)))
    f = T._fused(M3SVD, fused)
    h_f = entropy_bits(f)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2 * (entropy_mi(f, ir, np.log2, False, h_f, h_ir) / (h_ir + h_f)
                    + entropy_mi(f, vi, np.log2, False, h_f, h_vi) / (h_vi + h_f))


MS_SSIM_TAPS = gaussian_window(11, 1.5)
MS_SSIM_LEAST = ms_ssim_min_size(MS_SSIM_TAPS)
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def ms_ssim(sources, fused):
    """(MS-SSIM(F,IR) + MS-SSIM(F,VI))/2, Wang et al. 2003: 5 scales, 'valid' Gaussian 11/1.5, L = 255."""
    if min(fused.shape[1:3]) < MS_SSIM_LEAST:
        raise MetricError(f"ms_ssim@{CONVENTION}: frames {fused.shape[1]}×{fused.shape[2]} are too small for 5 "
                          f"scales of 11×11 windows (need ≥ {MS_SSIM_LEAST} px on the shorter side)")
    refs = _pair_memo(sources, "ms_ssim_pyramid", lambda x: ms_ssim_pyramid(T.f64(x), MS_SSIM_TAPS))
    f = ms_ssim_pyramid(T.f64(T._fused(M3SVD, fused)), MS_SSIM_TAPS)
    return sum(0.5 * ms_ssim_combine(f, ref, MS_SSIM_TAPS, _C1, _C2) for ref in refs)


def viff(sources, fused):
    """Han et al.'s VIFF(IR, VI; F) on the grey frames (VIFF_Public.m with Im1 = IR, Im2 = VI)."""
    ir, vi = M3SVD.sources(sources)
    refs = M3SVD.memo(sources, "vif_reference", lambda: (vifp_reference(T.f64(ir)), vifp_reference(T.f64(vi))))
    pyramid = vif_pyramid(T.f64(T._fused(M3SVD, fused)))
    return viff_combine(viff_maps(refs[0], pyramid), viff_maps(refs[1], pyramid))

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
    ("fmi_pixel", T.compute_fmi(M3SVD, "none", reuse_normalised=False), True, (0.0, 1.0),
     "Fast-FMI (Haghighat & Razian 2014) of IR and VI against F over 3x3 windows of the grey pixels, "
     "(fmi_IR + fmi_VI)/2 per window, mean over windows. Fix: Tang's 'FMI_pixel' calls analysis_fmi with its "
     "default feature, MATLAB edge() maps (that value is fmi_edge here); and fmi.m tests the VI window for "
     "equality against F's already normalised window, so an F window equal to VI's scores 0 instead of 1 "
     "whenever IR's differs - here both tests use the raw windows."),
    ("fmi_edge", T.compute_fmi(M3SVD, "edge", reuse_normalised=False), True, (0.0, 1.0),
     "Fast-FMI over 3x3 windows of MATLAB edge() maps (Sobel, automatic threshold, thinning): what Tang reports "
     "as 'FMI_pixel'. Fix: the VI equality test uses F's raw window (fmi.m compares it with the normalised one, "
     "scoring edge-free windows equal in F and VI as 0 wherever IR has an edge)."),
    ("fmi_dct", T.compute_fmi(M3SVD, "dct", reuse_normalised=False), True, (0.0, 1.0),
     "Fast-FMI over 3x3 windows of the whole-frame orthonormal DCT-II (dct2), Tang's 'FMI_dct'. Fix: the VI "
     "equality test uses F's raw window, as for fmi_pixel."),
    ("fmi_w", T.compute_fmi(M3SVD, "wavelet", reuse_normalised=False), True, (0.0, 1.0),
     "Fast-FMI over 3x3 windows of the one-level discrete Meyer dwt2 sub-bands tiled [cA cH; cV cD] and "
     "rescaled to [0, 1], Tang's 'FMI_w'. Fix: the VI equality test uses F's raw window, as for fmi_pixel."),
    ("ce", ce, False, (-math.inf, math.inf),
     "(CE(IR,F)+CE(VI,F))/2, VIFB's cross entropy: KL divergence in bits of the 256-bin uint8 histograms, bins "
     "empty in either image skipped (kept: the true KL is infinite when F lacks a level; with the skip it can "
     "even be negative)."),
    ("ei", ei, True, (0.0, math.inf), "Edge intensity (VIFB): mean Sobel magnitude of F, replicate border."),
    ("rmse", rmse, False, (0.0, 1.0),
     "sqrt of this convention's mse on [0,1]: sqrt((MSE(IR,F)+MSE(VI,F))/2), so psnr = -20*log10(rmse). Fix: "
     "VIFB's 'RMSE' is (||VI-F|| + ||IR-F||)/(2MN), a Frobenius norm over the pixel count, not a root mean square."),
    ("qcb", qcb, True, (0.0, 1.0),
     "Chen-Blum Qcb as VIFB computes it (normalize1, freqspace DoG CSF, unnormalised 31x31 Gaussians, zero "
     "padding), on the grey frames."),
    ("qcv", qcv, False, (0.0, math.inf),
     "Chen-Varshney Qcv as VIFB computes it (normalize1, Mannos-Sakrison CSF, 16x16 zero-padded blocks, "
     "alpha = 5), on the grey frames."),
    ("nmi", nmi, True, (0.0, 2.0),
     "Hossny's normalised MI (MEFB metricsNMI): 2*[MI(IR,F)/(H(IR)+H(F)) + MI(VI,F)/(H(VI)+H(F))], bits, full "
     "256x256 joint histogram of the uint8 grey (MEFB's normalize1 is injective on uint8 and changes nothing)."),
    ("viff", viff, True, (0.0, math.inf),
     "VIFF (Han, Cai, Cao, Xu 2013; MEFB's 'VIF'): the 4-scale VIFp filtering with visual noise 0.005*255^2, "
     "per pixel the source with the smaller gain g (ties: VI), sum(VID+1e-7)/sum(VIND+1e-7) per scale, weights "
     "[1, 0, 0.15, 1]/2.15. Grey frames instead of Han's CIELAB L* for colour. A distinct metric from vif (VIFp)."),
    ("ms_ssim", ms_ssim, True, (0.0, 1.0),
     "(MS-SSIM(F,IR)+MS-SSIM(F,VI))/2, Wang, Simoncelli, Bovik 2003: 5 scales, weights 0.0448/0.2856/0.3001/"
     "0.2363/0.1333, Gaussian 11x11 sigma 1.5 'valid', L = 255, 2x2 mean + decimation between scales (msssim.m). "
     "Fix: a negative per-scale mean is clipped at 0 (MATLAB's power would be complex). Needs >= 161 px."),
]

# the definitions Tang's toolbox shares, and psnr and ag whose fixes change them by an exact factor
_CHECKED_ON_TANG = ("ag", "cc", "en", "mef_ms_ssim", "mse", "psnr", "scd", "sd", "sf", "vif")
for _name, _compute, _hib, _range, _desc in _METRICS:
    register(Metric(_name, CONVENTION, _compute, _hib, _range, "1", "image", f"{_BASE}. {_desc}",
                    reference="Tang's toolbox run under GNU Octave (psnr, ag: the fix's exact factor undone); "
                    "tests/test_metrics_m3svd.py" if _name in _CHECKED_ON_TANG else None))


def niqe(sources, fused):
    from m3svd.metrics import niqe as N

    params = N.load_params()
    return np.array([N.score(f, params) for f in T._fused(M3SVD, fused).astype(np.float64)])


register(Metric("niqe", CONVENTION, niqe, False, (0.0, math.inf), "1", "no-reference",
                f"{_BASE}. NIQE (Mittal et al. 2013), no reference: distance of the fused frame's 96x96-block "
                "natural-scene statistics (2 scales, MATLAB imresize) from a pristine model read from a local "
                "file ($M3SVD_NIQE_PARAMS or niqe_pris_params.npz in the weights folder; m3svd.metrics.niqe). "
                "On the BT.601 grey frame, as the authors' release does on rgb2gray; basicsr and pyiqa default "
                "to the Y of YCbCr, a different number for colour frames.",
                reference="basicsr 1.4.2 niqe() (float64 resize), a value recorded on one M3SVD frame; "
                "tests/test_metrics_niqe.py"))
