"""Pixel-domain building blocks shared by conventions: float64, batched over ``M×H×W`` planes.

Everything here works on float64 planes holding 0–255 values (one plane per frame, or per frame and channel)
and returns one value (or map) per plane. The conventions decide which planes (grey, per channel), how the two
sources are aggregated, and which quirks apply; see ``specs/metrics.md``.

- :func:`gaussian_window`, :func:`correlate_valid`, :func:`correlate_same`: separable filtering.
- :func:`vifp_reference`, :func:`vifp_terms`: Sheikh–Bovik pixel-domain VIFp (LIVE ``vifp_mscale``), with
  the source (reference) side split off so it can be memoised.
- :func:`mutual_information`: exact contingency-table MI in nats (what ``sklearn.metrics.mutual_info_score``
  gives on integer-valued images), by a batched 256×256 ``bincount``.
- :func:`sobel_strength_angle`, :func:`qabf_edge_preservation`, :func:`qabf_combine`: the Xydeas–Petrović
  Qabf of the VIFB/Tang/CDDFuse/VF-Bench lineage (zero-padded Sobel, ``atan``, the ``g_A = g_F`` branch).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------- filtering


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """1-D taps whose outer product is MATLAB ``fspecial('gaussian', size, sigma)`` (float64, sums to 1).

    ``fspecial`` zeroes taps below ``eps·max`` of the 2-D kernel; that never happens for the windows used here
    (checked), so the 2-D kernel is exactly separable.
    """
    half = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - half
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    if g.min() ** 2 < EPS:  # the 2-D corner tap would be cut by fspecial: not separable any more
        raise ValueError(f"gaussian_window({size}, {sigma}): fspecial would truncate taps")
    return g / g.sum()


def _planes(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def correlate_same(x: np.ndarray, taps: np.ndarray, border: int = cv2.BORDER_REFLECT_101) -> np.ndarray:
    """Separable correlation of every ``H×W`` plane of ``x`` (``M×H×W``) with ``taps ⊗ taps``, same size."""
    x = _planes(x)
    k = np.asarray(taps, dtype=np.float64)
    out = np.empty_like(x)
    for i in range(len(x)):
        out[i] = cv2.sepFilter2D(x[i], cv2.CV_64F, k, k, borderType=border)
    return out


def correlate_valid(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """'valid' separable correlation (no padding): ``M×(H−n+1)×(W−n+1)``; = ``scipy.signal.convolve2d``
    'valid' with the 2-D kernel up to rounding (the kernel is symmetric, so convolution = correlation)."""
    r = len(taps) // 2
    h, w = x.shape[-2:]
    if h < len(taps) or w < len(taps):
        return np.zeros((len(x), max(h - 2 * r, 0), max(w - 2 * r, 0)))
    return correlate_same(x, taps, border=cv2.BORDER_CONSTANT)[:, r:h - r, r:w - r]


# --------------------------------------------------------------------------------------------- VIFp

VIF_EPS = 1e-10
VIF_SIGMA_NSQ = 2.0  # visual noise variance on 0–255 data (LIVE vifp_mscale)
VIF_SIZES = (17, 9, 5, 3)  # N = 2^(5−s)+1 for scales s = 1..4, Gaussian σ = N/5


def vifp_reference(ref: np.ndarray, sigma_nsq: float = VIF_SIGMA_NSQ) -> list[tuple]:
    """Source-only VIFp quantities per scale: (reference plane, μ₁, σ₁² as used, Σ log10(1+σ₁²/σn²) per plane).

    ``ref`` is ``M×H×W`` float64. Memoise the result per source; :func:`vifp_terms` takes it.
    """
    stats = []
    ref = _planes(ref)
    for scale, n in enumerate(VIF_SIZES):
        taps = gaussian_window(n, n / 5.0)
        if scale > 0:
            ref = np.ascontiguousarray(correlate_valid(ref, taps)[:, ::2, ::2])
        mu1 = correlate_valid(ref, taps)
        s1 = correlate_valid(ref * ref, taps) - mu1 * mu1
        s1[s1 < 0] = 0.0
        den = np.log10(1.0 + np.where(s1 < VIF_EPS, 0.0, s1) / sigma_nsq).sum(axis=(1, 2))
        stats.append((ref, mu1, s1, den))
    return stats


def vifp_terms(reference: list[tuple], dist: np.ndarray, sigma_nsq: float = VIF_SIGMA_NSQ):
    """VIFp numerator and denominator per plane (``M`` each), summed over the 4 scales; VIFp = num/den.

    ``reference`` from :func:`vifp_reference` (the source), ``dist`` the fused planes ``M×H×W``. The clipping
    rules are LIVE's: g = 0 where σ₁² < 1e-10 (then σ₁² = 0, σv² = σ₂²) or σ₂² < 1e-10 (σv² = 0) or g < 0
    (σv² = σ₂²); σv² ≥ 1e-10.
    """
    dist = _planes(dist)
    num = np.zeros(len(dist))
    den = np.zeros(len(dist))
    for scale, (n, (ref, mu1, s1, den_s)) in enumerate(zip(VIF_SIZES, reference, strict=True)):
        taps = gaussian_window(n, n / 5.0)
        if scale > 0:
            dist = np.ascontiguousarray(correlate_valid(dist, taps)[:, ::2, ::2])
        mu2 = correlate_valid(dist, taps)
        s2 = correlate_valid(dist * dist, taps) - mu2 * mu2
        s12 = correlate_valid(ref * dist, taps) - mu1 * mu2
        s2[s2 < 0] = 0.0
        g = s12 / (s1 + VIF_EPS)
        sv = s2 - g * s12
        low1 = s1 < VIF_EPS
        g[low1] = 0.0
        sv[low1] = s2[low1]
        s1u = np.where(low1, 0.0, s1)
        low2 = s2 < VIF_EPS
        g[low2] = 0.0
        sv[low2] = 0.0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0.0
        sv[sv <= VIF_EPS] = VIF_EPS
        num += np.log10(1.0 + g * g * s1u / (sv + sigma_nsq)).sum(axis=(1, 2))
        den += den_s
    return num, den


# --------------------------------------------------------------------------------------------- MI


def joint_histograms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """256×256 joint histograms (``M×256×256`` int64) of integer-valued 0–255 planes ``a``, ``b`` (``M×H×W``)."""
    m = len(a)
    ia = np.asarray(a).reshape(m, -1).astype(np.int64)
    ib = np.asarray(b).reshape(m, -1).astype(np.int64)
    if ia.size and (ia.min() < 0 or ia.max() > 255 or ib.min() < 0 or ib.max() > 255):
        raise ValueError("joint_histograms: values outside 0–255")
    index = (np.arange(m, dtype=np.int64)[:, None] << 16) + (ia << 8) + ib
    return np.bincount(index.ravel(), minlength=m << 16).reshape(m, 256, 256)


def mutual_information(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MI(a; b) in nats per plane from the exact contingency table of the (integer) values.

    Equals ``sklearn.metrics.mutual_info_score`` on integer-valued images (0 when either is constant; terms
    below machine epsilon dropped; result clipped at 0 as sklearn does).
    """
    joint = joint_histograms(a, b).astype(np.float64)
    out = np.empty(len(joint))
    for i, h in enumerate(joint):
        pa = h.sum(axis=1)
        pb = h.sum(axis=0)
        if np.count_nonzero(pa) <= 1 or np.count_nonzero(pb) <= 1:
            out[i] = 0.0
            continue
        total = h.sum()
        ia, ib = np.nonzero(h)
        n = h[ia, ib]
        p = n / total
        terms = p * (np.log(n) - math.log(total)) + p * (math.log(total) * 2 - np.log(pa[ia]) - np.log(pb[ib]))
        terms[np.abs(terms) < EPS] = 0.0
        out[i] = max(terms.sum(), 0.0)
    return out


def entropy_bits(planes: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of the 256-bin histogram of integer-valued 0–255 planes."""
    m = len(planes)
    v = np.asarray(planes).reshape(m, -1).astype(np.int64)
    counts = np.bincount(((np.arange(m, dtype=np.int64)[:, None] << 8) + v).ravel(), minlength=m << 8)
    p = counts.reshape(m, 256) / v.shape[1]
    return -(p * np.log2(p + (p == 0))).sum(axis=1)


# --------------------------------------------------------------------------------------------- Qabf

QABF_GAMMA_G, QABF_KAPPA_G, QABF_SIGMA_G = 0.9994, -15.0, 0.5
QABF_GAMMA_A, QABF_KAPPA_A, QABF_SIGMA_A = 0.9879, -22.0, 0.8


def sobel_strength_angle(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edge strength g = √(sx²+sy²) and orientation α = atan(sy/sx) (π/2 where sx = 0) per plane.

    sx, sy: ``conv2(x, [-1 0 1; -2 0 2; -1 0 1], 'same')`` and ``conv2(x, [1 2 1; 0 0 0; -1 -2 -1], 'same')``,
    zero padding (true convolution; correlation flips both signs and gives the same g and α).
    """
    p = np.pad(_planes(planes), ((0, 0), (1, 1), (1, 1)))
    left = p[:, :-2, :-2] + 2 * p[:, 1:-1, :-2] + p[:, 2:, :-2]
    right = p[:, :-2, 2:] + 2 * p[:, 1:-1, 2:] + p[:, 2:, 2:]
    top = p[:, :-2, :-2] + 2 * p[:, :-2, 1:-1] + p[:, :-2, 2:]
    bottom = p[:, 2:, :-2] + 2 * p[:, 2:, 1:-1] + p[:, 2:, 2:]
    sx = left - right
    sy = bottom - top
    g = np.sqrt(sx * sx + sy * sy)
    nz = sx != 0
    angle = np.full(sx.shape, math.pi / 2)
    angle[nz] = np.arctan(sy[nz] / sx[nz])
    return g, angle


def qabf_edge_preservation(g_src, a_src, g_fused, a_fused) -> np.ndarray:
    """Per-pixel Q^{XF} = Q_g·Q_α with the lineage's relative strength: g_F/g_X, g_X/g_F, or **g_F** where
    g_X = g_F (the original code's bug; 1 would be correct)."""
    rel = np.array(g_fused, dtype=np.float64, copy=True)  # the g_X == g_F branch
    above = g_src > g_fused
    below = g_src < g_fused
    rel[above] = g_fused[above] / g_src[above]
    rel[below] = g_src[below] / g_fused[below]
    orient = 1 - np.abs(a_src - a_fused) / (math.pi / 2)
    q_g = QABF_GAMMA_G / (1 + np.exp(QABF_KAPPA_G * (rel - QABF_SIGMA_G)))
    q_a = QABF_GAMMA_A / (1 + np.exp(QABF_KAPPA_A * (orient - QABF_SIGMA_A)))
    return q_g * q_a


def qabf_combine(sobel_a, sobel_b, sobel_f) -> np.ndarray:
    """Qabf = Σ(Q^{AF} g_A + Q^{BF} g_B) / Σ(g_A + g_B) per plane (weights w = g, L = 1).

    Each argument is a ``(g, α)`` pair from :func:`sobel_strength_angle`. NaN when both sources are flat.
    """
    (ga, aa), (gb, ab), (gf, af) = sobel_a, sobel_b, sobel_f
    q_af = qabf_edge_preservation(ga, aa, gf, af)
    q_bf = qabf_edge_preservation(gb, ab, gf, af)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (q_af * ga + q_bf * gb).sum(axis=(1, 2)) / (ga + gb).sum(axis=(1, 2))
