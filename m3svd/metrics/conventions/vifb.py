"""The ``vifb`` convention: VIFB's 13 MATLAB metrics (``xingchenzhang/VIFB@22b2ea9``), reproduced to its 5 digits.

Conventions of the lineage (``metrics/CONVENTIONS.md``):

- VIFB calls ``metric(VI, IR, F)``; values are 0–255 doubles, never converted to grey.
- An RGB fused image is scored **per channel** k on (VI[..., k], IR — or IR[..., k] when it has 3 channels —,
  F[..., k]) and the three results are averaged (SF is the exception: one pass on the channels side by side).
- A grey fused image is scored in one pass. VIFB has no defined path for a grey F with an RGB VI (its code feeds
  the 3-D array to 2-D formulas), so the VI is converted with the toolkit's BT.601 grey
  (:func:`m3svd.data.frames.to_grey`) there.

Everything is vectorised over the batch ``N``; source-only quantities (histograms, Sobel maps, SSIM moments,
contrast maps, spectra) are kept in :meth:`Sources.memo` under keys ``("vifb", quantity, "vi"|"ir", plane)``.

Shared building blocks (filtering, SSIM, histograms/MI, Sobel/Qabf) come from :mod:`m3svd.metrics.pixel`;
VIFB-only helpers here: :func:`round_half_away`, :func:`normalize1`, :func:`freqspace_radius`, :func:`block_sum`.
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
from m3svd.metrics.pixel import (
    correlate_same,
    entropy_bits,
    entropy_mi,
    entropy_of_counts,
    gaussian_window,
    hist256,
    qabf_combine,
    sobel3,
    sobel_strength_angle,
    ssim_map,
    ssim_moments,
)

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
    return entropy_bits(np.floor(p.f))


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
        total += entropy_mi(ls, lf, ha=hs)
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


SSIM_WINDOW = gaussian_window(11, 1.5)
SSIM_C1 = (0.01 * 255) ** 2
SSIM_C2 = (0.03 * 255) ** 2


def _ssim(sources: Sources, p: Plane) -> np.ndarray:
    """metricsSsim: Gaussian 11×11 σ 1.5 'valid', L = 255, SSIM(VI,F) + SSIM(IR,F)."""
    _need_size("ssim", p.f, 11, 11)
    w = SSIM_WINDOW
    f = _f64(p.f)
    mom_f = ssim_moments(f, w, valid=True)
    total = np.zeros(len(f))
    for which in ("vi", "ir"):
        mom_s = p.src(sources, which, "ssim_moments", lambda x: ssim_moments(_f64(x), w, valid=True))
        src = _f64(p.vi if which == "vi" else p.ir)
        total += ssim_map(src, f, mom_s, mom_f, w, SSIM_C1, SSIM_C2, valid=True).mean(axis=(1, 2))
    return total


def _qabf_source(x: np.ndarray):
    return sobel_strength_angle(255 * _f64(x))


def _qabf(sources: Sources, p: Plane) -> np.ndarray:
    """metricsQabf: zero-padded Sobel, atan orientation, the g_S = g_F branch, inputs ×255 again, L = 1."""
    sob_a = p.src(sources, "vi", "qabf_gradients", _qabf_source)
    sob_b = p.src(sources, "ir", "qabf_gradients", _qabf_source)
    return qabf_combine(sob_a, sob_b, _qabf_source(p.f))


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
        c = np.abs(correlate_same(filtered, QCB_G1, cv2.BORDER_CONSTANT)
                   / correlate_same(filtered, QCB_G2, cv2.BORDER_CONSTANT) - 1)
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
    return qcb_combine(c_a, c_b, c_f)


def qcb_combine(c_a: np.ndarray, c_b: np.ndarray, c_f: np.ndarray) -> np.ndarray:
    """mean(λ_A Q_AF + λ_B Q_BF), Q the min/max ratio of C′, λ_A = C′_A²/(C′_A² + C′_B²); NaN where both are 0."""
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
    return qcv_combine([p.src(sources, which, "qcv_source", _qcv_source) for which in ("vi", "ir")], p.f)


def qcv_combine(source_terms: list, fused: np.ndarray) -> np.ndarray:
    """Σ(λ_S D_S)/Σλ_S over the sources' :func:`qcv_source` terms (saliency, spectrum) and uint8 fused planes."""
    h, w = fused.shape[1:]
    spec_f = _rfft2(normalize1(_f64(fused)))
    csf = _qcv_csf(h, w)
    num = np.zeros(len(fused))
    den = np.zeros(len(fused))
    for saliency, spec_s in source_terms:
        diff = _irfft2((spec_s - spec_f) * csf, (h, w))
        distortion = block_sum(diff * diff, QCV_BLOCK) / (QCV_BLOCK * QCV_BLOCK)
        num += (saliency * distortion).sum(axis=(1, 2))
        den += saliency.sum(axis=(1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / den


# Public names for the building blocks the ``m3svd`` convention reuses on its grey frames.
cross_entropy_bits = _ce_one
qcb_contrast = _qcb_contrast
qcv_source = _qcv_source


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

# the names VIFB's code and result files use where they differ from the registry's
_ALIASES = {"ag": ("Avg_gradient",), "ce": ("Cross_entropy",), "ei": ("Edge_intensity",), "en": ("Entropy",),
            "mi": ("Mutinf",), "sf": ("Spatial_frequency",), "sd": ("Variance",)}
for _name, _compute, _higher, _range, _description in _METRICS:
    register(Metric(name=_name, convention=CONVENTION, compute=_compute, higher_is_better=_higher,
                    value_range=_range, version="1", kind="image", description=_description,
                    reference="VIFB's MATLAB outputs; tests/test_metrics_vifb.py", aliases=_ALIASES.get(_name, ())))
