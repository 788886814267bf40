"""``tang``: Linfeng Tang's MATLAB toolbox (``Evaluation-for-Image-Fusion@0e87153b``, ``analysis_Reference.m``).

Reproduces the toolbox as it runs, quirks and bugs included (``specs/metrics.md`` §1 "Tang", §2, §3), and is
checked against ``golden/tang/tang_octave.csv`` (the toolbox under GNU Octave). The leaderboard's ``m3svd``
convention reuses the building blocks below with the bugs fixed (see ``m3svd.py`` and ``metrics/CONVENTIONS.md``).

Reader: every frame with more than two channels goes through MATLAB ``rgb2gray`` (full-precision weights
0.298936021293775, 0.587043074451121, 0.114020904255103, rounded half away from zero to ``uint8``). EN and MI
use those ``uint8`` images; everything else uses ``im2double(x)·255`` (bit-identical to the integers as
float64); MSE and PSNR rescale to [0, 1]. Inside the toolbox img1 = IR, img2 = VI.

Names in ``tang_octave.csv`` → registered names (convention ``tang``):

============  =============  ====================================================================
CSV           registered     definition (toolbox function)
============  =============  ====================================================================
EN            en             entropy of the uint8 grey F, 256 bins, bits
SD            sd             population standard deviation (``SD_evaluation``)
SF            sf             √(mean row-diff² + mean column-diff²) (``SF_evaluation``)
AG            ag             Σ √((gx²+gy²)/2) over M·N pixels / ((M−1)(N−1)), MATLAB ``gradient``
MI            mi             MI(F,IR)+MI(F,VI) in bits; joint histogram saturates 254/255 (``Hab``)
MSE           mse            (MSE(IR,F)+MSE(VI,F))/2 on [0, 1]
PSNR          psnr           20·log10(255/√MSE), MSE on [0, 1] — the standard PSNR + 48.13 dB
CC            cc             (r(IR,F)+r(VI,F))/2, Pearson
SCD           scd            corr2(F−VI, IR) + corr2(F−IR, VI)
VIF           vif            VIFp(IR→F) + VIFp(VI→F), 4-scale pixel-domain VIF, σn² = 2 (``vifp_mscale``)
Qabf          qabf           Xydeas–Petrović, zero-padded Sobel, g_A = g_F ⇒ G = g_F (``analysis_Qabf``)
SSIM          ssim           (SSIM(F,IR)+SSIM(F,VI))/2, MATLAB ``ssim`` defaults on 0–255 doubles: Gaussian
                             11×11 σ 1.5, replicate padding, L = 1 ⇒ C1 = 1e-4, C2 = 9e-4
Nabf          nabf           Shreyamsha Kumar's Nabf called as ``analysis_nabf(IR, VI, F)``: the IR image
                             plays the fused image (argument-order bug, reproduced)
MS_SSIM       mef_ms_ssim    MEF-MS-SSIM (Ma, Zeng, Wang 2015) of F against the stack (IR, VI), 3 scales —
                             not Wang's MS-SSIM, hence the name
============  =============  ====================================================================

Not implemented: FMI_pixel / FMI_dct / FMI_w (not in the golden file; FMI_pixel needs MATLAB ``edge()``).

The helpers here (``matlab_rgb2gray``, ``gaussian_1d``, ``filter_valid``/``filter_same``, ``box_sum_valid``,
``entropy_bits``, ``joint_entropy_bits``, ``corr2``, ``matlab_gradient_ag``, ``vifp_reference``/``vifp_distorted``/
``vifp``, ``qabf_maps``/``qabf_score``, ``nabf_maps``/``nabf_score``, ``ssim_moments``/``ssim_mean``,
``mef_ms_ssim_reference``/``mef_ms_ssim``) are plain 2-D float64/uint8 functions that other conventions can share.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from m3svd.metrics import register
from m3svd.metrics.base import Metric, MetricError, Sources

CONVENTION = "tang"
# MATLAB rgb2gray, full precision (the inverse of the NTSC YIQ matrix's first row).
MATLAB_RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
PSNR_OFFSET_DB = 20 * math.log10(255)  # Tang's PSNR minus the standard one


# ---------------------------------------------------------------------------------------------------------
# readers
def matlab_rgb2gray(frames: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2gray`` of ``uint8`` ``…×3`` frames: weighted sum in float64, round half away from zero."""
    x = frames.astype(np.float64)
    w0, w1, w2 = MATLAB_RGB2GRAY
    y = x[..., 0] * w0 + x[..., 1] * w1 + x[..., 2] * w2
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)


def tang_grey(frames: np.ndarray) -> np.ndarray:
    """The toolbox reader: ``rgb2gray`` on any N×H×W×3 batch, grey batches unchanged (``uint8`` N×H×W)."""
    return matlab_rgb2gray(frames) if frames.ndim == 4 else np.ascontiguousarray(frames)


class Reader:
    """How one convention turns frames into grey, and where its source-only results are memoised."""

    def __init__(self, convention: str, grey: Callable[[np.ndarray], np.ndarray]):
        self.convention = convention
        self.grey = grey

    def source(self, sources: Sources, which: str) -> np.ndarray:
        """Grey ``uint8`` N×H×W of ``"ir"`` or ``"vi"``, computed once per :class:`Sources`."""
        return sources.memo((self.convention, "grey", which), lambda: self.grey(getattr(sources, which)))

    def sources(self, sources: Sources) -> tuple[np.ndarray, np.ndarray]:
        return self.source(sources, "ir"), self.source(sources, "vi")

    def memo(self, sources: Sources, name: str, compute: Callable[[], object]):
        return sources.memo((self.convention, name), compute)


TANG = Reader(CONVENTION, tang_grey)


def f64(x: np.ndarray) -> np.ndarray:
    """``im2double(x)·255`` of ``uint8``: bit-identical to ``x`` as float64 for every level 0–255."""
    return x.astype(np.float64)


# ---------------------------------------------------------------------------------------------------------
# histograms
def _entropy_of_counts(counts: np.ndarray, total: int) -> float:
    p = counts[counts > 0] / total
    return float(-np.sum(p * np.log2(p)))


def entropy_bits(image: np.ndarray) -> float:
    """MATLAB ``entropy`` of a ``uint8`` image: 256-bin histogram, log2."""
    return _entropy_of_counts(np.bincount(image.ravel(), minlength=256), image.size)


def joint_entropy_bits(a: np.ndarray, b: np.ndarray, saturate: bool = False) -> float:
    """Joint entropy (bits) of two ``uint8`` images on a 256×256 histogram.

    ``saturate=True`` reproduces Tang's ``Hab.m``: it indexes with ``uint8 + 1``, which saturates at 255, so
    levels 254 and 255 share one bin on both axes.
    """
    a = a.ravel().astype(np.int64)
    b = b.ravel().astype(np.int64)
    if saturate:
        a = np.minimum(a, 254)
        b = np.minimum(b, 254)
    return _entropy_of_counts(np.bincount(a * 256 + b, minlength=65536), a.size)


def mi_bits(source: np.ndarray, fused: np.ndarray, saturate: bool = False, h_source: float | None = None) -> float:
    """H(S) + H(F) − H(S,F) in bits (marginals from MATLAB ``entropy``, joint as :func:`joint_entropy_bits`)."""
    hs = entropy_bits(source) if h_source is None else h_source
    return hs + entropy_bits(fused) - joint_entropy_bits(fused, source, saturate)


# ---------------------------------------------------------------------------------------------------------
# filtering (separable; 'valid' = any padding then crop)
def gaussian_1d(n: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', n, sigma)`` (its outer product is the 2-D kernel)."""
    x = np.arange(n, dtype=np.float64) - (n - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def filter_same(x: np.ndarray, k: np.ndarray, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Separable correlation of a 2-D float64 image with ``outer(k, k)``, output the size of ``x``."""
    return cv2.sepFilter2D(np.ascontiguousarray(x), cv2.CV_64F, k, k, borderType=border)


def filter_valid(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(outer(k, k), x, 'valid')`` for a symmetric odd ``k``."""
    r = len(k) // 2
    out = filter_same(x, k, cv2.BORDER_CONSTANT)
    return out[r : out.shape[0] - r, r : out.shape[1] - r]


def box_sum_valid(x: np.ndarray, w: int) -> np.ndarray:
    """Sums over every w×w window ('valid'), by an integral image: exact for integer or dyadic data."""
    c = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    c[1:, 1:] = x.cumsum(0).cumsum(1)
    return c[w:, w:] - c[:-w, w:] - c[w:, :-w] + c[:-w, :-w]


# ---------------------------------------------------------------------------------------------------------
# simple statistics (batched over N)
def corr2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MATLAB ``corr2`` per frame of two N×H×W float64 batches (NaN where either is constant)."""
    a = a - a.mean(axis=(1, 2), keepdims=True)
    b = b - b.mean(axis=(1, 2), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=(1, 2)) / np.sqrt((a * a).sum(axis=(1, 2)) * (b * b).sum(axis=(1, 2)))


def spatial_frequency(f: np.ndarray) -> np.ndarray:
    """√(mean of squared row differences + mean of squared column differences), per frame."""
    rf = np.diff(f, axis=1)
    cf = np.diff(f, axis=2)
    return np.sqrt((rf * rf).mean(axis=(1, 2)) + (cf * cf).mean(axis=(1, 2)))


def matlab_gradient_ag(f: np.ndarray) -> np.ndarray:
    """Σ over all pixels of √((gx²+gy²)/2), MATLAB ``gradient`` (central inside, one-sided at borders)."""
    gy, gx = np.gradient(f, axis=(1, 2))
    return np.sqrt((gx * gx + gy * gy) / 2).sum(axis=(1, 2))


def mse01(source: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Per-frame mean squared error of two 0–255 float64 batches rescaled to [0, 1]."""
    d = fused / 255 - source / 255
    return (d * d).mean(axis=(1, 2))


# ---------------------------------------------------------------------------------------------------------
# VIFp (Sheikh–Bovik, LIVE vifp_mscale.m)
VIF_SIGMA_NSQ = 2.0
_VIF_EPS = 1e-10


def _vif_kernels():
    return [gaussian_1d(n, n / 5) for n in (2 ** (5 - s) + 1 for s in (1, 2, 3, 4))]


def vifp_reference(ref: np.ndarray) -> tuple[list, float]:
    """Source-only part of VIFp for one 2-D float64 reference: per scale (image, μ₁, σ₁² clipped) and den."""
    scales, den = [], 0.0
    for s, k in enumerate(_vif_kernels()):
        if s:
            ref = filter_valid(ref, k)[::2, ::2]
        mu1 = filter_valid(ref, k)
        s1 = filter_valid(ref * ref, k) - mu1 * mu1
        s1[s1 < 0] = 0
        s1z = np.where(s1 < _VIF_EPS, 0.0, s1)
        den += float(np.sum(np.log10(1 + s1z / VIF_SIGMA_NSQ)))
        scales.append((ref, mu1, s1))
    return scales, den


def vifp_distorted(dist: np.ndarray) -> list:
    """Distorted-image side of VIFp, shareable by several references: per scale (image, μ₂, σ₂² clipped)."""
    scales = []
    for s, k in enumerate(_vif_kernels()):
        if s:
            dist = filter_valid(dist, k)[::2, ::2]
        mu2 = filter_valid(dist, k)
        s2 = filter_valid(dist * dist, k) - mu2 * mu2
        s2[s2 < 0] = 0
        scales.append((dist, mu2, s2))
    return scales


def vifp(reference: tuple[list, float], dist) -> float:
    """VIFp(reference → dist) in LIVE's pixel-domain form, σn² = 2 on 0–255 data; NaN if den = 0.

    ``dist``: a 2-D float64 image or its :func:`vifp_distorted` pyramid.
    """
    scales, den = reference
    pyramid = vifp_distorted(dist) if isinstance(dist, np.ndarray) else dist
    num = 0.0
    for k, (ref, mu1, s1), (d, mu2, s2) in zip(_vif_kernels(), scales, pyramid, strict=True):
        s12 = filter_valid(ref * d, k) - mu1 * mu2
        g = s12 / (s1 + _VIF_EPS)
        sv = s2 - g * s12
        flat1 = s1 < _VIF_EPS
        g[flat1] = 0
        sv[flat1] = s2[flat1]
        s1z = np.where(flat1, 0.0, s1)
        flat2 = s2 < _VIF_EPS
        g[flat2] = 0
        sv[flat2] = 0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0
        sv[sv <= _VIF_EPS] = _VIF_EPS
        num += float(np.sum(np.log10(1 + g * g * s1z / (sv + VIF_SIGMA_NSQ))))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(num) / np.float64(den))


# ---------------------------------------------------------------------------------------------------------
# Qabf (Xydeas–Petrović; analysis_Qabf.m)
_QG, _KG, _DG = 0.9994, -15.0, 0.5
_QA, _KA, _DA = 0.9879, -22.0, 0.8


def _correlate3(x: np.ndarray, k: np.ndarray, pad_mode: str) -> np.ndarray:
    """3×3 correlation by shifted sums on a padded copy (exact for integer or dyadic data)."""
    p = np.pad(x, 1, mode=pad_mode)
    h, w = x.shape
    out = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            if k[i, j]:
                out += k[i, j] * p[i : i + h, j : j + w]
    return out


_SOBEL_X = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
_SOBEL_Y = np.array([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])


def qabf_maps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength g and orientation α = atan(s_y/s_x) (π/2 where s_x = 0), zero-padded Sobel."""
    sx = _correlate3(x, _SOBEL_X, "constant")
    sy = _correlate3(x, _SOBEL_Y, "constant")
    g = np.sqrt(sx * sx + sy * sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(sx == 0, np.pi / 2, np.arctan(sy / np.where(sx == 0, 1.0, sx)))
    return g, a


def _qabf_edge(gs, as_, gf, af, equal_is_one: bool) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        G = np.where(gs > gf, gf / gs, np.where(gs < gf, gs / gf, 1.0 if equal_is_one else gf))
    A = 1 - np.abs(as_ - af) / (np.pi / 2)
    return _QG / (1 + np.exp(_KG * (G - _DG))) * (_QA / (1 + np.exp(_KA * (A - _DA))))


def qabf_score(a_maps, b_maps, f_maps, equal_is_one: bool = False) -> float:
    """Σ(Q^AF·g_A + Q^BF·g_B)/Σ(g_A + g_B); ``equal_is_one=False`` keeps the lineage's G = g_F at g_A = g_F."""
    (ga, aa), (gb, ab), (gf, af) = a_maps, b_maps, f_maps
    num = np.sum(_qabf_edge(ga, aa, gf, af, equal_is_one) * ga + _qabf_edge(gb, ab, gf, af, equal_is_one) * gb)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(num) / np.float64(np.sum(ga + gb)))


# ---------------------------------------------------------------------------------------------------------
# Nabf (Shreyamsha Kumar; analysis_nabf.m, sobel_fn.m, per_extn_im_fn.m)
_NABF_V = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
_NABF_H = np.array([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]) / 8


def nabf_maps(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength √(gh² + gv²) (kernels already /8: tie-exact) and α = atan(gv/gh), 0 where both are 0."""
    gv = _correlate3(x, _NABF_V, "reflect")  # mirror without edge repetition
    gh = _correlate3(x, _NABF_H, "reflect")
    g = np.sqrt(gh * gh + gv * gv)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where((gv == 0) & (gh == 0), 0.0, np.arctan(gv / gh))
    return g, a


def _nabf_q(gs, as_, gf, af) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        gr = np.where((gs == 0) | (gf == 0), 0.0, np.where(gs > gf, gf / gs, gs / gf))
    ar = np.abs(np.abs(as_ - af) - np.pi / 2) * 2 / np.pi
    qg = 0.9999 / (1 + np.exp(-19 * (gr - 0.5)))
    qa = 0.9995 / (1 + np.exp(-22 * (ar - 0.5)))
    return np.sqrt(qg * qa)


def _nabf_weight(g: np.ndarray) -> np.ndarray:
    return np.where(g >= 2, g**1.5, 0.001)


def nabf_score(fused_maps, a_maps, b_maps) -> float:
    """Σ n·[(1−Q^AF)w_A + (1−Q^BF)w_B]/Σ(w_A+w_B), n = 1 where g_F > g_A and g_F > g_B (lower is better)."""
    (gf, af), (ga, aa), (gb, ab) = fused_maps, a_maps, b_maps
    wa, wb = _nabf_weight(ga), _nabf_weight(gb)
    n = (gf > ga) & (gf > gb)
    num = np.sum(np.where(n, (1 - _nabf_q(ga, aa, gf, af)) * wa + (1 - _nabf_q(gb, ab, gf, af)) * wb, 0.0))
    return float(num / np.sum(wa + wb))


# ---------------------------------------------------------------------------------------------------------
# SSIM (MATLAB ``ssim`` defaults: Gaussian σ 1.5 on 11×11, replicate padding, same-size map)
SSIM_KERNEL = gaussian_1d(11, 1.5)


def ssim_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = filter_same(x, SSIM_KERNEL)
    return mu, filter_same(x * x, SSIM_KERNEL) - mu * mu


def ssim_mean(x_moments, x: np.ndarray, y: np.ndarray, y_moments, c1: float, c2: float) -> float:
    """Mean of the SSIM map ((2μxμy+C1)(2σxy+C2))/((μx²+μy²+C1)(σx²+σy²+C2)) from precomputed moments."""
    (mx, vx), (my, vy) = x_moments, y_moments
    cxy = filter_same(x * y, SSIM_KERNEL) - mx * my
    m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(m.mean())


# ---------------------------------------------------------------------------------------------------------
# MEF-MS-SSIM (Ma, Zeng, Wang 2015; analysis_ms_ssim.m), vectorised
MEF_K = 0.03
MEF_WEIGHTS = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)
_MEF_W = 11
_MEF_EPS = np.finfo(np.float64).eps


def _mef_downsample(x: np.ndarray) -> np.ndarray:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then ``(1:2:end, 1:2:end)``: 2×2 block means."""
    p = np.pad(x, ((0, 1), (0, 1)), mode="edge")
    return (p[:-1:2, :-1:2] + p[1::2, :-1:2] + p[:-1:2, 1::2] + p[1::2, 1::2]) * 0.25


def _gauss_valid(x: np.ndarray) -> np.ndarray:
    return filter_valid(x, SSIM_KERNEL)


def _mef_scale_reference(x1: np.ndarray, x2: np.ndarray) -> dict:
    """Source-stack side of one MEF-SSIM scale (data centred at 128: every statistic is shift-free)."""
    w2 = _MEF_W * _MEF_W
    s1, s2 = box_sum_valid(x1, _MEF_W), box_sum_valid(x2, _MEF_W)
    # 121·Σ(x_k x_l) − Σx_k Σx_l: exact for dyadic data, exactly 0 on flat windows
    d11 = w2 * box_sum_valid(x1 * x1, _MEF_W) - s1 * s1
    d22 = w2 * box_sum_valid(x2 * x2, _MEF_W) - s2 * s2
    d12 = w2 * box_sum_valid(x1 * x2, _MEF_W) - s1 * s2
    n1 = np.sqrt(np.maximum(d11, 0) / w2)  # ‖x_k − μ_k‖ over the window
    n2 = np.sqrt(np.maximum(d22, 0) / w2)
    ed1, ed2 = n1 + 0.001, n2 + 0.001
    num = np.sqrt(np.maximum(d11 + 2 * d12 + d22, 0) / w2)
    r = (num + _MEF_EPS) / (n1 + n2 + _MEF_EPS)
    r[r > 1] = 1 - _MEF_EPS
    r[r < 0] = _MEF_EPS
    p = np.minimum(np.tan(np.pi / 2 * r), 10.0)
    w1, w2m = (ed1 / _MEF_W) ** p + _MEF_EPS, (ed2 / _MEF_W) ** p + _MEF_EPS
    norm = w1 + w2m
    a1, a2 = w1 / norm / ed1, w2m / norm / ed2
    rnorm = np.sqrt(np.maximum(a1 * a1 * d11 + 2 * a1 * a2 * d12 + a2 * a2 * d22, 0) / w2)
    flat1, flat2 = d11 == 0, d22 == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(rnorm > 0, np.maximum(ed1, ed2) / rnorm, 1.0)
    g1, g2 = _gauss_valid(x1), _gauss_valid(x2)
    c11 = np.where(flat1, 0.0, _gauss_valid(x1 * x1) - g1 * g1)
    c22 = np.where(flat2, 0.0, _gauss_valid(x2 * x2) - g2 * g2)
    c12 = np.where(flat1 | flat2, 0.0, _gauss_valid(x1 * x2) - g1 * g2)
    sigma_r = s * s * (a1 * a1 * c11 + 2 * a1 * a2 * c12 + a2 * a2 * c22)
    return {"x1": x1, "x2": x2, "g1": g1, "g2": g2, "b1": s * a1 * ~flat1, "b2": s * a2 * ~flat2,
            "sigma_r": sigma_r}


def mef_ms_ssim_reference(src1: np.ndarray, src2: np.ndarray) -> list[dict]:
    """Source-only part of MEF-MS-SSIM for two 2-D 0–255 float64 sources, all three scales."""
    x1, x2 = src1 - 128.0, src2 - 128.0
    scales = []
    for level in range(len(MEF_WEIGHTS)):
        if level:
            x1, x2 = _mef_downsample(x1), _mef_downsample(x2)
        scales.append(_mef_scale_reference(x1, x2))
    return scales


def mef_ms_ssim(reference: list[dict], fused: np.ndarray) -> float:
    """Π_l Q_l^{w_l}, Q_l = mean of (2σ_rf + C)/(σ_r² + σ_f² + C) over 'valid' 11×11 windows, C = (0.03·255)²."""
    c = (MEF_K * 255) ** 2
    f = fused - 128.0
    qs = []
    for level, ref in enumerate(reference):
        if level:
            f = _mef_downsample(f)
        gf = _gauss_valid(f)
        sigma_f = _gauss_valid(f * f) - gf * gf
        cov = ref["b1"] * (_gauss_valid(ref["x1"] * f) - ref["g1"] * gf)
        cov += ref["b2"] * (_gauss_valid(ref["x2"] * f) - ref["g2"] * gf)
        qs.append(float(np.mean((2 * cov + c) / (ref["sigma_r"] + sigma_f + c))))
    with np.errstate(invalid="ignore"):
        return float(np.prod(np.power(np.array(qs), MEF_WEIGHTS)))


# ---------------------------------------------------------------------------------------------------------
# metric builders, shared with the ``m3svd`` convention
def _fused(reader: Reader, fused: np.ndarray) -> np.ndarray:
    return reader.grey(fused)


def _source_pairs(reader: Reader, sources: Sources, name: str, fn, as_float: bool = True) -> list:
    """``[(fn(IR_i), fn(VI_i))]`` over the batch, memoised per convention (float64 0–255 or uint8 grey)."""

    def compute():
        conv = f64 if as_float else (lambda x: x)
        return [(fn(conv(a)), fn(conv(b))) for a, b in zip(*reader.sources(sources), strict=True)]

    return reader.memo(sources, name, compute)


def _per_frame(fn, *batches) -> np.ndarray:
    return np.array([fn(*items) for items in zip(*batches, strict=True)], dtype=np.float64)


def compute_en(reader: Reader):
    def compute(sources: Sources, fused: np.ndarray) -> np.ndarray:
        return _per_frame(entropy_bits, _fused(reader, fused))

    return compute


def compute_sd(reader: Reader):
    def compute(sources, fused):
        return f64(_fused(reader, fused)).std(axis=(1, 2))

    return compute


def compute_sf(reader: Reader):
    def compute(sources, fused):
        return spatial_frequency(f64(_fused(reader, fused)))

    return compute


def compute_ag(reader: Reader, per_pixel: bool):
    """``per_pixel=False``: Tang's Σ/((M−1)(N−1)); ``True``: the mean over the M·N pixels summed."""

    def compute(sources, fused):
        f = f64(_fused(reader, fused))
        _, m, n = f.shape
        return matlab_gradient_ag(f) / (m * n if per_pixel else (m - 1) * (n - 1))

    return compute


def compute_mi(reader: Reader, saturate: bool):
    def compute(sources, fused):
        ir, vi = reader.sources(sources)
        h = _source_pairs(reader, sources, "entropy", entropy_bits, as_float=False)
        f = _fused(reader, fused)
        return np.array([mi_bits(a, x, saturate, ha) + mi_bits(b, x, saturate, hb)
                         for a, b, x, (ha, hb) in zip(ir, vi, f, h, strict=True)])

    return compute


def compute_mse(reader: Reader):
    def compute(sources, fused):
        ir, vi = reader.sources(sources)
        f = f64(_fused(reader, fused))
        return (mse01(f64(ir), f) + mse01(f64(vi), f)) / 2

    return compute


def compute_psnr(reader: Reader, offset_bug: bool):
    """Tang: 20·log10(255/√MSE₀₁) (``offset_bug``); fixed: 10·log10(1/MSE₀₁) = 10·log10(255²/MSE₀₋₂₅₅)."""
    mse = compute_mse(reader)

    def compute(sources, fused):
        with np.errstate(divide="ignore"):
            return 20 * np.log10((255.0 if offset_bug else 1.0) / np.sqrt(mse(sources, fused)))

    return compute


def compute_cc(reader: Reader):
    def compute(sources, fused):
        ir, vi = reader.sources(sources)
        f = f64(_fused(reader, fused))
        return (corr2(f64(ir), f) + corr2(f64(vi), f)) / 2

    return compute


def compute_scd(reader: Reader):
    def compute(sources, fused):
        ir, vi = reader.sources(sources)
        a, b, f = f64(ir), f64(vi), f64(_fused(reader, fused))
        return corr2(f - b, a) + corr2(f - a, b)

    return compute


def compute_vif(reader: Reader):
    def compute(sources, fused):
        refs = _source_pairs(reader, sources, "vif_reference", vifp_reference)
        f = f64(_fused(reader, fused))
        pyramids = [vifp_distorted(x) for x in f]
        return np.array([vifp(ra, p) + vifp(rb, p) for (ra, rb), p in zip(refs, pyramids, strict=True)])

    return compute


def compute_qabf(reader: Reader, equal_is_one: bool):
    def compute(sources, fused):
        maps = _source_pairs(reader, sources, "qabf_maps", qabf_maps)
        f = f64(_fused(reader, fused))
        return np.array([qabf_score(ma, mb, qabf_maps(x), equal_is_one) for (ma, mb), x in zip(maps, f, strict=True)])

    return compute


def compute_nabf(reader: Reader, tang_order: bool):
    """``tang_order``: ``analysis_nabf(IR, VI, F)`` — IR as the fused image, (VI, F) as sources."""

    def compute(sources, fused):
        maps = _source_pairs(reader, sources, "nabf_maps", nabf_maps)
        f = f64(_fused(reader, fused))
        out = []
        for (m_ir, m_vi), x in zip(maps, f, strict=True):
            m_f = nabf_maps(x)
            out.append(nabf_score(m_ir, m_vi, m_f) if tang_order else nabf_score(m_f, m_ir, m_vi))
        return np.array(out)

    return compute


def compute_ssim(reader: Reader, dynamic_range: float):
    c1, c2 = (0.01 * dynamic_range) ** 2, (0.03 * dynamic_range) ** 2

    def compute(sources, fused):
        ir, vi = reader.sources(sources)
        mom = _source_pairs(reader, sources, "ssim_moments", ssim_moments)
        out = []
        for a, b, (ma, mb), x in zip(ir, vi, mom, f64(_fused(reader, fused)), strict=True):
            mf = ssim_moments(x)
            out.append(0.5 * ssim_mean(mf, x, f64(a), ma, c1, c2) + 0.5 * ssim_mean(mf, x, f64(b), mb, c1, c2))
        return np.array(out)

    return compute


def compute_mef_ms_ssim(reader: Reader):
    least = _MEF_W * 2 ** (len(MEF_WEIGHTS) - 1)

    def compute(sources, fused):
        if min(fused.shape[1:3]) < least:  # the toolbox returns -Inf here
            raise MetricError(f"mef_ms_ssim@{reader.convention}: frames {fused.shape[1]}×{fused.shape[2]} are "
                              f"too small for 3 scales of 11×11 windows (need ≥ {least} px on the shorter side)")
        ir, vi = reader.sources(sources)
        refs = reader.memo(sources, "mef_ms_ssim_reference",
                           lambda: [mef_ms_ssim_reference(f64(a), f64(b)) for a, b in zip(ir, vi, strict=True)])
        return np.array([mef_ms_ssim(r, x) for r, x in zip(refs, f64(_fused(reader, fused)), strict=True)])

    return compute


# ---------------------------------------------------------------------------------------------------------
# registration
INF = float("inf")
SF_MAX = 255 * math.sqrt(2)
_TANG = "Tang toolbox (analysis_Reference.m) on MATLAB rgb2gray grey frames"

_METRICS = [
    ("en", compute_en(TANG), True, (0.0, 8.0), "Entropy of the uint8 grey fused frame, 256 bins, bits."),
    ("sd", compute_sd(TANG), True, (0.0, 127.5), "Population standard deviation of F (0-255)."),
    ("sf", compute_sf(TANG), True, (0.0, SF_MAX), "Spatial frequency: sqrt(mean row-diff^2 + mean col-diff^2)."),
    ("ag", compute_ag(TANG, per_pixel=False), True, (0.0, INF),
     "Average gradient: sum over all M*N pixels of sqrt((gx^2+gy^2)/2) divided by (M-1)(N-1) (quirk kept)."),
    ("mi", compute_mi(TANG, saturate=True), True, (0.0, 18.0),
     "MI(F,IR)+MI(F,VI) in bits; the joint histogram merges levels 254 and 255 (uint8 saturation, kept)."),
    ("mse", compute_mse(TANG), False, (0.0, 1.0), "(MSE(IR,F)+MSE(VI,F))/2 on [0,1] data."),
    ("psnr", compute_psnr(TANG, offset_bug=True), True, (PSNR_OFFSET_DB, INF),
     "20*log10(255/sqrt(MSE)) with MSE on [0,1]: the standard PSNR + 48.13 dB (kept)."),
    ("cc", compute_cc(TANG), True, (-1.0, 1.0), "(r(IR,F)+r(VI,F))/2, Pearson correlation."),
    ("scd", compute_scd(TANG), True, (-2.0, 2.0), "Sum of correlations of differences: r(F-VI,IR)+r(F-IR,VI)."),
    ("vif", compute_vif(TANG), True, (0.0, INF),
     "VIFp(IR->F)+VIFp(VI->F): 4-scale pixel-domain VIF (Sheikh-Bovik), sigma_n^2 = 2, summed."),
    ("qabf", compute_qabf(TANG, equal_is_one=False), True, (0.0, 1.0),
     "Xydeas-Petrovic Q^AB/F, zero-padded Sobel; where g_source = g_F the strength ratio is g_F (kept)."),
    ("nabf", compute_nabf(TANG, tang_order=True), False, (0.0, 1.0),
     "Shreyamsha Kumar's Nabf as the toolbox calls it, analysis_nabf(IR, VI, F): the IR image plays the "
     "fused image (argument-order bug, kept)."),
    ("ssim", compute_ssim(TANG, dynamic_range=1.0), True, (-1.0, 1.0),
     "(SSIM(F,IR)+SSIM(F,VI))/2, MATLAB ssim defaults on 0-255 doubles: Gaussian 11x11 sigma 1.5, replicate "
     "padding, DynamicRange 1 so C1 = 1e-4, C2 = 9e-4 (kept)."),
    ("mef_ms_ssim", compute_mef_ms_ssim(TANG), True, (0.0, 1.0),
     "Tang's 'MS_SSIM': MEF-MS-SSIM (Ma, Zeng, Wang 2015) of F against the stack (IR, VI), 3 scales, "
     "K = 0.03 - not Wang's MS-SSIM."),
]

for _name, _compute, _hib, _range, _desc in _METRICS:
    register(Metric(_name, CONVENTION, _compute, _hib, _range, "1", "image", f"{_TANG}. {_desc}"))
