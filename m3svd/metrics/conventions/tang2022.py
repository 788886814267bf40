"""``tang2022``: the M3SVD authors' toolbox as it was before 2023-03-03 (Linfeng-Tang/Image-Fusion ``53f5542``).

``General Evaluation Metric/Evaluation/analysis_Reference.m`` at Image-Fusion ``53f5542f`` (2022-05-02) fed its
metrics other data types than the version the ``tang`` convention reproduces (rewritten in ``de968ea``,
2023-03-03, with ``PSNR_evaluation.m`` and ``MSE_evaluation.m``). Tables in papers written with the toolbox
before then (SeAFusion, PIAFusion and others of 2022) hold these numbers. Same reader as ``tang`` (MATLAB
``rgb2gray``), img1 = IR, img2 = VI; every other metric function is the same ``.m`` file. What changes:

============  =============  ====================================================================
CSV           registered     2022 call and what it does
============  =============  ====================================================================
EN, MI, AG    en, mi, ag     unchanged (``uint8``; AG converts with ``double``)
MSE, PSNR     mse, psnr      unchanged: [0, 1] data (``im2double``) with the 2022 ``*_evaluation.m``
SF            sf             ``SF_evaluation(im2double(F))``: on [0, 1], 1/255 of ``tang``'s
SD            sd             ``SD_evaluation(uint8 F)``: ``F − mean`` is ``uint8`` (negatives → 0, rounded) and
                             its square saturates at 255, so SD = √(Σ min(round(max(F−μ, 0))², 255) / MN)
CC, SCD       cc, scd        on [0, 1] data: ``tang``'s values up to rounding
VIF           vif            ``vifp_mscale(uint8, uint8)``: on the first scale ``ref.*ref``, ``dist.*dist`` and
                             ``ref.*dist`` saturate at 255 (the later scales are filtered, hence double)
Qabf          qabf           ``analysis_Qabf`` on [0, 1] data: Sobel responses that are 0 on integers come out
                             ±1e-17 (x/255 is inexact), so the sx = 0 → π/2 branch and the g_A = g_F branch flip
                             with the order ``conv2`` sums in; reproduced in MATLAB's order (see below)
Nabf          nabf           ``analysis_nabf(F, IR, VI)``: the right argument order (``tang`` reproduces the
                             2023 swap), on [0, 1] data, so no gradient reaches Td = 2: every weight is 0.001
SSIM          ssim           ``mef_ssim(imgSeq, F)``: single-scale MEF-SSIM (Ma et al. 2015), not Wang's SSIM
MS_SSIM       mef_ms_ssim    unchanged (``mef_ssim`` converts with ``double``)
FMI_*         fmi_*          ``analysis_fmi`` on [0, 1] data (no golden values, as for ``tang``)
============  =============  ====================================================================

Summation order. Qabf depends on the order ``conv2`` adds the six Sobel terms. :func:`conv2_same` sums each
output's taps in the kernel's column-major order, which reproduces the MATLAB values stored with the toolbox
(``General Evaluation Metric/Metric/Metric_TNO.xlsx`` at ``53f5542``: 42 TNO pairs × 9 methods) to ~1e-15;
GNU Octave sums in another order (liboctave ``dconv2o``, ``summation="octave"``), bit-identical to Octave 7.3 but
~1e-4 off MATLAB's Qabf. ``sobel_fn`` (Nabf) is plain MATLAB code: ``sum(sum(window .* kernel))`` sums each
column top to bottom, then the column sums left to right (:func:`nabf_maps_2022`, as Octave runs it).
"""

from __future__ import annotations

import numpy as np

from m3svd.metrics import register
from m3svd.metrics.base import Metric
from m3svd.metrics.conventions import tang as T
from m3svd.metrics.pixel import qabf_strength_angle

CONVENTION = "tang2022"
TOOLBOX = "Linfeng-Tang/Image-Fusion@53f5542f, General Evaluation Metric/Evaluation"
UNIT = 255.0  # im2double: x/255
TANG2022 = T.Reader(CONVENTION, T.tang_grey)

# analysis_Qabf.m: h3 (x response) and h1 (y response), applied by true convolution
_QABF_X = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
_QABF_Y = np.array([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])
# sobel_fn.m, applied by correlation (window .* kernel); the "-0" entry is kept as written
_NABF_V = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
_NABF_H = np.array([[-1.0, -2, -1], [-0.0, 0, 0], [1, 2, 1]]) / 8


def conv2_same(x: np.ndarray, k: np.ndarray, summation: str = "matlab") -> np.ndarray:
    """``conv2(x, k, 'same')`` of every ``N×H×W`` plane, each output a sequential sum from 0 in one of two orders.

    ``"matlab"``: the kernel's taps in column-major order (columns first to last, rows first to last), the order
    that reproduces MATLAB's stored 2022 Qabf values (``Metric_TNO.xlsx`` of the same commit, 378 values).
    ``"octave"``: GNU Octave's (liboctave ``dconv2o`` loops image column c, kernel column j, kernel row i, adding
    k(i,j)·x(:,c) into full output column c+j): kernel columns last to first, rows first to last.
    Zero taps are skipped (adding 0 changes nothing). ``'same'`` keeps rows/columns from ⌊size(k)/2⌋.
    """
    n, h, w = x.shape
    mb, nb = k.shape
    full = np.zeros((n, h + mb - 1, w + nb - 1))
    columns = {"matlab": range(nb), "octave": reversed(range(nb))}[summation]
    for j in columns:
        for i in range(mb):
            if k[i, j]:
                full[:, i:i + h, j:j + w] += k[i, j] * x
    return np.ascontiguousarray(full[:, mb // 2:mb // 2 + h, nb // 2:nb // 2 + w])


def qabf_maps_2022(x: np.ndarray, summation: str = "matlab") -> tuple[np.ndarray, np.ndarray]:
    """``analysis_Qabf``'s (g, α) of an ``N×H×W`` batch of [0, 1] data, Sobel responses summed as
    :func:`conv2_same` ``summation`` says."""
    return qabf_strength_angle(conv2_same(x, _QABF_X, summation), conv2_same(x, _QABF_Y, summation))


def _sobel_fn(p: np.ndarray, k: np.ndarray, h: int, w: int) -> np.ndarray:
    """``sum(sum(x_ext(window) .* k))`` at every pixel: column sums top to bottom, then left to right, from 0."""
    total = np.zeros((h, w))
    for j in range(3):
        col = np.zeros((h, w))
        for i in range(3):
            col += p[i:i + h, j:j + w] * k[i, j]
        total += col
    return total


def nabf_maps_2022(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``analysis_nabf``'s (g, α) of one 2-D frame: ``sobel_fn`` on the mirror extension, summed as MATLAB does."""
    h, w = x.shape
    p = np.pad(x, 1, mode="reflect")  # per_extn_im_fn: mirror without repeating the edge pixel
    return T.nabf_strength_angle(_sobel_fn(p, _NABF_V, h, w), _sobel_fn(p, _NABF_H, h, w))


def compute_sd_uint8(reader: T.Reader):
    """``SD_evaluation`` on ``uint8`` F: μ = mean(mean(F)) in double, d = uint8(F − μ), SD = √(Σ uint8(d²)/MN)."""

    def compute(sources, fused):
        f = T._fused(reader, fused)
        _, m, n = f.shape
        mu = np.cumsum(f.sum(axis=1, dtype=np.int64) / m, axis=1)[:, -1] / n  # column means, then their mean
        d = T.f64(f) - mu[:, None, None]
        r = np.floor(d)
        r += (d - r) >= 0.5  # uint8(): round half away from zero (negatives saturate to 0 below)
        np.clip(r, 0.0, 255.0, out=r)
        r *= r
        np.minimum(r, 255.0, out=r)  # uint8 .^ 2 saturates
        return np.sqrt(r.sum(axis=(1, 2)) / (m * n))

    return compute


_2022 = f"Tang toolbox before 2023-03-03 ({TOOLBOX}, analysis_Reference.m) on MATLAB rgb2gray grey frames"
_METRICS = [
    ("en", T.compute_en(TANG2022), True, (0.0, 8.0), "Entropy of the uint8 grey fused frame, 256 bins, bits."),
    ("sd", compute_sd_uint8(TANG2022), True, (0.0, float(np.sqrt(255.0))),
     "SD_evaluation on uint8 F: F - mean is uint8 (values below the mean become 0) and its square saturates at "
     "255, so SD = sqrt(sum(min(round(max(F - mean, 0))^2, 255)) / MN) <= 15.97 (kept)."),
    ("sf", T.compute_sf(TANG2022, unit=UNIT), True, (0.0, float(np.sqrt(2.0))),
     "Spatial frequency sqrt(mean row-diff^2 + mean col-diff^2) on [0,1] data (im2double): 1/255 of the 0-255 "
     "value (kept)."),
    ("ag", T.compute_ag(TANG2022, per_pixel=False), True, (0.0, T.INF),
     "Average gradient: sum over all M*N pixels of sqrt((gx^2+gy^2)/2) divided by (M-1)(N-1) (quirk kept)."),
    ("mi", T.compute_mi(TANG2022, saturate=True), True, (0.0, 18.0),
     "MI(F,IR)+MI(F,VI) in bits; the joint histogram merges levels 254 and 255 (uint8 saturation, kept)."),
    ("mse", T.compute_mse(TANG2022), False, (0.0, 1.0), "(MSE(IR,F)+MSE(VI,F))/2 on [0,1] data."),
    ("psnr", T.compute_psnr(TANG2022, offset_bug=True), True, (T.PSNR_OFFSET_DB, T.INF),
     "20*log10(255/sqrt(MSE)) with MSE on [0,1]: the standard PSNR + 48.13 dB (kept)."),
    ("cc", T.compute_cc(TANG2022, unit=UNIT), True, (-1.0, 1.0),
     "(r(IR,F)+r(VI,F))/2, Pearson correlation, on [0,1] data."),
    ("scd", T.compute_scd(TANG2022, unit=UNIT), True, (-2.0, 2.0),
     "Sum of correlations of differences r(F-VI,IR)+r(F-IR,VI), on [0,1] data."),
    ("vif", T.compute_vif(TANG2022, uint8_products=True), True, (0.0, T.INF),
     "VIFp(IR->F)+VIFp(VI->F), 4-scale pixel-domain VIF, sigma_n^2 = 2, called on uint8 images: the first "
     "scale's products x.*y saturate at 255, which zeroes its variances except in dark regions (kept)."),
    ("qabf", T.compute_qabf(TANG2022, equal_is_one=False, unit=UNIT, maps=qabf_maps_2022), True, (0.0, 1.0),
     "Xydeas-Petrovic Q^AB/F on [0,1] data: zero-padded Sobel by conv2, each output's taps summed in column-major "
     "kernel order as MATLAB does; responses that are 0 on integers come out +-1e-17, which flips the sx = 0 "
     "(pi/2) and g_source = g_F (ratio g_F) branches (kept). GNU Octave sums in another order: its Qabf differs "
     "by up to 3.3% (median 3.5e-4) on the 378 TNO values."),
    ("nabf", T.compute_nabf(TANG2022, tang_order=False, unit=UNIT, maps=nabf_maps_2022), False, (0.0, 1.0),
     "Shreyamsha Kumar's Nabf called as analysis_nabf(F, IR, VI) (the right order) on [0,1] data: no edge "
     "strength reaches Td = 2, so every weight is 0.001 (kept)."),
    ("ssim", T.compute_mef_ms_ssim(TANG2022, levels=1), True, (0.0, 1.0),
     "Tang 2022 'SSIM': single-scale MEF-SSIM (Ma, Zeng, Wang 2015, mef_ssim.m) of F against the stack (IR, VI), "
     "Gaussian 11x11 sigma 1.5, K = 0.03 - not Wang's SSIM."),
    ("mef_ms_ssim", T.compute_mef_ms_ssim(TANG2022), True, (0.0, 1.0),
     "Tang's 'MS_SSIM': MEF-MS-SSIM (Ma, Zeng, Wang 2015) of F against the stack (IR, VI), 3 scales, "
     "K = 0.03 - not Wang's MS-SSIM (same as tang)."),
    ("fmi_pixel", T.compute_fmi(TANG2022, "edge", reuse_normalised=True, unit=UNIT), True, (0.0, 1.0),
     "Tang's 'FMI_pixel' on [0,1] data: fast-FMI over 3x3 windows of MATLAB edge() maps (analysis_fmi's default "
     "feature), F's window normalised before the VI equality test (kept). Not checked against MATLAB output."),
    ("fmi_dct", T.compute_fmi(TANG2022, "dct", reuse_normalised=True, unit=UNIT), True, (0.0, 1.0),
     "Tang's 'FMI_dct' on [0,1] data: fast-FMI over 3x3 windows of the whole-frame dct2 coefficients (kept)."),
    ("fmi_w", T.compute_fmi(TANG2022, "wavelet", reuse_normalised=True, unit=UNIT), True, (0.0, 1.0),
     "Tang's 'FMI_w' on [0,1] data: fast-FMI over 3x3 windows of the one-level discrete Meyer dwt2 sub-bands "
     "tiled [cA cH; cV cD] and rescaled to [0, 1] (kept)."),
]

_MATLAB = {"en", "sd", "sf", "ag", "mi", "scd", "vif", "qabf", "psnr", "mse", "cc"}  # Metric_TNO.xlsx's columns


def _reference(name: str) -> str | None:
    if name.startswith("fmi_"):
        return None
    where = "the toolbox's own MATLAB values (Metric_TNO.xlsx) and " if name in _MATLAB else ""
    return f"{where}the 2022 toolbox run under GNU Octave; tests/test_metrics_tang2022.py"


for _name, _compute, _hib, _range, _desc in _METRICS:
    register(Metric(_name, CONVENTION, _compute, _hib, _range, "1", "image", f"{_2022}. {_desc}",
                    reference=_reference(_name)))
