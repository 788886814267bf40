"""The ``vifb`` convention: VIFB's 13 MATLAB metrics (``xingchenzhang/VIFB@22b2ea9``), reproduced to its 5 digits.

Conventions of the lineage (``specs/metrics.md`` §1–§3, golden README §1):

- VIFB calls ``metric(VI, IR, F)``; values are 0–255 doubles, never converted to grey.
- An RGB fused image is scored **per channel** k on (VI[..., k], IR — or IR[..., k] when it has 3 channels —,
  F[..., k]) and the three results are averaged (SF is the exception: one pass on the channels side by side).
- A grey fused image is scored in one pass. VIFB has no defined path for a grey F with an RGB VI (its code feeds
  the 3-D array to 2-D formulas), so the VI is converted with the toolkit's BT.601 grey
  (:func:`m3svd.data.frames.to_grey`) there.

Everything is vectorised over the batch ``N``; source-only quantities (histograms, Sobel maps, SSIM moments,
contrast maps, spectra) are kept in :meth:`Sources.memo` under keys ``("vifb", quantity, "vi"|"ir", plane)``.

Helpers that other conventions may share: :func:`sobel3`, :func:`round_half_away`, :func:`hist256`,
:func:`entropy_of_counts`, :func:`joint_mi`, :func:`fspecial_gaussian_1d`, :func:`filter_valid`,
:func:`ssim_map`, :func:`qabf_gradients`, :func:`qabf_pair`, :func:`normalize1`, :func:`freqspace_radius`,
:func:`block_sum`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy import fft as sfft

from m3svd.data.frames import to_grey
from m3svd.metrics import register
from m3svd.metrics.base import Metric, MetricError, Sources

CONVENTION = "vifb"
INF = math.inf

# --------------------------------------------------------------------------------------------------------------
# Shared numerical helpers (batch-first: arrays are N×H×W unless said otherwise)
# --------------------------------------------------------------------------------------------------------------


def round_half_away(x: np.ndarray) -> np.ndarray:
    """MATLAB ``round`` / ``int16()``: nearest integer, ties away from zero (``np.round`` ties to even)."""
    a = np.abs(x)
    r = np.floor(a)
    r += (a - r) >= 0.5  # a - floor(a) is exact, so the tie test is too
    return np.copysign(r, x, out=r)


def sobel3(x: np.ndarray, border: str) -> tuple[np.ndarray, np.ndarray]:
    """Correlation of N×H×W ``x`` with [-1 0 1; -2 0 2; -1 0 1] (``gx``) and its transpose (``gy``).

    ``border`` is ``"zero"`` (MATLAB ``conv2``/``filter2`` 'same') or ``"replicate"`` (``imfilter`` 'replicate').
    Convolution instead of correlation negates both outputs, which leaves magnitude and atan(gy/gx) unchanged.
    Exact for integer-valued input.
    """
    mode = {"zero": "constant", "replicate": "edge"}[border]
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode=mode)
    left, right = p[:, :, :-2], p[:, :, 2:]
    dx = right - left  # N×(H+2)×W
    gx = dx[:, :-2] + 2.0 * dx[:, 1:-1] + dx[:, 2:]
    up, down = p[:, :-2, :], p[:, 2:, :]
    dy = down - up  # N×H×(W+2)
    gy = dy[:, :, :-2] + 2.0 * dy[:, :, 1:-1] + dy[:, :, 2:]
    return gx, gy


def hist256(x: np.ndarray) -> np.ndarray:
    """Counts of integer levels 0..255 per frame: N×H×W integer-valued -> N×256."""
    n = len(x)
    idx = x.reshape(n, -1).astype(np.int64) + 256 * np.arange(n)[:, None]
    return np.bincount(idx.ravel(), minlength=256 * n).reshape(n, 256)


def entropy_of_counts(counts: np.ndarray, log=np.log) -> np.ndarray:
    """-Σ p log p over the non-zero bins of each row of ``counts`` (N×K); ``log`` picks the unit."""
    counts = counts.reshape(len(counts), -1).astype(np.float64)
    p = counts / counts.sum(axis=1, keepdims=True)
    logp = log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logp).sum(axis=1)


def joint_mi(a: np.ndarray, b: np.ndarray, levels: int = 256, ha: np.ndarray | None = None) -> np.ndarray:
    """Mutual information (nats) of integer label images ``a``, ``b`` (N×H×W, values 0..levels-1).

    H(a) + H(b) - H(a, b) from a levels×levels joint histogram; pass ``ha`` (N,) to reuse H(a).
    """
    n = len(a)
    idx = (a.reshape(n, -1).astype(np.int64) * levels + b.reshape(n, -1)
           + levels * levels * np.arange(n)[:, None])
    joint = np.bincount(idx.ravel(), minlength=levels * levels * n).reshape(n, levels, levels)
    if ha is None:
        ha = entropy_of_counts(joint.sum(axis=2))
    hb = entropy_of_counts(joint.sum(axis=1))
    return ha + hb - entropy_of_counts(joint)


def fspecial_gaussian_1d(size: int, sigma: float) -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', size, sigma)`` (outer(g, g) is the normalised 2-D kernel).

    fspecial zeroes taps below eps·max; that never removes a tap that survives in 1-D for the sizes used here,
    and the check is kept for the 2-D product (raises if it would).
    """
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x * x) / (2 * sigma * sigma))
    if g.min() ** 2 < np.finfo(float).eps * g.max() ** 2:
        raise ValueError(f"fspecial('gaussian', {size}, {sigma}) would zero corner taps; use the 2-D kernel")
    return g / g.sum()


def filter_sep(x: np.ndarray, kernel: np.ndarray, border: int) -> np.ndarray:
    """Separable correlation of each N×H×W frame with outer(kernel, kernel), same-size output (OpenCV, float64)."""
    k = np.ascontiguousarray(kernel, dtype=np.float64)
    out = np.empty(x.shape, dtype=np.float64)
    for i in range(len(x)):
        out[i] = cv2.sepFilter2D(np.ascontiguousarray(x[i], dtype=np.float64), cv2.CV_64F, k, k,
                                 borderType=border)
    return out


def filter_valid(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """MATLAB ``filter2(outer(kernel, kernel), x, 'valid')`` per frame (a 'same' filter cropped by the radius)."""
    r = len(kernel) // 2
    return filter_sep(x, kernel, cv2.BORDER_REFLECT)[:, r:x.shape[1] - r, r:x.shape[2] - r]


def ssim_moments(x: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Windowed mean and mean of squares ('valid'), the source-only part of SSIM."""
    return filter_valid(x, kernel), filter_valid(x * x, kernel)


def ssim_map(mu_a, aa, mu_b, bb, ab, c1: float, c2: float) -> np.ndarray:
    """Wang et al.'s SSIM map from windowed moments (E[a], E[a²], E[b], E[b²], E[ab])."""
    mu_ab = mu_a * mu_b
    mu_a2 = mu_a * mu_a
    mu_b2 = mu_b * mu_b
    num = ab - mu_ab  # σ_ab
    num *= 2
    num += c2
    t = 2 * mu_ab
    t += c1
    num *= t  # (2μ_aμ_b + C1)(2σ_ab + C2)
    var = aa - mu_a2
    var += bb
    var -= mu_b2
    var += c2
    mu_a2 += mu_b2
    mu_a2 += c1
    var *= mu_a2  # (μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)
    num /= var
    return num


def qabf_gradients(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Xydeas–Petrović edge strength g and orientation α: zero-padded Sobel, α = atan(sy/sx), π/2 where sx = 0.

    sx, sy are MATLAB ``conv2(x, h3, 'same')`` and ``conv2(x, h1, 'same')`` with h3 = [-1 0 1; -2 0 2; -1 0 1],
    h1 = [1 2 1; 0 0 0; -1 -2 -1]. True convolution negates h3 but not the row-flip of h1 relative to
    :func:`sobel3`, so sx = -gx and sy = gy; the sign matters because the sx = 0 pixels get +π/2.
    """
    gx, gy = sobel3(x, "zero")
    sx, sy = -gx, gy
    g = np.sqrt(sx * sx + sy * sy)
    zero = sx == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(zero, np.pi / 2, np.arctan(sy / np.where(zero, 1.0, sx)))
    return g, alpha


QABF = {"Tg": 0.9994, "kg": -15.0, "Dg": 0.5, "Ta": 0.9879, "ka": -22.0, "Da": 0.8}


def qabf_pair(g_s: np.ndarray, a_s: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Edge preservation Q^{SF} map, with the lineage's g_S = g_F branch (relative strength := g_F, not 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = np.where(g_s > g_f, g_f / g_s, np.where(g_s == g_f, g_f, g_s / g_f))
    orient = a_s - a_f
    np.abs(orient, out=orient)
    orient /= np.pi / 2
    np.subtract(1, orient, out=orient)
    c = QABF
    strength -= c["Dg"]
    strength *= c["kg"]
    np.exp(strength, out=strength)
    strength += 1
    orient -= c["Da"]
    orient *= c["ka"]
    np.exp(orient, out=orient)
    orient += 1
    strength *= orient
    np.divide(c["Tg"] * c["Ta"], strength, out=strength)
    return strength  # Tg/(1 + e^{kg(G - Dg)}) · Ta/(1 + e^{ka(A - Da)})


def normalize1(x: np.ndarray) -> np.ndarray:
    """Z. Liu's ``normalize1`` per frame: round(255·(x − min)/(max − min)); an all-zero frame is kept as is.

    A constant non-zero frame gives NaN (0/0), as in MATLAB.
    """
    x = np.asarray(x, dtype=np.float64)
    hi = x.max(axis=(1, 2), keepdims=True)
    lo = x.min(axis=(1, 2), keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = round_half_away((x - lo) / (hi - lo) * 255)
    keep = ((hi == 0) & (lo == 0)).reshape(-1)
    out[keep] = x[keep]
    return out


@lru_cache(maxsize=32)
def freqspace_radius(h: int, w: int, scale: float) -> np.ndarray:
    """r = √(u² + v²) on MATLAB ``freqspace([h w], 'meshgrid')`` with u ← (w/scale)·u, v ← (h/scale)·v,
    returned **ifftshifted** (zero frequency at [0, 0]) so that ``ifft2(fft2(I)·S(r))`` equals
    ``ifft2(ifftshift(fftshift(fft2(I)).*S))``."""
    fu = (np.arange(w) - w // 2) * (2 / w)
    fv = (np.arange(h) - h // 2) * (2 / h)
    u = (w / scale) * fu
    v = (h / scale) * fv
    r = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)
    r = np.fft.ifftshift(r)
    r.setflags(write=False)
    return r


def _half(s: np.ndarray) -> np.ndarray:
    """The rfft2 half of a (symmetric, ifftshifted) full-plane frequency response."""
    return s[:, : s.shape[1] // 2 + 1]


def _rfft2(x: np.ndarray) -> np.ndarray:
    return sfft.rfft2(x, axes=(-2, -1))


def _irfft2(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return sfft.irfft2(x, s=shape, axes=(-2, -1))


# --------------------------------------------------------------------------------------------------------------
# Planes: how VIFB pairs the channels of VI, IR and F
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plane:
    """One VIFB pass: uint8 N×H×W VI, IR and F planes, and the tags that name the source planes in the memo."""

    vi: np.ndarray
    ir: np.ndarray
    f: np.ndarray
    vi_tag: object
    ir_tag: object

    def src(self, sources: Sources, which: str, quantity: str, compute):
        """``compute(plane_of_source)`` once per (quantity, source, plane) for these sources."""
        image, tag = (self.vi, self.vi_tag) if which == "vi" else (self.ir, self.ir_tag)
        return sources.memo((CONVENTION, quantity, which, tag), lambda: compute(image))


def _grey_source(sources: Sources, which: str) -> np.ndarray:
    image = sources.vi if which == "vi" else sources.ir
    if image.ndim == 3:
        return image
    return sources.memo((CONVENTION, "grey", which), lambda: to_grey(image))


def planes(sources: Sources, fused: np.ndarray) -> list[Plane]:
    """VIFB's passes: 3 channel passes for RGB F (a grey source reused each time), one pass for grey F."""
    if fused.ndim == 3:
        return [Plane(_grey_source(sources, "vi"), _grey_source(sources, "ir"), fused, "grey", "grey")]
    out = []
    for k in range(3):
        vi, vi_tag = (sources.vi[..., k], k) if sources.vi.ndim == 4 else (sources.vi, "grey")
        ir, ir_tag = (sources.ir[..., k], k) if sources.ir.ndim == 4 else (sources.ir, "grey")
        out.append(Plane(vi, ir, fused[..., k], vi_tag, ir_tag))
    return out


def _f64(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64)


def _per_plane(fn):
    """A Metric.compute that averages ``fn(sources, plane)`` (N values) over VIFB's passes."""

    def compute(sources: Sources, fused: np.ndarray) -> np.ndarray:
        values = [fn(sources, p) for p in planes(sources, fused)]
        return np.mean(values, axis=0)

    compute.__name__ = fn.__name__
    compute.__doc__ = fn.__doc__
    return compute


def _need_size(name: str, f: np.ndarray, h: int, w: int) -> None:
    if f.shape[1] < h or f.shape[2] < w:
        raise MetricError(f"{name}@vifb: needs frames of at least {h}×{w} pixels, found {f.shape[1]}×{f.shape[2]}")


# --------------------------------------------------------------------------------------------------------------
# Fused-only metrics
# --------------------------------------------------------------------------------------------------------------


def _entropy(sources: Sources, p: Plane) -> np.ndarray:
    """metricsEntropy: floor of the values, 256 bins, log2."""
    return entropy_of_counts(hist256(np.floor(p.f)), log=np.log2)


def _sd(sources: Sources, p: Plane) -> np.ndarray:
    """metricsVariance: population standard deviation (÷ MN)."""
    f = _f64(p.f).reshape(len(p.f), -1)
    mu = f.mean(axis=1, keepdims=True)
    return np.sqrt(((f - mu) ** 2).sum(axis=1) / f.shape[1])


def _sf(sources: Sources, fused: np.ndarray) -> np.ndarray:
    """metricsSpatial_frequency: one pass on the channels side by side (M × 3N, seams included), ÷ M·3N."""
    f = _f64(fused)
    if f.ndim == 4:
        f = np.concatenate([f[..., 0], f[..., 1], f[..., 2]], axis=2)
    mn = f.shape[1] * f.shape[2]
    rf = (np.diff(f, axis=2) ** 2).sum(axis=(1, 2)) / mn
    cf = (np.diff(f, axis=1) ** 2).sum(axis=(1, 2)) / mn
    return np.sqrt(rf + cf)


def _ag(sources: Sources, p: Plane) -> np.ndarray:
    """metricsAvg_gradient: MATLAB gradient, √((gx²+gy²)/2) summed over MN pixels, ÷ (M−1)(N−1)."""
    _need_size("ag", p.f, 2, 2)
    gy, gx = np.gradient(_f64(p.f), axis=(1, 2))
    s = np.sqrt((gx * gx + gy * gy) / 2)
    m, n = p.f.shape[1:]
    return s.sum(axis=(1, 2)) / ((m - 1) * (n - 1))


def _ei(sources: Sources, p: Plane) -> np.ndarray:
    """metricsEdge_intensity: Sobel with replicate border, mean magnitude."""
    gx, gy = sobel3(_f64(p.f), "replicate")
    return np.sqrt(gx * gx + gy * gy).mean(axis=(1, 2))


# --------------------------------------------------------------------------------------------------------------
# Two-source metrics
# --------------------------------------------------------------------------------------------------------------


def _ce_one(h_s: np.ndarray, h_f: np.ndarray) -> np.ndarray:
    p_s = h_s / h_s.sum(axis=1, keepdims=True)
    p_f = h_f / h_f.sum(axis=1, keepdims=True)
    both = (p_s > 0) & (p_f > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(both, p_s * np.log2(np.where(both, p_s / np.where(both, p_f, 1.0), 1.0)), 0.0)
    return terms.sum(axis=1)


def _ce(sources: Sources, p: Plane) -> np.ndarray:
    """metricsCross_entropy: KL of 256-bin histograms (bins with a zero skipped), mean of VI and IR."""
    h_f = hist256(p.f)
    h_vi = p.src(sources, "vi", "hist256", hist256)
    h_ir = p.src(sources, "ir", "hist256", hist256)
    return (_ce_one(h_vi, h_f) + _ce_one(h_ir, h_f)) / 2


def _mi_labels(x: np.ndarray) -> np.ndarray:
    """metricsMutinf's quantisation: min–max to [0, 1] (zeros if constant), int16(·255) (ties away from 0)."""
    x = _f64(x)
    hi = x.max(axis=(1, 2), keepdims=True)
    lo = x.min(axis=(1, 2), keepdims=True)
    flat = hi == lo
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(flat, 0.0, (x - lo) / np.where(flat, 1.0, hi - lo))
    return round_half_away(a * 255).astype(np.int64)


def _mi_source(x: np.ndarray):
    labels = _mi_labels(x)
    return labels, entropy_of_counts(hist256(labels))


def _mi(sources: Sources, p: Plane) -> np.ndarray:
    """metricsMutinf: min–max ×255 labels, 256×256 joint histogram, nats, MI(VI,F) + MI(IR,F)."""
    lf = _mi_labels(p.f)
    total = np.zeros(len(p.f))
    for which in ("vi", "ir"):
        ls, hs = p.src(sources, which, "mi_labels", _mi_source)
        total += joint_mi(ls, lf, ha=hs)
    return total


def _pseudo_mse(a: np.ndarray, f: np.ndarray) -> np.ndarray:
    """VIFB's "mse": √(Σ(a − f)²)/(MN), a Frobenius norm over the pixel count (exact integer sum)."""
    d = a.astype(np.int64) - f.astype(np.int64)
    n = len(f)
    ss = (d * d).reshape(n, -1).sum(axis=1).astype(np.float64)
    return np.sqrt(ss) / (f.shape[1] * f.shape[2])


def _mse_pair(sources: Sources, p: Plane) -> np.ndarray:
    return (_pseudo_mse(p.vi, p.f) + _pseudo_mse(p.ir, p.f)) / 2


def _rmse(sources: Sources, p: Plane) -> np.ndarray:
    """metricsRmse: (‖VI−F‖ + ‖IR−F‖)/(2MN)."""
    return _mse_pair(sources, p)


def _psnr(sources: Sources, p: Plane) -> np.ndarray:
    """metricsPsnr: 20·log10(255/√r) with r the mean of VIFB's two pseudo-mse values."""
    r = _mse_pair(sources, p)
    with np.errstate(divide="ignore"):
        return 20 * np.log10(255 / np.sqrt(r))


SSIM_WINDOW = fspecial_gaussian_1d(11, 1.5)
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def _ssim(sources: Sources, p: Plane) -> np.ndarray:
    """metricsSsim: Gaussian 11×11 σ 1.5 'valid', L = 255, SSIM(VI,F) + SSIM(IR,F)."""
    _need_size("ssim", p.f, 11, 11)
    w = SSIM_WINDOW
    f = _f64(p.f)
    mu_f, ff = ssim_moments(f, w)
    total = np.zeros(len(f))
    for which in ("vi", "ir"):
        mu_s, ss = p.src(sources, which, "ssim_moments", lambda x: ssim_moments(_f64(x), w))
        src = p.vi if which == "vi" else p.ir
        sf = filter_valid(_f64(src) * f, w)
        total += ssim_map(mu_s, ss, mu_f, ff, sf, SSIM_C1, SSIM_C2).mean(axis=(1, 2))
    return total


def _qabf_source(x: np.ndarray):
    return qabf_gradients(255 * _f64(x))


def _qabf(sources: Sources, p: Plane) -> np.ndarray:
    """metricsQabf: zero-padded Sobel, atan orientation, the g_S = g_F branch, inputs ×255 again, L = 1."""
    g_f, a_f = qabf_gradients(255 * _f64(p.f))
    g_a, a_a = p.src(sources, "vi", "qabf_gradients", _qabf_source)
    g_b, a_b = p.src(sources, "ir", "qabf_gradients", _qabf_source)
    num = (qabf_pair(g_a, a_a, g_f, a_f) * g_a + qabf_pair(g_b, a_b, g_f, a_f) * g_b).sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / (g_a + g_b).sum(axis=(1, 2))


# Qcb (Chen–Blum): DoG CSF on the freqspace grid scaled by size/30, contrast from unnormalised 31×31 Gaussians.
QCB_F0, QCB_F1, QCB_A = 15.3870, 1.3456, 0.7622
QCB_Z = 1e-4  # C′ = k·C^p/(h·C^q + Z) with k = h = 1, p = 3, q = 2


def _qcb_gauss_1d(sigma: float) -> np.ndarray:
    """1-D factor of exp(−(x²+y²)/2σ²)/(2πσ²) on −15..15 (not normalised to sum 1)."""
    x = np.arange(-15, 16, dtype=np.float64)
    return np.exp(-(x * x) / (2 * sigma * sigma)) / math.sqrt(2 * math.pi * sigma * sigma)


QCB_G1 = _qcb_gauss_1d(2.0)
QCB_G2 = _qcb_gauss_1d(4.0)


@lru_cache(maxsize=32)
def _qcb_csf(h: int, w: int) -> np.ndarray:
    r = freqspace_radius(h, w, 30.0)
    s = np.exp(-((r / QCB_F0) ** 2)) - QCB_A * np.exp(-((r / QCB_F1) ** 2))
    return _half(s)


def _qcb_contrast(x: np.ndarray) -> np.ndarray:
    """C′ = C^p/(C^q + Z), C = |G_σ2 ⋆ I′ / G_σ4 ⋆ I′ − 1|, I′ the CSF-filtered normalize1'd image."""
    h, w = x.shape[1:]
    filtered = _irfft2(_rfft2(normalize1(_f64(x))) * _qcb_csf(h, w), (h, w))
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.abs(filter_sep(filtered, QCB_G1, cv2.BORDER_CONSTANT)
                   / filter_sep(filtered, QCB_G2, cv2.BORDER_CONSTANT) - 1)
        c2 = c * c  # C^q, q = 2
        c *= c2  # C^p, p = 3
        c2 += QCB_Z
        c /= c2
        return c


def _qcb(sources: Sources, p: Plane) -> np.ndarray:
    """metricsQcb (Chen–Blum): normalize1, CSF in the frequency domain, local contrast preservation."""
    c_f = _qcb_contrast(p.f)
    c_a = p.src(sources, "vi", "qcb_contrast", _qcb_contrast)
    c_b = p.src(sources, "ir", "qcb_contrast", _qcb_contrast)
    with np.errstate(divide="ignore", invalid="ignore"):
        q_af = np.where(c_a < c_f, c_a / c_f, c_f / c_a)
        q_bf = np.where(c_b < c_f, c_b / c_f, c_f / c_b)
        a2, b2 = c_a * c_a, c_b * c_b
        lam = a2 / (a2 + b2)
        lam_b = b2 / (a2 + b2)
    return (lam * q_af + lam_b * q_bf).mean(axis=(1, 2))


# Qcv (Chen–Varshney): Mannos–Sakrison CSF on the freqspace grid scaled by size/8, 16×16 regions, α = 5.
QCV_BLOCK, QCV_ALPHA = 16, 5


@lru_cache(maxsize=32)
def _qcv_csf(h: int, w: int) -> np.ndarray:
    r = freqspace_radius(h, w, 8.0)
    return _half(2.6 * (0.0192 + 0.144 * r) * np.exp(-((0.144 * r) ** 1.1)))


def block_sum(x: np.ndarray, block: int) -> np.ndarray:
    """Sum over ``block``×``block`` tiles of each N×H×W frame, partial tiles zero-padded (``blkproc``)."""
    n, h, w = x.shape
    hb, wb = -(-h // block), -(-w // block)
    padded = np.zeros((n, hb * block, wb * block), dtype=np.float64)
    padded[:, :h, :w] = x
    return padded.reshape(n, hb, block, wb, block).sum(axis=(2, 4))


def _qcv_source(x: np.ndarray):
    """normalize1'd source: its region saliency Σ_block G^α and its half spectrum."""
    norm = normalize1(_f64(x))
    gx, gy = sobel3(norm, "zero")
    saliency = block_sum(np.sqrt(gx * gx + gy * gy) ** QCV_ALPHA, QCV_BLOCK)
    return saliency, _rfft2(norm)


def _qcv(sources: Sources, p: Plane) -> np.ndarray:
    """metricsQcv (Chen–Varshney): Σ(λ_A D_A + λ_B D_B)/Σ(λ_A + λ_B), D the CSF-filtered block MSE. Lower is better."""
    h, w = p.f.shape[1:]
    spec_f = _rfft2(normalize1(_f64(p.f)))
    csf = _qcv_csf(h, w)
    num = np.zeros(len(p.f))
    den = np.zeros(len(p.f))
    for which in ("vi", "ir"):
        saliency, spec_s = p.src(sources, which, "qcv_source", _qcv_source)
        diff = _irfft2((spec_s - spec_f) * csf, (h, w))
        distortion = block_sum(diff * diff, QCV_BLOCK) / (QCV_BLOCK * QCV_BLOCK)
        num += (saliency * distortion).sum(axis=(1, 2))
        den += saliency.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


# --------------------------------------------------------------------------------------------------------------
# Registration
# --------------------------------------------------------------------------------------------------------------

_CARD = "VIFB MATLAB, per channel of RGB F then mean"

_METRICS = [
    ("ag", _per_plane(_ag), True, (0.0, INF),
     f"Average gradient (VIFB Avg_gradient): MATLAB gradient, sum over MN pixels divided by (M-1)(N-1); {_CARD}"),
    ("ce", _per_plane(_ce), False, (0.0, INF),
     f"Cross entropy (VIFB Cross_entropy): 256-bin KL in bits, zero bins skipped, mean of VI and IR; {_CARD}"),
    ("ei", _per_plane(_ei), True, (0.0, INF),
     f"Edge intensity (VIFB Edge_intensity): mean Sobel magnitude, replicate border; {_CARD}"),
    ("en", _per_plane(_entropy), True, (0.0, 8.0),
     f"Entropy (VIFB Entropy): floor of the values, 256 bins, bits; {_CARD}"),
    ("mi", _per_plane(_mi), True, (0.0, 2 * math.log(256)),
     f"Mutual information (VIFB Mutinf): min-max x255 rounded labels, nats, SUM MI(VI,F)+MI(IR,F); {_CARD}"),
    ("psnr", _per_plane(_psnr), True, (0.0, INF),
     f"PSNR (VIFB Psnr): 20log10(255/sqrt(r)), r = mean of sqrt(sum sq diff)/MN (a norm, not an MSE); {_CARD}"),
    ("qabf", _per_plane(_qabf), True, (0.0, 1.0),
     f"Qabf (VIFB Qabf): zero-padded Sobel, atan, relative strength g_F where g_S = g_F (not 1), x255 twice; {_CARD}"),
    ("qcb", _per_plane(_qcb), True, (0.0, 1.0),
     f"Chen-Blum Qcb (VIFB Qcb): normalize1, freqspace DoG CSF, unnormalised 31x31 Gaussians, zero padding; {_CARD}"),
    ("qcv", _per_plane(_qcv), False, (0.0, INF),
     f"Chen-Varshney Qcv (VIFB Qcv): normalize1, Mannos-Sakrison CSF, 16x16 zero-padded blocks, alpha 5; {_CARD}"),
    ("rmse", _per_plane(_rmse), False, (0.0, INF),
     f"VIFB Rmse: (||VI-F|| + ||IR-F||)/(2MN), a Frobenius norm over the pixel count, not a root mean square; {_CARD}"),
    ("sf", _sf, True, (0.0, INF),
     "Spatial frequency (VIFB Spatial_frequency): RGB channels side by side as one M x 3N image (seams "
     "included), squared-difference sums divided by M*3N; grey F in one pass"),
    ("ssim", _per_plane(_ssim), True, (-2.0, 2.0),
     f"SSIM (VIFB Ssim): Gaussian 11x11 sigma 1.5 'valid', L = 255, SUM SSIM(VI,F)+SSIM(IR,F); {_CARD}"),
    ("sd", _per_plane(_sd), True, (0.0, 127.5),
     f"Standard deviation (VIFB 'Variance', which is the population std, divided by MN); {_CARD}"),
]

for _name, _compute, _higher, _range, _description in _METRICS:
    register(Metric(name=_name, convention=CONVENTION, compute=_compute, higher_is_better=_higher,
                    value_range=_range, version="1", kind="image", description=_description))
