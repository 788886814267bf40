"""``tang``: Linfeng Tang's MATLAB toolbox (``Evaluation-for-Image-Fusion@0e87153b``, ``analysis_Reference.m``).

Reproduces the toolbox as it runs, quirks and bugs included (``metrics/CONVENTIONS.md``), and is
checked against the toolbox's own values under GNU Octave (``tests/test_metrics_tang.py``). The leaderboard's ``m3svd``
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
FMI_pixel     fmi_pixel      fast-FMI (Haghighat & Razian 2014) over 3×3 windows of MATLAB ``edge()`` maps:
                             ``analysis_fmi``'s default feature is 'edge' although the name says pixel
FMI_dct       fmi_dct        fast-FMI over 3×3 windows of ``dct2`` of the whole frame
FMI_w         fmi_w          fast-FMI over 3×3 windows of one-level ``dwt2(·, 'dmey')`` tiled
                             ``[cA cH; cV cD]`` and min–max rescaled to [0, 1] (``rerange``)
============  =============  ====================================================================

(FMI rows are not in the golden file: no reference values; ``edge()`` is ported from MATLAB's code, and
``dwt2`` is PyWavelets' with mode ``symmetric``, MATLAB's default ``sym`` extension.)

Shared building blocks (Gaussian filtering, SSIM, VIFp, histograms/MI, Sobel/Qabf, corr2, SF) come from
:mod:`m3svd.metrics.pixel`; the Tang-only helpers here (``matlab_rgb2gray``, ``box_sum_valid``,
``matlab_gradient_ag``, ``nabf_maps``/``nabf_score``, ``mef_ms_ssim_reference``/``mef_ms_ssim``) are reused by
the ``m3svd`` convention.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import cv2
import numpy as np
from scipy import fft as sfft

from m3svd.metrics import register
from m3svd.metrics.base import Metric, MetricError, Sources, fused_memo
from m3svd.metrics.pixel import (
    centred,
    correlate_valid,
    entropy_bits,
    entropy_mi,
    fmi_normalise,
    fmi_values,
    fmi_windows,
    gaussian_window,
    halve_2x2,
    matlab_sobel_edges,
    pearson,
    qabf_combine,
    sobel_levels,
    sobel_strength_angle,
    spatial_frequency,
    ssim_map,
    ssim_moments,
    vifp_distorted,
    vifp_reference,
    vifp_terms,
)

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


def floats(x: np.ndarray, unit: float) -> np.ndarray:
    """The doubles a toolbox function is fed: 0–255 (``unit`` 1) or ``im2double(x)`` = x/255 (``unit`` 255, the
    2022 toolbox), divided exactly as MATLAB's ``im2double`` divides."""
    return f64(x) if unit == 1 else f64(x) / unit


# ---------------------------------------------------------------------------------------------------------
# box sums (Gaussian filtering, histograms and entropies come from m3svd.metrics.pixel)
def box_sum_valid(x: np.ndarray, w: int) -> np.ndarray:
    """Sums over every w×w window ('valid'), by an integral image: exact for integer or dyadic data."""
    c = np.zeros((x.shape[0] + 1, x.shape[1] + 1))
    c[1:, 1:] = x.cumsum(0).cumsum(1)
    return c[w:, w:] - c[:-w, w:] - c[w:, :-w] + c[:-w, :-w]


# ---------------------------------------------------------------------------------------------------------
# simple statistics (batched over N)
def matlab_gradient_ag(f: np.ndarray) -> np.ndarray:
    """Σ over all pixels of √((gx²+gy²)/2), MATLAB ``gradient`` (central inside, one-sided at borders)."""
    gy, gx = np.gradient(f, axis=(1, 2))
    return np.sqrt((gx * gx + gy * gy) / 2).sum(axis=(1, 2))


def mse01(source: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """Per-frame mean squared error of two 0–255 float64 batches rescaled to [0, 1]."""
    d = fused / 255 - source / 255
    return (d * d).mean(axis=(1, 2))


# ---------------------------------------------------------------------------------------------------------
# 3×3 filtering (Qabf, Xydeas–Petrović analysis_Qabf.m, comes from m3svd.metrics.pixel)
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


# ---------------------------------------------------------------------------------------------------------
# Nabf (Shreyamsha Kumar; analysis_nabf.m, sobel_fn.m, per_extn_im_fn.m)
_NABF_V = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]) / 8
_NABF_H = np.array([[-1.0, -2, -1], [0, 0, 0], [1, 2, 1]]) / 8


def nabf_maps(x: np.ndarray) -> tuple:
    """Edge strength g = √(gh² + gv²) (kernels already /8: tie-exact), the two responses and, for ``uint8`` input,
    n = 64 (gh² + gv²) as int32: ``(g, gv, gh, n)`` (n ``None`` otherwise). :func:`nabf_score` takes
    α = atan(gv/gh) (0 where both are 0) only where it needs it, and the weights from a table by n.

    ``uint8`` input takes OpenCV's exact int16 Sobel, then /8 (exact): the same doubles as the shifted float64
    sums of :func:`_correlate3` (all terms are multiples of 1/8; zeros +0.0 in both)."""
    if x.dtype == np.uint8:
        gv, gh = sobel_levels(x, cv2.BORDER_REFLECT_101)  # mirror without edge repetition, as np.pad "reflect"
        sq = gv * gv
        sq += gh * gh  # 64 (gh² + gv²) of the /8 responses below: integers, exact
        n = sq.astype(np.int32)
        sq /= 64  # exactly gh² + gv² of the /8 responses, so the same g as computing it from them
        gv /= 8
        gh /= 8
        return np.sqrt(sq, out=sq), gv, gh, n
    gv = _correlate3(x, _NABF_V, "reflect")
    gh = _correlate3(x, _NABF_H, "reflect")
    return np.sqrt(gh * gh + gv * gv), gv, gh, None


def nabf_strength_angle(gv: np.ndarray, gh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``analysis_nabf``'s g = √(gh² + gv²) and α = atan(gv/gh), 0 where both responses are exactly 0."""
    g = np.sqrt(gh * gh + gv * gv)
    return g, _nabf_angle(gv, gh)


def _nabf_angle(gv: np.ndarray, gh: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((gv == 0) & (gh == 0), 0.0, np.arctan(gv / gh))


def _nabf_q(gs, as_, gf, af) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        gr = np.where((gs == 0) | (gf == 0), 0.0, np.where(gs > gf, gf / gs, gs / gf))
    ar = np.abs(np.abs(as_ - af) - np.pi / 2) * 2 / np.pi
    qg = 0.9999 / (1 + np.exp(-19 * (gr - 0.5)))
    qa = 0.9995 / (1 + np.exp(-22 * (ar - 0.5)))
    return np.sqrt(qg * qa)


def _nabf_weight(g: np.ndarray) -> np.ndarray:
    """g^1.5 where g ≥ 2, else 0.001 (the power only where it is used)."""
    w = np.full(g.shape, 0.001)
    strong = g >= 2
    w[strong] = g[strong] ** 1.5
    return w


@functools.cache
def _nabf_weight_table() -> np.ndarray:
    """:func:`_nabf_weight` of g = √(n/64) for every n = 64 (gh² + gv²) an 8-bit Sobel can give (16 MB, once):
    n/64 is exactly gh² + gv², so each entry is the weight of that pixel, bit for bit."""
    return _nabf_weight(np.sqrt(np.arange(2 * 1020**2 + 1) / 64))


def _nabf_weights(maps: tuple) -> np.ndarray:
    if len(maps) == 4 and maps[3] is not None:
        return _nabf_weight_table().take(maps[3])
    return _nabf_weight(maps[0])


def _nabf_at(maps: tuple, where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(g, α) at the pixels ``where`` of :func:`nabf_maps` ``(g, gv, gh, n)`` or of a ``(g, α)`` pair."""
    if len(maps) == 4:
        g, gv, gh, _ = maps
        return g[where], _nabf_angle(gv[where], gh[where])
    return maps[0][where], maps[1][where]


def nabf_score(fused_maps, a_maps, b_maps) -> float:
    """Σ n·[(1−Q^AF)w_A + (1−Q^BF)w_B]/Σ(w_A+w_B), n = 1 where g_F > g_A and g_F > g_B (lower is better).

    Maps as :func:`nabf_maps` or ``(g, α)`` pairs. Q is evaluated only where n = 1 (elementwise, so the same
    values as on the whole frame) and summed over the whole frame with zeros elsewhere, as before."""
    gf, ga, gb = fused_maps[0], a_maps[0], b_maps[0]
    wa, wb = _nabf_weights(a_maps), _nabf_weights(b_maps)
    n = (gf > ga) & (gf > gb)
    (gf_n, af_n), (ga_n, aa_n), (gb_n, ab_n) = (_nabf_at(m, n) for m in (fused_maps, a_maps, b_maps))
    terms = np.zeros(gf.shape)
    terms[n] = (1 - _nabf_q(ga_n, aa_n, gf_n, af_n)) * wa[n] + (1 - _nabf_q(gb_n, ab_n, gf_n, af_n)) * wb[n]
    return float(np.sum(terms) / np.sum(wa + wb))


# ---------------------------------------------------------------------------------------------------------
# SSIM (MATLAB ``ssim`` defaults: Gaussian σ 1.5 on 11×11, replicate padding, same-size map)
SSIM_KERNEL = gaussian_window(11, 1.5)


# ---------------------------------------------------------------------------------------------------------
# MEF-MS-SSIM (Ma, Zeng, Wang 2015; analysis_ms_ssim.m), vectorised
MEF_K = 0.03
MEF_WEIGHTS = np.array([0.0448, 0.2856, 0.3001]) / (0.0448 + 0.2856 + 0.3001)
_MEF_W = 11
_MEF_EPS = np.finfo(np.float64).eps


def _gauss_valid(x: np.ndarray) -> np.ndarray:
    return correlate_valid(x, SSIM_KERNEL)


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


def mef_ms_ssim_reference(src1: np.ndarray, src2: np.ndarray, levels: int = len(MEF_WEIGHTS)) -> list[dict]:
    """Source-only part of MEF-MS-SSIM for two 2-D 0–255 float64 sources, the first ``levels`` scales."""
    x1, x2 = src1 - 128.0, src2 - 128.0
    scales = []
    for level in range(levels):
        if level:
            x1, x2 = halve_2x2(x1), halve_2x2(x2)
        scales.append(_mef_scale_reference(x1, x2))
    return scales


def mef_ms_ssim(reference: list[dict], fused: np.ndarray) -> float:
    """Π_l Q_l^{w_l}, Q_l = mean of (2σ_rf + C)/(σ_r² + σ_f² + C) over 'valid' 11×11 windows, C = (0.03·255)²."""
    qs = mef_ssim_scales(reference, fused)
    with np.errstate(invalid="ignore"):
        return float(np.prod(np.power(np.array(qs), MEF_WEIGHTS)))


def mef_ssim_scales(reference: list[dict], fused: np.ndarray) -> list[float]:
    """Q_l of every scale in ``reference``: Q_0 alone is ``mef_ssim`` (the 2022 toolbox's "SSIM")."""
    c = (MEF_K * 255) ** 2
    f = fused - 128.0
    qs = []
    for level, ref in enumerate(reference):
        if level:
            f = halve_2x2(f)
        gf = _gauss_valid(f)
        sigma_f = _gauss_valid(f * f) - gf * gf
        cov = ref["b1"] * (_gauss_valid(ref["x1"] * f) - ref["g1"] * gf)
        cov += ref["b2"] * (_gauss_valid(ref["x2"] * f) - ref["g2"] * gf)
        qs.append(float(np.mean((2 * cov + c) / (ref["sigma_r"] + sigma_f + c))))
    return qs


# ---------------------------------------------------------------------------------------------------------
# metric builders, shared with the ``m3svd`` convention
def _fused(reader: Reader, fused: np.ndarray) -> np.ndarray:
    """The fused frames as the convention reads them, once per frame for a whole metric set."""
    return fused_memo(fused, (reader.convention, "grey"), lambda: reader.grey(fused))


def _source_pairs(reader: Reader, sources: Sources, name: str, fn, unit: float = 1) -> list:
    """``[(fn(IR_i), fn(VI_i))]`` over the batch, memoised per convention (float64, :func:`floats` of ``unit``)."""

    def compute():
        return [(fn(floats(a, unit)), fn(floats(b, unit))) for a, b in zip(*reader.sources(sources), strict=True)]

    return reader.memo(sources, name, compute)


def compute_en(reader: Reader):
    def compute(sources: Sources, fused: np.ndarray) -> np.ndarray:
        return entropy_bits(_fused(reader, fused))

    return compute


def compute_sd(reader: Reader):
    def compute(sources, fused):
        return f64(_fused(reader, fused)).std(axis=(1, 2))

    return compute


def compute_sf(reader: Reader, unit: float = 1):
    def compute(sources, fused):
        return spatial_frequency(floats(_fused(reader, fused), unit))

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
        h_ir, h_vi = reader.memo(sources, "entropy", lambda: (entropy_bits(ir), entropy_bits(vi)))
        f = _fused(reader, fused)
        h_f = entropy_bits(f)
        return (entropy_mi(f, ir, np.log2, saturate, h_f, h_ir)
                + entropy_mi(f, vi, np.log2, saturate, h_f, h_vi))  # H(S) + H(F) − H(F, S), bits

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


def _source_floats(reader: Reader, sources: Sources, unit: float):
    """Each source as :func:`floats` of ``unit``, once per :class:`Sources`."""
    return reader.memo(sources, ("floats", unit), lambda: tuple(floats(x, unit) for x in reader.sources(sources)))


def _centred_sources(reader: Reader, sources: Sources, unit: float):
    """Each source's :func:`centred` planes, once per :class:`Sources` (CC and SCD correlate against them)."""
    return reader.memo(sources, ("centred", unit),
                       lambda: tuple(centred(x) for x in _source_floats(reader, sources, unit)))


def compute_cc(reader: Reader, unit: float = 1):
    def compute(sources, fused):
        c_ir, c_vi = _centred_sources(reader, sources, unit)
        f = centred(floats(_fused(reader, fused), unit))
        return (pearson(c_ir, f) + pearson(c_vi, f)) / 2

    return compute


def compute_scd(reader: Reader, unit: float = 1):
    def compute(sources, fused):
        a, b = _source_floats(reader, sources, unit)
        c_a, c_b = _centred_sources(reader, sources, unit)
        f = floats(_fused(reader, fused), unit)
        return pearson(f - b, c_a) + pearson(f - a, c_b)

    return compute


def compute_vif(reader: Reader, uint8_products: bool = False):
    """``uint8_products``: the 2022 toolbox's ``vifp_mscale(uint8, uint8)``, first-scale products saturated."""
    sat = {"uint8_products": uint8_products}

    def compute(sources, fused):
        ir, vi = reader.sources(sources)
        refs = reader.memo(sources, "vif_reference",
                           lambda: (vifp_reference(f64(ir), **sat), vifp_reference(f64(vi), **sat)))
        pyramid = vifp_distorted(f64(_fused(reader, fused)), **sat)
        total = 0.0
        for ref in refs:
            num, den = vifp_terms(ref, pyramid, **sat)
            with np.errstate(invalid="ignore", divide="ignore"):
                total = total + num / den  # NaN if den = 0 (a flat source)
        return total

    return compute


def compute_qabf(reader: Reader, equal_is_one: bool, unit: float = 1, maps=sobel_strength_angle):
    """``maps``: (g, α) of a float64 batch; the 2022 toolbox needs its own (Octave's ``conv2`` order on x/255)."""

    # sobel_strength_angle takes the uint8 grey itself (its exact integer path, same values as on float64)
    prepare = (lambda x: x) if unit == 1 and maps is sobel_strength_angle else (lambda x: floats(x, unit))

    def compute(sources, fused):
        ir, vi = reader.sources(sources)
        m_ir, m_vi = reader.memo(sources, "qabf_maps", lambda: (maps(prepare(ir)), maps(prepare(vi))))
        return qabf_combine(m_ir, m_vi, maps(prepare(_fused(reader, fused))), equal_is_one)

    return compute


def compute_nabf(reader: Reader, tang_order: bool, unit: float = 1, maps=nabf_maps):
    """``tang_order``: ``analysis_nabf(IR, VI, F)`` — IR as the fused image, (VI, F) as sources. ``maps``: (g, α)
    of one 2-D float64 frame (:func:`nabf_maps`; the 2022 toolbox's [0, 1] data needs Octave's summation order)."""

    # nabf_maps takes the uint8 grey itself (its exact integer path)
    prepare = (lambda x: x) if unit == 1 and maps is nabf_maps else (lambda x: floats(x, unit))

    def compute(sources, fused):
        source_maps = reader.memo(sources, "nabf_maps", lambda: [
            (maps(prepare(a)), maps(prepare(b))) for a, b in zip(*reader.sources(sources), strict=True)])
        f = prepare(_fused(reader, fused))
        out = []
        for (m_ir, m_vi), x in zip(source_maps, f, strict=True):
            m_f = maps(x)
            out.append(nabf_score(m_ir, m_vi, m_f) if tang_order else nabf_score(m_f, m_ir, m_vi))
        return np.array(out)

    return compute


def compute_ssim(reader: Reader, dynamic_range: float):
    c1, c2 = (0.01 * dynamic_range) ** 2, (0.03 * dynamic_range) ** 2
    k, border = SSIM_KERNEL, cv2.BORDER_REPLICATE

    def compute(sources, fused):
        ir, vi = (f64(s) for s in reader.sources(sources))
        ma, mb = reader.memo(sources, "ssim_moments",
                             lambda: (ssim_moments(ir, k, border=border), ssim_moments(vi, k, border=border)))
        x = f64(_fused(reader, fused))
        mf = ssim_moments(x, k, border=border)
        return (0.5 * ssim_map(x, ir, mf, ma, k, c1, c2, border=border).mean(axis=(1, 2))
                + 0.5 * ssim_map(x, vi, mf, mb, k, c1, c2, border=border).mean(axis=(1, 2)))

    return compute


def compute_mef_ms_ssim(reader: Reader, levels: int = len(MEF_WEIGHTS)):
    """MEF-MS-SSIM over 3 scales, or with ``levels=1`` the single-scale ``mef_ssim`` (the 2022 toolbox's SSIM)."""
    least = _MEF_W * 2 ** (levels - 1)
    name = "mef_ms_ssim" if levels > 1 else "ssim"

    def compute(sources, fused):
        if min(fused.shape[1:3]) < least:  # the toolbox returns -Inf here
            raise MetricError(f"{name}@{reader.convention}: frames {fused.shape[1]}×{fused.shape[2]} are "
                              f"too small for {levels} scale(s) of 11×11 windows (need ≥ {least} px on the "
                              f"shorter side)")
        ir, vi = reader.sources(sources)
        refs = reader.memo(sources, f"mef_ssim_reference_{levels}", lambda: [
            mef_ms_ssim_reference(f64(a), f64(b), levels) for a, b in zip(ir, vi, strict=True)])
        f = f64(_fused(reader, fused))
        if levels == 1:
            return np.array([mef_ssim_scales(r, x)[0] for r, x in zip(refs, f, strict=True)])
        return np.array([mef_ms_ssim(r, x) for r, x in zip(refs, f, strict=True)])

    return compute


# ---------------------------------------------------------------------------------------------------------
# FMI (Haghighat & Razian's fast-FMI, ``analysis_fmi.m``: 3×3 'valid' windows, a = IR, b = VI)
def fmi_feature(kind: str) -> Callable[[np.ndarray], np.ndarray]:
    """The feature image of one 2-D 0–255 float64 frame: ``"none"`` (pixels), ``"edge"`` (MATLAB ``edge()``, the
    toolbox default), ``"dct"`` (``dct2``, orthonormal DCT-II of the whole frame), ``"wavelet"``
    (:func:`dmey_feature`)."""
    return {"none": lambda x: x, "edge": matlab_sobel_edges,
            "dct": lambda x: sfft.dctn(x, type=2, norm="ortho"), "wavelet": dmey_feature}[kind]


def dmey_feature(x: np.ndarray) -> np.ndarray:
    """``fmi.m``'s 'wavelet' feature: one-level discrete-Meyer ``dwt2`` (MATLAB's default half-point symmetric
    extension), the four sub-bands tiled ``[cA cH; cV cD]``, min–max rescaled to [0, 1] (all ones if flat)."""
    import pywt

    ca, (ch, cv, cd) = pywt.dwt2(x, "dmey", mode="symmetric")
    tiled = np.block([[ca, ch], [cv, cd]])
    lo, hi = tiled.min(), tiled.max()
    return np.ones_like(tiled) if hi == lo else (tiled - lo) / (hi - lo)


def fmi_score(a: np.ndarray, b: np.ndarray, f: np.ndarray, reuse_normalised: bool) -> float:
    """mean over windows of (fmi_AF + fmi_BF)/2 from :func:`m3svd.metrics.pixel.fmi_windows` rows.

    ``reuse_normalised`` is ``fmi.m``'s quirk: when the A and F windows differ, F's window is min–max normalised in
    place before the B test ``if bSub == fSub``, so an F window equal to B's (e.g. both edge-free) scores 0, not 1.
    """
    eq_af = (a == f).all(axis=1)
    if reuse_normalised:
        eq_bf = (b == f).all(axis=1)
        rest = ~eq_af
        eq_bf[rest] = (b[rest] == fmi_normalise(f[rest])).all(axis=1)
    else:
        eq_bf = (b == f).all(axis=1)
    return float(np.mean((fmi_values(a, f, eq_af) + fmi_values(b, f, eq_bf)) / 2))


def compute_fmi(reader: Reader, kind: str, reuse_normalised: bool, unit: float = 1):
    feature = fmi_feature(kind)

    def windows(x: np.ndarray) -> np.ndarray:
        return fmi_windows(feature(x))

    def compute(sources, fused):
        if min(fused.shape[1:3]) < 3:
            raise MetricError(f"fmi@{reader.convention}: frames {fused.shape[1]}×{fused.shape[2]} hold no 3×3 window")
        pairs = _source_pairs(reader, sources, f"fmi_{kind}_windows", windows, unit)
        f = floats(_fused(reader, fused), unit)
        return np.array([fmi_score(a, b, windows(x), reuse_normalised) for (a, b), x in zip(pairs, f, strict=True)])

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
    ("fmi_pixel", compute_fmi(TANG, "edge", reuse_normalised=True), True, (0.0, 1.0),
     "Tang's 'FMI_pixel': fast-FMI (Haghighat) of IR and VI against F over 3x3 windows, on MATLAB edge() maps - "
     "analysis_fmi's default feature is 'edge', not pixels (kept); F's window is normalised before the VI equality "
     "test (kept). edge() is ported from MATLAB's code, not checked against MATLAB output."),
    ("fmi_dct", compute_fmi(TANG, "dct", reuse_normalised=True), True, (0.0, 1.0),
     "Tang's 'FMI_dct': fast-FMI over 3x3 windows of the whole-frame dct2 coefficients; F's window is "
     "normalised before the VI equality test (kept)."),
    ("fmi_w", compute_fmi(TANG, "wavelet", reuse_normalised=True), True, (0.0, 1.0),
     "Tang's 'FMI_w': fast-FMI over 3x3 windows of the one-level discrete Meyer dwt2 sub-bands tiled "
     "[cA cH; cV cD] and rescaled to [0, 1]; F's window is normalised before the VI equality test (kept)."),
]

for _name, _compute, _hib, _range, _desc in _METRICS:
    register(Metric(_name, CONVENTION, _compute, _hib, _range, "1", "image", f"{_TANG}. {_desc}",
                    # no run of the toolbox's FMI is stored: the fmi_* are checked against fmi.m read loop by loop
                    reference=None if _name.startswith("fmi_") else
                    "Tang's toolbox run under GNU Octave; tests/test_metrics_tang.py",
                    aliases=("MS_SSIM",) if _name == "mef_ms_ssim" else ()))
