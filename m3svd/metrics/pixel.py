"""Pixel-domain building blocks shared by every convention: float64, batched over ``M×H×W`` planes.

Everything here works on float64 planes holding 0–255 values (one plane per frame, or per frame and channel)
and returns one value (or map) per plane. The conventions (``vifb``, ``tang``/``m3svd``, ``cddfuse``,
``vfbench``) decide which planes (grey, per channel), how the two sources are aggregated, and which quirks
apply (explicit parameters here, never copies); see ``metrics/CONVENTIONS.md``.

- :func:`pearson` (:func:`centred` sides memoisable), :func:`spatial_frequency`: CC/SCD and SF of the Python/Tang
  lineages.
- :func:`gaussian_window`, :func:`correlate_same` (``border``), :func:`correlate_valid`, :func:`local_mean`:
  separable filtering with MATLAB ``fspecial`` Gaussians.
- :func:`ssim_moments`, :func:`ssim_map`: Gaussian-window SSIM (``valid`` / ``border`` flags).
- :func:`vifp_reference`, :func:`vifp_distorted`, :func:`vifp_terms`: Sheikh–Bovik pixel-domain VIFp (LIVE
  ``vifp_mscale``), with the source (reference) and fused sides split off so they can be memoised / shared.
- :func:`levels` (a plane as checked int64 bin indices, reusable), :func:`hist256`, :func:`entropy_of_counts`,
  :func:`entropy_bits`, :func:`joint_histograms` (``saturate``), :func:`entropy_mi`: histograms, entropies and
  H(a)+H(b)−H(a,b) MI (MATLAB lineages);
  :func:`mutual_information`: exact contingency-table MI in nats (``sklearn.metrics.mutual_info_score``).
- :func:`sobel3` (``border``), :func:`sobel_strength_angle`, :func:`qabf_edge_preservation`,
  :func:`qabf_combine` (``equal_is_one``): the Xydeas–Petrović Qabf (zero-padded Sobel, ``atan``, the
  ``g_A = g_F`` branch).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------- statistics


def centred(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x`` minus its per-plane mean, and the per-plane sum of squares of that: one side of :func:`pearson`."""
    x = x - x.mean(axis=(1, 2), keepdims=True)
    return x, (x * x).sum(axis=(1, 2))


def pearson(a, b) -> np.ndarray:
    """Pearson r per plane (MATLAB ``corr2``; CC/SCD of Tang, m3svd, CDDFuse); NaN where either is constant.

    ``a`` and ``b`` are ``M×H×W`` planes or their :func:`centred` pairs (memoise a source's)."""
    (a, aa), (b, bb) = (x if isinstance(x, tuple) else centred(x) for x in (a, b))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=(1, 2)) / np.sqrt(aa * bb)


def spatial_frequency(f: np.ndarray) -> np.ndarray:
    """√(mean of squared row differences + mean of squared column differences) per plane, each mean over the
    number of differences (Tang, m3svd, CDDFuse; VIFB divides by M·N instead and has its own code)."""
    rf = np.diff(f, axis=1)
    cf = np.diff(f, axis=2)
    return np.sqrt((rf * rf).mean(axis=(1, 2)) + (cf * cf).mean(axis=(1, 2)))


# --------------------------------------------------------------------------------------------- filtering


def gaussian_window(size: int, sigma: float) -> np.ndarray:
    """1-D taps whose outer product is MATLAB ``fspecial('gaussian', size, sigma)`` (float64, sums to 1).

    Used by every lineage (SSIM windows, VIFp scales). ``fspecial`` zeroes 2-D taps below ``eps·max``; that would
    break separability, so it raises instead (never happens for the windows used here).
    """
    half = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - half
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    if g.min() ** 2 < EPS * g.max() ** 2:  # the 2-D corner tap would be cut by fspecial: not separable any more
        raise ValueError(f"gaussian_window({size}, {sigma}): fspecial would truncate taps")
    return g / g.sum()


def _planes(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float64)


def correlate_same(x: np.ndarray, taps: np.ndarray, border: int = cv2.BORDER_REFLECT_101) -> np.ndarray:
    """Separable correlation of every ``H×W`` plane of ``x`` (``M×H×W``, or one ``H×W`` plane) with
    ``taps ⊗ taps``, same size (OpenCV ``sepFilter2D``, float64).

    ``border`` is the lineage's padding: ``BORDER_REFLECT_101`` (VF-Bench SSIM), ``BORDER_REPLICATE`` (MATLAB
    ``ssim``/``imfilter`` 'replicate': Tang, m3svd), ``BORDER_CONSTANT`` (``conv2``/``filter2`` 'same': VIFB Qcb).
    """
    x = _planes(x)
    k = np.asarray(taps, dtype=np.float64)
    flat = x.reshape(-1, *x.shape[-2:])
    out = np.empty_like(flat)
    for i in range(len(flat)):  # into the output: a fresh cv2 array plus a copy costs more than the filter
        cv2.sepFilter2D(flat[i], cv2.CV_64F, k, k, dst=out[i], borderType=border)
    return out.reshape(x.shape)


def correlate_valid(x: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """'valid' separable correlation (no padding): ``M×(H−n+1)×(W−n+1)`` (or one plane); = MATLAB
    ``filter2(taps ⊗ taps, x, 'valid')`` and ``scipy.signal.convolve2d`` 'valid' up to rounding (the kernel is
    symmetric, so convolution = correlation). A 'same' filter cropped by the radius (the crop never sees the
    padding). Used by VIFp (all lineages), VIFB SSIM, Tang MEF-MS-SSIM."""
    r = len(taps) // 2
    h, w = x.shape[-2:]
    if h < len(taps) or w < len(taps):
        return np.zeros((*x.shape[:-2], max(h - 2 * r, 0), max(w - 2 * r, 0)))
    return correlate_same(x, taps, border=cv2.BORDER_CONSTANT)[..., r:h - r, r:w - r]


def local_mean(x: np.ndarray, taps: np.ndarray, valid: bool = False, border: int = cv2.BORDER_REFLECT_101):
    """Windowed mean with ``taps ⊗ taps``: :func:`correlate_valid` if ``valid`` else :func:`correlate_same`."""
    return correlate_valid(x, taps) if valid else correlate_same(x, taps, border)


# --------------------------------------------------------------------------------------------- SSIM


def ssim_moments(x: np.ndarray, taps: np.ndarray, valid: bool = False, border: int = cv2.BORDER_REFLECT_101):
    """Source-only part of a Gaussian-window SSIM: windowed mean μ and variance E[x²] − μ² (memoisable).

    Lineage flags: ``valid=True`` (VIFB ``filter2 'valid'``), else a same-size map with ``border``
    ``BORDER_REFLECT_101`` (VF-Bench) or ``BORDER_REPLICATE`` (MATLAB ``ssim``: Tang, m3svd). CDDFuse's 7×7 box
    SSIM (scikit-image, sample covariance) is its own code.
    """
    mu = local_mean(x, taps, valid, border)
    var = local_mean(x * x, taps, valid, border)
    var -= mu * mu
    return mu, var


def ssim_map(x, y, mom_x, mom_y, taps, c1: float, c2: float, valid: bool = False,
             border: int = cv2.BORDER_REFLECT_101) -> np.ndarray:
    """Wang et al.'s SSIM map ((2μxμy+C1)(2σxy+C2))/((μx²+μy²+C1)(σx²+σy²+C2)) from :func:`ssim_moments` of
    ``x`` and ``y`` (same ``taps``, ``valid``, ``border``); σxy = E[xy] − μxμy is filtered here."""
    (mx, vx), (my, vy) = mom_x, mom_y
    # the operations of ((2·mx·my + c1)(2·cxy + c2)) / ((mx² + my² + c1)(vx + vy + c2)) in place, in that order
    # (2·mx·my = 2·(mx·my) exactly: doubling is exact)
    num = mx * my
    cxy = local_mean(x * y, taps, valid, border)
    cxy -= num
    cxy *= 2
    cxy += c2
    num *= 2
    num += c1
    num *= cxy
    den = mx * mx
    den += np.multiply(my, my, out=cxy)
    den += c1
    cxy = np.add(vx, vy, out=cxy)
    cxy += c2
    den *= cxy
    num /= den
    return num


# --------------------------------------------------------------------------------------------- VIFp

VIF_EPS = 1e-10
VIF_SIGMA_NSQ = 2.0  # visual noise variance on 0–255 data (LIVE vifp_mscale)
VIF_SIZES = (17, 9, 5, 3)  # N = 2^(5−s)+1 for scales s = 1..4, Gaussian σ = N/5


def _vif_taps() -> list[np.ndarray]:
    return [gaussian_window(n, n / 5.0) for n in VIF_SIZES]


def _vif_product(a: np.ndarray, b: np.ndarray, scale: int, uint8_products: bool) -> np.ndarray:
    """a·b, or MATLAB's ``uint8 .* uint8`` (saturating at 255) on the first scale, where the planes are still the
    integer images (the 2022 Tang toolbox calls ``vifp_mscale`` on ``uint8``)."""
    p = a * b
    return np.minimum(p, 255.0, out=p) if uint8_products and scale == 0 else p


def _vif_pyramid(x: np.ndarray, uint8_products: bool = False) -> list[tuple]:
    """Per scale: (plane, μ, σ² clipped at 0), each scale the previous one filtered 'valid' and decimated by 2."""
    out = []
    x = _planes(x)
    for scale, taps in enumerate(_vif_taps()):
        if scale > 0:
            x = np.ascontiguousarray(correlate_valid(x, taps)[..., ::2, ::2])
        mu = correlate_valid(x, taps)
        var = mu * mu
        np.subtract(correlate_valid(_vif_product(x, x, scale, uint8_products), taps), var, out=var)
        var[var < 0] = 0.0
        out.append((x, mu, var))
    return out


def vifp_reference(ref: np.ndarray, sigma_nsq: float = VIF_SIGMA_NSQ, uint8_products: bool = False) -> list[tuple]:
    """Source-only VIFp quantities per scale: (reference plane, μ₁, σ₁² as used, Σ log10(1+σ₁²/σn²) per plane,
    σ₁² + 1e-10, σ₁² ≥ 1e-10).

    ``ref`` is ``M×H×W`` float64. Memoise the result per source; :func:`vifp_terms` takes it. One VIFp for every
    lineage (CDDFuse, VF-Bench, Tang, m3svd): separable OpenCV filtering, zero-padded then cropped ('valid').
    ``uint8_products``: first-scale products saturate at 255 (``tang2022``; pass it to all three functions).
    """
    return [(x, mu, var, _vif_den(var, sigma_nsq), var + VIF_EPS, var >= VIF_EPS)
            for x, mu, var in _vif_pyramid(ref, uint8_products)]


def _vif_den(var: np.ndarray, sigma_nsq: float) -> np.ndarray:
    """Σ log10(1 + σ₁²/σn²) per plane, σ₁² < 1e-10 counted as 0 (the operations of that expression, in place)."""
    t = np.where(var < VIF_EPS, 0.0, var)
    t /= sigma_nsq
    t += 1.0
    return np.log10(t, out=t).sum(axis=(-2, -1))


def vifp_distorted(dist: np.ndarray, uint8_products: bool = False) -> list[tuple]:
    """Distorted (fused) side of VIFp, shareable by several references: per scale (plane, μ₂, σ₂² clipped,
    σ₂² ≥ 1e-10)."""
    return [(x, mu, var, var >= VIF_EPS) for x, mu, var in _vif_pyramid(dist, uint8_products)]


def vifp_terms(reference: list[tuple], dist, sigma_nsq: float = VIF_SIGMA_NSQ, uint8_products: bool = False):
    """VIFp numerator and denominator per plane (``M`` each), summed over the 4 scales; VIFp = num/den.

    ``reference`` from :func:`vifp_reference` (the source), ``dist`` the fused planes ``M×H×W`` or their
    :func:`vifp_distorted` pyramid. The clipping rules are LIVE's: g = 0 where σ₁² < 1e-10 (then σ₁² = 0,
    σv² = σ₂²) or σ₂² < 1e-10 (σv² = 0) or g < 0 (σv² = σ₂²); σv² ≥ 1e-10.
    """
    pyramid = vifp_distorted(dist, uint8_products) if isinstance(dist, np.ndarray) else dist
    num = den = 0.0
    for scale, (taps, (ref, mu1, s1, den_s, s1_eps, s1_ok), (d, mu2, s2, s2_ok)) in enumerate(zip(
            _vif_taps(), reference, pyramid, strict=True)):
        s12 = correlate_valid(_vif_product(ref, d, scale, uint8_products), taps)
        s12 -= mu1 * mu2
        g = s12 / s1_eps
        # LIVE's rules, in one pass: g = 0 (so the pixel adds log10(1) = 0) where σ1² < eps, σ2² < eps or g < 0;
        # elsewhere σv² = σ2² − g σ12 floored at eps (bit-identical to the masked assignments).
        valid = s1_ok & s2_ok
        valid &= g >= 0
        sv = g * s12
        np.subtract(s2, sv, out=sv)
        np.maximum(sv, VIF_EPS, out=sv)
        sv += sigma_nsq
        g *= g
        g *= s1
        g /= sv
        g *= valid  # finite everywhere, so × 0 zeroes exactly
        g += 1.0
        np.log10(g, out=g)
        num = num + g.sum(axis=(-2, -1))
        den = den + den_s
    return num, den


# --------------------------------------------------------------------------------------------- MI


def levels(x: np.ndarray) -> np.ndarray:
    """Integer-valued 0–255 planes (``M×H×W``) as ``M×HW`` int64 histogram indices; pass the result to the
    histogram functions to convert a plane once for several histograms (int64 input is only checked)."""
    v = np.asarray(x)
    v = v.reshape(len(v), -1).astype(np.int64, copy=False)
    if v.size and (v.min() < 0 or v.max() > 255):
        raise ValueError("histogram: values outside 0–255")
    return v


_CALCHIST_MAX = 1 << 24  # OpenCV counts in float32: exact up to 2^24 pixels per plane


def _uint8_planes(*xs: np.ndarray) -> list[np.ndarray] | None:
    """The arrays as ``M×HW`` ``uint8`` rows if all are ``uint8`` and small enough for exact OpenCV histograms."""
    if all(x.dtype == np.uint8 for x in xs):
        rows = [np.ascontiguousarray(x.reshape(len(x), -1)) for x in xs]
        if rows[0].shape[1] < _CALCHIST_MAX:
            return rows
    return None


def hist256(planes: np.ndarray) -> np.ndarray:
    """Counts of the integer levels 0..255 per plane: ``M×H×W`` integer-valued → ``M×256`` int64 (all lineages).
    ``uint8`` planes are counted by OpenCV's ``calcHist`` (exact, ≈ 2× faster than ``bincount`` on int64)."""
    rows = _uint8_planes(planes)
    if rows is not None:
        return np.stack([cv2.calcHist([r], [0], None, [256], [0, 256]).reshape(256) for r in rows[0]]).astype(
            np.int64)
    m = len(planes)
    v = levels(planes)
    return np.bincount(((np.arange(m, dtype=np.int64)[:, None] << 8) + v).ravel(), minlength=m << 8).reshape(m, 256)


def joint_histograms(a: np.ndarray, b: np.ndarray, saturate: bool = False) -> np.ndarray:
    """256×256 joint histograms (``M×256×256`` int64, ``[a, b]``) of integer-valued 0–255 planes ``a``, ``b``.

    ``saturate=True`` is Tang's ``Hab.m`` quirk: it indexes with ``uint8 + 1``, which saturates at 255, so levels
    254 and 255 share one bin on both axes (the marginal entropies are not affected).
    """
    rows = _uint8_planes(a, b)
    if rows is not None:  # OpenCV's 2-D histogram of the uint8 planes: exact counts, ≈ 2× faster than bincount
        ra, rb = (np.minimum(r, 254) for r in rows) if saturate else rows
        return np.stack([cv2.calcHist([x, y], [0, 1], None, [256, 256], [0, 256, 0, 256])
                         for x, y in zip(ra, rb, strict=True)]).astype(np.int64)
    m = len(a)
    ia, ib = levels(a), levels(b)
    if saturate:
        ia, ib = np.minimum(ia, 254), np.minimum(ib, 254)
    index = ia << 8
    index += ib
    if m > 1:
        index += np.arange(m, dtype=np.int64)[:, None] << 16
    return np.bincount(index.ravel(), minlength=m << 16).reshape(m, 256, 256)


def entropy_of_counts(counts: np.ndarray, log=np.log) -> np.ndarray:
    """−Σ p log p over the non-zero bins of each plane's histogram (``M×…`` counts → ``M``); ``log`` picks the unit
    (``np.log`` nats: VIFB MI; ``np.log2`` bits: entropies, Tang MI)."""
    counts = counts.reshape(len(counts), -1).astype(np.float64)
    p = counts / counts.sum(axis=1, keepdims=True)
    logp = log(p, out=np.zeros_like(p), where=p > 0)
    return -(p * logp).sum(axis=1)


def entropy_bits(planes: np.ndarray) -> np.ndarray:
    """Shannon entropy (bits) of the 256-bin histogram of integer-valued 0–255 planes (MATLAB ``entropy``; every
    lineage's EN)."""
    return entropy_of_counts(hist256(planes), np.log2)


def entropy_mi(a: np.ndarray, b: np.ndarray, log=np.log, saturate: bool = False,
               ha: np.ndarray | None = None, hb: np.ndarray | None = None) -> np.ndarray:
    """MI as H(a) + H(b) − H(a, b) per plane of integer 0–255 planes (the MATLAB lineages: VIFB nats, Tang bits).

    Marginals from the plain 256-bin histograms (pass ``ha``/``hb`` to reuse memoised ones), the joint from
    :func:`joint_histograms` with its ``saturate`` quirk.
    """
    if ha is None:
        ha = entropy_of_counts(hist256(a), log)
    if hb is None:
        hb = entropy_of_counts(hist256(b), log)
    return ha + hb - entropy_of_counts(joint_histograms(a, b, saturate), log)


def mutual_information(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """MI(a; b) in nats per plane from the exact contingency table of the (integer) values (CDDFuse, VF-Bench).

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
        nonzero = np.flatnonzero(h)
        ia, ib = nonzero >> 8, nonzero & 255
        n = h.ravel()[nonzero]
        p = n / total
        terms = p * (np.log(n) - math.log(total)) + p * (math.log(total) * 2 - np.log(pa[ia]) - np.log(pb[ib]))
        terms[np.abs(terms) < EPS] = 0.0
        out[i] = max(terms.sum(), 0.0)
    return out


# --------------------------------------------------------------------------------------------- Qabf

QABF_GAMMA_G, QABF_KAPPA_G, QABF_SIGMA_G = 0.9994, -15.0, 0.5
QABF_GAMMA_A, QABF_KAPPA_A, QABF_SIGMA_A = 0.9879, -22.0, 0.8


_SOBEL_SMOOTH = np.array([1.0, 2.0, 1.0])
_SOBEL_DIFF = np.array([-1.0, 0.0, 1.0])
_SOBEL_BORDER = {"zero": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE}


def _sobel_pair(x: np.ndarray, border: str, sign: float) -> tuple[np.ndarray, np.ndarray]:
    """(sign·gx, gy) of every plane (OpenCV separable filtering, float64: exact on integer-valued input)."""
    mode = _SOBEL_BORDER[border]
    x = _planes(x)
    flat = x.reshape(-1, *x.shape[-2:])
    gx, gy = np.empty_like(flat), np.empty_like(flat)
    for i, plane in enumerate(flat):
        cv2.sepFilter2D(plane, cv2.CV_64F, sign * _SOBEL_DIFF, _SOBEL_SMOOTH, dst=gx[i], borderType=mode)
        cv2.sepFilter2D(plane, cv2.CV_64F, _SOBEL_SMOOTH, _SOBEL_DIFF, dst=gy[i], borderType=mode)
    return gx.reshape(x.shape), gy.reshape(x.shape)


def sobel3(x: np.ndarray, border: str = "zero") -> tuple[np.ndarray, np.ndarray]:
    """Correlation of ``M×H×W`` ``x`` with [-1 0 1; -2 0 2; -1 0 1] (``gx``) and its transpose (``gy``).

    ``border`` is ``"zero"`` (MATLAB ``conv2``/``filter2`` 'same': Qabf everywhere, VIFB Qcv) or ``"replicate"``
    (``imfilter`` 'replicate': VIFB EI). Convolution instead of correlation negates both outputs, which leaves
    magnitude and atan(gy/gx) unchanged. Exact for integer-valued input.
    """
    return _sobel_pair(x, border, 1.0)


def sobel_levels(planes: np.ndarray, border: int = cv2.BORDER_CONSTANT) -> tuple[np.ndarray, np.ndarray]:
    """(gx, gy) of ``uint8`` planes (``M×H×W`` or one plane) as float64: OpenCV's 3×3 Sobel in int16 arithmetic,
    exact, so equal to any float64 summation of the same integer terms (:func:`sobel3`, :func:`_correlate3`-style
    shifted sums) and ≈ 20× faster than float64 filtering. Zeros come out +0.0, as a float64 sum started at +0.0
    gives. ``border``: ``BORDER_CONSTANT`` (zero padding) or ``BORDER_REFLECT_101``."""
    flat = planes.reshape(-1, *planes.shape[-2:])
    gx, gy = np.empty(flat.shape), np.empty(flat.shape)
    for i, plane in enumerate(flat):
        gx[i] = cv2.Sobel(plane, cv2.CV_16S, 1, 0, ksize=3, borderType=border)
        gy[i] = cv2.Sobel(plane, cv2.CV_16S, 0, 1, ksize=3, borderType=border)
    return gx.reshape(planes.shape), gy.reshape(planes.shape)


def sobel_strength_angle(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Qabf's edge strength g = √(sx²+sy²) and orientation α = atan(sy/sx) (π/2 where sx = 0) per plane
    (VIFB, Tang, m3svd, CDDFuse, VF-Bench: all integer-valued input, where this is exact).

    sx, sy: ``conv2(x, [-1 0 1; -2 0 2; -1 0 1], 'same')`` and ``conv2(x, [1 2 1; 0 0 0; -1 -2 -1], 'same')``,
    zero padding. True convolution negates h3 but not the row flip of h1 relative to :func:`sobel3`, so sx = −gx
    and sy = gy; the sign matters because the sx = 0 pixels get +π/2. ``uint8`` planes take the exact integer
    path (:func:`sobel_levels`): the same g and α (a zero's sign may differ, which neither g nor |α_X − α_F|
    sees); float planes are filtered in float64.
    """
    if planes.dtype == np.uint8:
        gx, gy = sobel_levels(planes)
        return qabf_strength_angle(np.negative(gx, out=gx), gy)
    return qabf_strength_angle(*_sobel_pair(planes, "zero", -1.0))


def qabf_strength_angle(sx: np.ndarray, sy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Qabf's g = √(sx²+sy²) and α = atan(sy/sx), π/2 only where sx is exactly 0, from the two Sobel responses
    (``tang2022`` computes them itself, in Octave's summation order)."""
    g = np.sqrt(sx * sx + sy * sy)
    with np.errstate(divide="ignore", invalid="ignore"):
        angle = np.divide(sy, sx)
    np.arctan(angle, out=angle)
    angle[sx == 0] = math.pi / 2
    return g, angle


def qabf_edge_preservation(g_src, a_src, g_fused, a_fused, equal_is_one: bool = False) -> np.ndarray:
    """Per-pixel Q^{XF} = Q_g·Q_α with the relative strength g_F/g_X or g_X/g_F, and where g_X = g_F:
    **g_F** (the lineage's bug: VIFB, Tang, CDDFuse, VF-Bench) or 1 with ``equal_is_one=True`` (m3svd's fix).

    Q_g·Q_α = Γ_g Γ_α / ((1 + e^{κ_g(rel − σ_g)}) (1 + e^{κ_α(orient − σ_α)})), orient = 1 − |α_X − α_F|/(π/2),
    evaluated in that one-quotient form (differs from two quotients by rounding only).
    """
    rel = np.minimum(g_src, g_fused)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel /= np.maximum(g_src, g_fused)
    equal = g_src == g_fused
    if equal_is_one:
        rel[equal] = 1.0
    else:
        np.copyto(rel, g_fused, where=equal)
    rel -= QABF_SIGMA_G
    rel *= QABF_KAPPA_G
    np.exp(rel, out=rel)
    rel += 1.0
    # κ_α (orient − σ_α) = κ_α (1 − σ_α) − κ_α |α_X − α_F| / (π/2)
    orient = np.subtract(a_src, a_fused)
    np.abs(orient, out=orient)
    orient *= -QABF_KAPPA_A / (math.pi / 2)
    orient += QABF_KAPPA_A * (1.0 - QABF_SIGMA_A)
    np.exp(orient, out=orient)
    orient += 1.0
    rel *= orient
    return np.divide(QABF_GAMMA_G * QABF_GAMMA_A, rel, out=rel)


def qabf_combine(sobel_a, sobel_b, sobel_f, equal_is_one: bool = False) -> np.ndarray:
    """Qabf = Σ(Q^{AF} g_A + Q^{BF} g_B) / Σ(g_A + g_B) per plane (weights w = g, L = 1).

    Each argument is a ``(g, α)`` pair from :func:`sobel_strength_angle`; ``equal_is_one`` as in
    :func:`qabf_edge_preservation`. NaN when both sources are flat.
    """
    (ga, aa), (gb, ab), (gf, af) = sobel_a, sobel_b, sobel_f
    q = qabf_edge_preservation(ga, aa, gf, af, equal_is_one)
    q *= ga
    weighted = q.sum(axis=(-2, -1))
    q = qabf_edge_preservation(gb, ab, gf, af, equal_is_one)
    q *= gb
    weighted += q.sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return weighted / (ga.sum(axis=(-2, -1)) + gb.sum(axis=(-2, -1)))


# --------------------------------------------------------------------------------------------- VIFF (Han et al.)

VIFF_SIGMA_NSQ = 0.005 * 255 * 255  # Han et al.'s visual noise on 0–255 data (VIFF_Public.m)
VIFF_C = 1e-7
VIFF_WEIGHTS = (1 / 2.15, 0.0, 0.15 / 2.15, 1 / 2.15)


def vif_pyramid(x: np.ndarray) -> list[tuple]:
    """The four-scale (plane, μ, σ² ≥ 0) pyramid that VIFp and VIFF share (LIVE ``vifp_mscale`` filtering)."""
    return _vif_pyramid(x)


def viff_maps(reference: list[tuple], pyramid: list[tuple], sigma_nsq: float = VIFF_SIGMA_NSQ) -> list[tuple]:
    """Per scale ``(g, VID, VIND)`` maps of Han's ``ComVidVindG``: the VIFp machinery kept per pixel.

    ``reference`` and ``pyramid`` are :func:`vif_pyramid` (or :func:`vifp_reference`) outputs of a source and of
    the fused planes; the clipping rules are LIVE's (see :func:`vifp_terms`), g is the gain after clipping.
    """
    out = []
    for taps, (ref, mu1, s1, *_), (d, mu2, s2) in zip(_vif_taps(), reference, pyramid, strict=True):
        s12 = correlate_valid(ref * d, taps) - mu1 * mu2
        g = s12 / (s1 + VIF_EPS)
        valid = (s1 >= VIF_EPS) & (s2 >= VIF_EPS) & (g >= 0)
        g[~valid] = 0.0
        sv = np.maximum(s2 - g * s12, VIF_EPS)
        s1_used = np.where(s1 < VIF_EPS, 0.0, s1)
        vid = np.log10(1.0 + g * g * s1_used / (sv + sigma_nsq))
        vind = np.log10(1.0 + s1_used / sigma_nsq)
        out.append((g, vid, vind))
    return out


def viff_combine(maps_a: list[tuple], maps_b: list[tuple], weights=VIFF_WEIGHTS, c: float = VIFF_C) -> np.ndarray:
    """VIFF = Σ_s p_s Σ(VID_sel + C)/Σ(VIND_sel + C) per plane; at each pixel the source with the smaller gain g
    is selected (ties take ``maps_b``), as ``VIFF_Public.m`` does. Defined everywhere (C > 0): 1 on flat input."""
    total = 0.0
    for p, (g1, vid1, vind1), (g2, vid2, vind2) in zip(weights, maps_a, maps_b, strict=True):
        first = g1 < g2
        vid = np.where(first, vid1, vid2) + c
        vind = np.where(first, vind1, vind2) + c
        total = total + p * (vid.sum(axis=(-2, -1)) / vind.sum(axis=(-2, -1)))
    return total


# --------------------------------------------------------------------------------------------- MS-SSIM (Wang)

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def halve_2x2(x: np.ndarray) -> np.ndarray:
    """``imfilter(x, ones(2)/4, 'symmetric', 'same')`` then ``x(1:2:end, 1:2:end)`` on the last two axes (``H×W`` or
    ``M×H×W``): 2×2 block means, the last row/column repeated for odd sizes (Wang's ``msssim.m`` and Ma's
    MEF-MS-SSIM)."""
    p = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, 1), (0, 1)], mode="edge")
    return (p[..., :-1:2, :-1:2] + p[..., 1::2, :-1:2] + p[..., :-1:2, 1::2] + p[..., 1::2, 1::2]) * 0.25


def ms_ssim_pyramid(x: np.ndarray, taps: np.ndarray, levels: int = len(MS_SSIM_WEIGHTS)) -> list[tuple]:
    """Per scale ``(plane, (μ, σ²))`` with 'valid' windows, ``M×H×W`` float64 (one side of :func:`ms_ssim_combine`,
    memoisable for a source)."""
    out = []
    x = _planes(x)
    for level in range(levels):
        if level:
            x = halve_2x2(x)
        out.append((x, ssim_moments(x, taps, valid=True)))
    return out


def ms_ssim_min_size(taps: np.ndarray, levels: int = len(MS_SSIM_WEIGHTS)) -> int:
    """Smallest side whose coarsest scale (sizes halved with ceil) still holds one full window."""
    side = len(taps)
    for _ in range(levels - 1):
        side = 2 * side - 1
    return side


def ms_ssim_combine(ref: list[tuple], dist: list[tuple], taps, c1: float, c2: float,
                    weights=MS_SSIM_WEIGHTS) -> np.ndarray:
    """Wang's MS-SSIM Π_{j<J} mcs_j^{w_j} · mssim_J^{w_J} per plane (mcs: mean contrast-structure map, mssim: mean
    SSIM map at the coarsest scale). Negative means are clipped at 0 (MATLAB would return a complex number)."""
    total = 1.0
    last = len(weights) - 1
    for level, (w, (x, (mx, vx)), (y, (my, vy))) in enumerate(zip(weights, ref, dist, strict=True)):
        cxy = correlate_valid(x * y, taps) - mx * my
        cs = (2 * cxy + c2) / (vx + vy + c2)
        if level == last:
            cs *= (2 * mx * my + c1) / (mx * mx + my * my + c1)
        total = total * np.maximum(cs.mean(axis=(-2, -1)), 0.0) ** w
    return total


# --------------------------------------------------------------------------------------------- FMI (Haghighat)

FMI_CHUNK = 1 << 14  # windows per vectorised step (each needs a 9×9 joint pdf)


def matlab_sobel_edges(x: np.ndarray) -> np.ndarray:
    """MATLAB ``edge(x)`` with its defaults (Sobel, automatic threshold, thinning) on one 2-D float64 image → 0/1.

    Gradients by correlation with ``fspecial('sobel')/8`` (and its transpose) with replicate padding; b = bx² + by²;
    cutoff = 4·mean(b); a pixel is an edge where b > cutoff and it is a horizontal maximum of b with |bx| ≥ |by|
    (or a vertical one with |by| ≥ |bx|), comparisons ``b(left) ≤ b < b(right)``-style as in MATLAB's thinning.
    Read from MATLAB's code; not verified against MATLAB output (no golden values exist).
    """
    p = np.pad(np.asarray(x, dtype=np.float64), 1, mode="edge")
    cols = p[:-2] + 2 * p[1:-1] + p[2:]  # vertical [1 2 1] smoothing, (H)×(W+2)
    rows = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]  # horizontal [1 2 1] smoothing, (H+2)×W
    bx = (cols[:, :-2] - cols[:, 2:]) * 0.125
    by = (rows[:-2] - rows[2:]) * 0.125
    b = bx * bx + by * by
    cutoff = 4 * b.sum() / b.size
    ax, ay = np.abs(bx), np.abs(by)
    tol = 100 * EPS
    left = np.ones_like(b, dtype=bool)
    right = np.ones_like(left)
    up = np.ones_like(left)
    down = np.ones_like(left)
    left[:, 1:] = b[:, :-1] <= b[:, 1:]
    right[:, :-1] = b[:, :-1] > b[:, 1:]
    up[1:] = b[:-1] <= b[1:]
    down[:-1] = b[:-1] > b[1:]
    e = (b > cutoff) & (((ax >= ay - tol) & left & right) | ((ay >= ax - tol) & up & down))
    return e.astype(np.float64)


def fmi_windows(x: np.ndarray, w: int = 3) -> np.ndarray:
    """All w×w 'valid' windows of a 2-D feature image as rows of ``K×w²``, each flattened column-major (MATLAB
    ``sub(:)``: the order fixes the cdfs), windows in row-major order of their centres."""
    v = np.lib.stride_tricks.sliding_window_view(np.asarray(x, dtype=np.float64), (w, w))
    return np.ascontiguousarray(v.swapaxes(-1, -2)).reshape(-1, w * w)


def fmi_normalise(sub: np.ndarray) -> np.ndarray:
    """Per window min–max to [0, 1]; a flat window becomes all ones (``fmi.m``)."""
    lo = sub.min(axis=1, keepdims=True)
    hi = sub.max(axis=1, keepdims=True)
    flat = hi == lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (sub - lo) / (hi - lo)
    return np.where(flat, 1.0, out)


def _entropy_rows(p: np.ndarray) -> np.ndarray:
    logp = np.log2(np.abs(p), out=np.zeros_like(p), where=p != 0)
    return -(p * logp).sum(axis=-1)


def _fmi_chunk(a: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Fast-FMI of normalised windows ``a``, ``f`` (K×l): 2·MI/(H_a + H_f) with Nelsen's joint pdf, 0 if MI = 0."""
    k, n = a.shape
    pa = a / a.sum(axis=1, keepdims=True)
    pf = f / f.sum(axis=1, keepdims=True)
    ca, cf = np.cumsum(pa, axis=1), np.cumsum(pf, axis=1)
    ta = pa - pa.mean(axis=1, keepdims=True)
    tf = pf - pf.mean(axis=1, keepdims=True)
    num = (ta * tf).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(num == 0, 0.0, num / np.sqrt((ta * ta).sum(axis=1) * (tf * tf).sum(axis=1)))
    idx = np.arange(1, n + 1, dtype=np.float64)
    sd_a = np.sqrt(np.maximum((idx * idx * pa).sum(axis=1) - (idx * pa).sum(axis=1) ** 2, 0.0))
    sd_f = np.sqrt(np.maximum((idx * idx * pf).sum(axis=1) - (idx * pf).sum(axis=1) ** 2, 0.0))
    fi, aj = cf[:, :, None], ca[:, None, :]  # [window, i (fused), j (source)]
    upper = c >= 0
    # Fréchet bounds: min(F_f, F_a) for c ≥ 0, max(F_f + F_a − 1, 0) for c < 0, in fmi.m's arithmetic
    bound = np.where(upper[:, None, None], 0.5 * (fi + aj - np.abs(fi - aj)),
                     0.5 * (fi + aj - 1 + np.abs(fi + aj - 1)))
    cov = (bound - fi * aj).sum(axis=(1, 2))
    sds = sd_a * sd_f
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = c / (cov / sds)
    weight = np.where((sds == 0) | (upper & (c == 0)), 0.0, weight)
    padded = np.zeros((k, n + 1, n + 1))
    padded[:, 1:, 1:] = bound
    step = padded[:, 1:, 1:] - padded[:, :-1, 1:] - padded[:, 1:, :-1] + padded[:, :-1, :-1]
    wgt = weight[:, None, None]
    jpdf = wgt * step + (1 - wgt) * (pf[:, :, None] * pa[:, None, :])
    h_joint = _entropy_rows(jpdf.reshape(k, -1))  # real(−p log2 p): |p| inside the log for negative p
    h_a, h_f = _entropy_rows(pa), _entropy_rows(pf)
    mi = h_a + h_f - h_joint
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mi == 0, 0.0, 2 * mi / (h_a + h_f))


def fmi_values(src: np.ndarray, fused: np.ndarray, equal: np.ndarray) -> np.ndarray:
    """Per-window fmi of raw windows ``src`` and ``fused`` (``K×l`` from :func:`fmi_windows`): 1 where ``equal``
    (the caller's window-equality test), else :func:`_fmi_chunk` of the normalised windows."""
    out = np.ones(len(src))
    todo = np.flatnonzero(~equal)
    for start in range(0, len(todo), FMI_CHUNK):
        sel = todo[start:start + FMI_CHUNK]
        out[sel] = _fmi_chunk(fmi_normalise(src[sel]), fmi_normalise(fused[sel]))
    return out
