"""Classical baselines: sanity rows, pixel rules, multi-scale rules, guided-filter fusion, and single-visible-image
enhancement for the visible-only track.

All of them work in the luminance domain: IR with the visible frame's BT.601 luminance Y (or Y alone for the
visible-only ones), in float64; the result takes the visible chroma
(:func:`~m3svd.methods.base.with_visible_chroma`), so a grey visible input (TNO) gives a grey output. They run on
the CPU with OpenCV/numpy: at 640×480 they are far from the bottleneck of an evaluation (metrics and decoding
are), so a GPU path would not pay.
"""

from __future__ import annotations

import cv2
import numpy as np

from m3svd.methods import register
from m3svd.methods.base import Fusion, Method, check_window, visible_luminance, with_visible_chroma


class _LuminanceMethod(Method):
    """Fuse ``ir`` and visible ``y`` (``T×H×W`` float64, 0–255) in :meth:`fuse_luminance`; colour from VIS."""

    def fuse(self, ir, vi):
        check_window(ir, vi)
        y = self.fuse_luminance(ir.astype(np.float64), visible_luminance(vi))
        return Fusion(with_visible_chroma(y, vi))

    def fuse_luminance(self, ir: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.stack([self.fuse_frame(a, b) for a, b in zip(ir, y, strict=True)])

    def fuse_frame(self, ir: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@register
class InfraredOnly(Method):
    name = "ir"
    description = "sanity row: the infrared frame, grey, as the output"

    def fuse(self, ir, vi):
        check_window(ir, vi)
        return Fusion(np.repeat(ir[..., None], 3, axis=-1))


@register
class VisibleOnly(Method):
    name = "vi"
    description = "sanity row: the visible frame, unchanged, as the output"
    inputs = ("vi",)  # needs no IR, so it is also the reference row of the visible-only protocols

    def fuse(self, ir, vi):
        check_window(ir, vi)
        return Fusion(vi.copy())


@register
class Average(_LuminanceMethod):
    name = "average"
    description = "mean of IR and visible luminance, visible chroma"

    def fuse_luminance(self, ir, y):
        return (ir + y) / 2.0


@register
class Maximum(_LuminanceMethod):
    name = "max"
    description = "per-pixel maximum of IR and visible luminance, visible chroma"

    def fuse_luminance(self, ir, y):
        return np.maximum(ir, y)


def _choose_detail(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Keep the coefficient of larger magnitude (the standard detail rule of multi-scale fusion)."""
    return np.where(np.abs(a) >= np.abs(b), a, b)


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Burt–Adelson pyramid: ``levels`` band-pass layers, then the low-pass residual."""
    pyramid, current = [], image
    for _ in range(levels):
        down = cv2.pyrDown(current)
        up = cv2.pyrUp(down, dstsize=(current.shape[1], current.shape[0]))
        pyramid.append(current - up)
        current = down
    return [*pyramid, current]


def collapse_laplacian(pyramid: list[np.ndarray]) -> np.ndarray:
    current = pyramid[-1]
    for band in reversed(pyramid[:-1]):
        current = cv2.pyrUp(current, dstsize=(band.shape[1], band.shape[0])) + band
    return current


@register
class LaplacianPyramid(_LuminanceMethod):
    name = "laplacian"
    description = "Laplacian pyramid (Burt & Adelson 1983): average residual, max-magnitude band-pass"
    options = {"levels": 4}

    def fuse_frame(self, ir, y):
        levels = int(self.config["levels"])
        a, b = laplacian_pyramid(ir, levels), laplacian_pyramid(y, levels)
        fused = [_choose_detail(p, q) for p, q in zip(a[:-1], b[:-1], strict=True)]
        return collapse_laplacian([*fused, (a[-1] + b[-1]) / 2.0])


def haar_dwt(image: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One orthonormal Haar level of an even-sized image: approximation and (horizontal, vertical, diagonal).

    PyWavelets' ``dwt2(x, "haar")`` is the same transform up to the detail signs, but it multiplies by 1/√2 twice
    where this divides by 2 once: its coefficients differ in the last bits, and on integer frames, where the
    max-magnitude rule meets exact ties, that flips choices (up to 94 levels on random integer frames). These
    few lines keep ``dwt`` exact (``test_haar_is_pywavelets_haar`` pins the equivalence)."""
    a, b = image[0::2, 0::2], image[0::2, 1::2]
    c, d = image[1::2, 0::2], image[1::2, 1::2]
    return (a + b + c + d) / 2.0, ((a + b - c - d) / 2.0, (a - b + c - d) / 2.0, (a - b - c + d) / 2.0)


def haar_idwt(approx: np.ndarray, details: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    h, v, d = details
    out = np.empty((approx.shape[0] * 2, approx.shape[1] * 2))
    out[0::2, 0::2] = (approx + h + v + d) / 2.0
    out[0::2, 1::2] = (approx + h - v - d) / 2.0
    out[1::2, 0::2] = (approx - h + v - d) / 2.0
    out[1::2, 1::2] = (approx - h - v + d) / 2.0
    return out


@register
class WaveletFusion(_LuminanceMethod):
    name = "dwt"
    description = "Haar discrete wavelet transform: average approximation, max-magnitude details (reflect-padded)"
    options = {"levels": 3}

    def fuse_frame(self, ir, y):
        levels = int(self.config["levels"])
        height, width = ir.shape
        multiple = 2**levels
        pad = ((0, -height % multiple), (0, -width % multiple))
        a, b = np.pad(ir, pad, mode="reflect"), np.pad(y, pad, mode="reflect")
        fused_details = []
        for _ in range(levels):
            a, da = haar_dwt(a)
            b, db = haar_dwt(b)
            fused_details.append(tuple(_choose_detail(p, q) for p, q in zip(da, db, strict=True)))
        out = (a + b) / 2.0
        for details in reversed(fused_details):
            out = haar_idwt(out, details)
        return out[:height, :width]


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter with a grey guide (box windows of side ``2·radius + 1``, borders reflected)."""
    size = (2 * radius + 1, 2 * radius + 1)

    def box(x):
        return cv2.boxFilter(x, cv2.CV_64F, size, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    var_i = box(guide * guide) - mean_i * mean_i
    cov_ip = box(guide * src) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


@register
class GuidedFilterFusion(_LuminanceMethod):
    """Li, Kang & Hu, "Image fusion with guided filtering", IEEE TIP 2013, with the paper's parameters.

    Two-scale split by a 31×31 mean filter; saliency = Gaussian-smoothed |Laplacian|; binary weight maps from
    the larger saliency, refined by guided filtering with each source as guide (r=45, ε=0.3 for the base layer;
    r=7, ε=1e-6 for the detail layer) on images scaled to [0, 1].
    """

    name = "gff"
    description = "guided-filter fusion (Li, Kang & Hu 2013), paper parameters"
    options = {"base_size": 31, "r1": 45, "eps1": 0.3, "r2": 7, "eps2": 1e-6}

    def fuse_luminance(self, ir, y):
        weights = self.weight_maps(ir / 255.0, y / 255.0)
        return np.stack([self.combine(a, b, p) for a, b, p in zip(ir / 255.0, y / 255.0, weights, strict=True)])

    def weight_maps(self, ir: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``P`` of the paper: 1 where IR is more salient than the visible frame (``T×H×W`` float64)."""
        return np.stack([(_saliency(a) > _saliency(b)).astype(np.float64) for a, b in zip(ir, y, strict=True)])

    def combine(self, ir: np.ndarray, y: np.ndarray, p_ir: np.ndarray) -> np.ndarray:
        c = self.config
        size = (int(c["base_size"]), int(c["base_size"]))
        layers = []
        for image, p in ((ir, p_ir), (y, 1.0 - p_ir)):
            base = cv2.blur(image, size, borderType=cv2.BORDER_REFLECT)
            w_base = guided_filter(image, p, int(c["r1"]), float(c["eps1"]))
            w_detail = guided_filter(image, p, int(c["r2"]), float(c["eps2"]))
            layers.append((base, image - base, w_base, w_detail))
        (b1, d1, wb1, wd1), (b2, d2, wb2, wd2) = layers
        base = (wb1 * b1 + wb2 * b2) / _nonzero(wb1 + wb2)
        detail = (wd1 * d1 + wd2 * d2) / _nonzero(wd1 + wd2)
        return (base + detail) * 255.0


def _saliency(image: np.ndarray) -> np.ndarray:
    lap = np.abs(cv2.Laplacian(image, cv2.CV_64F, ksize=1, borderType=cv2.BORDER_REFLECT))
    return cv2.GaussianBlur(lap, (11, 11), 5.0, borderType=cv2.BORDER_REFLECT)


def _nonzero(x: np.ndarray) -> np.ndarray:
    return np.where(np.abs(x) < 1e-12, 1e-12, x)


@register
class TemporalGuidedFilterFusion(GuidedFilterFusion):
    """GFF whose binary weight maps are smoothed over time before refinement, so a pixel does not flip source
    from one frame to the next on a small saliency change (a classical, temporally aware baseline).

    Windows of 16 frames overlapping by 8 give each kept frame up to 8 frames of past context; the temporal
    Gaussian (σ in frames) is truncated at 3σ and renormalised at window ends.
    """

    name = "gff-temporal"
    description = "GFF with weight maps smoothed over time (Gaussian, σ=2 frames) before guided refinement"
    temporal_window = 16
    window_overlap = 8
    options = {**GuidedFilterFusion.options, "sigma_t": 2.0}

    def weight_maps(self, ir, y):
        p = super().weight_maps(ir, y)
        sigma = float(self.config["sigma_t"])
        if sigma <= 0 or len(p) == 1:
            return p
        radius = int(np.ceil(3 * sigma))
        t = np.arange(len(p))
        kernel = np.exp(-0.5 * ((t[:, None] - t[None, :]) / sigma) ** 2) * (np.abs(t[:, None] - t[None, :]) <= radius)
        kernel /= kernel.sum(axis=1, keepdims=True)
        return np.tensordot(kernel, p, axes=1)


class _VisibleLuminanceMethod(Method):
    """A single-visible-image method: enhance the visible luminance ``y`` (``H×W`` float64, 0–255) frame by frame
    in :meth:`enhance_frame`; chroma from VIS. Needs no IR, so it runs on the visible-only protocols (``ir`` is
    None there, and ignored where a fusion protocol passes it)."""

    inputs = ("vi",)

    def fuse(self, ir, vi):
        check_window(ir, vi)
        y = np.stack([self.enhance_frame(frame) for frame in visible_luminance(vi)])
        return Fusion(with_visible_chroma(y, vi))

    def enhance_frame(self, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@register
class CLAHE(_VisibleLuminanceMethod):
    """Contrast-limited adaptive histogram equalisation (Zuiderveld, Graphics Gems IV, 1994) of the BT.601
    luminance with OpenCV's ``createCLAHE``: the luminance is rounded to ``uint8``, equalised in a grid of
    ``tiles``×``tiles`` tiles with each tile's histogram clipped at ``clip_limit`` times its mean bin (excess
    redistributed) and the tile mappings bilinearly interpolated; the visible chroma is kept. ``clip_limit=2``
    and 8×8 tiles are the values most image-processing uses pick (OpenCV's own default limit, 40, barely limits).
    """

    name = "clahe"
    description = "CLAHE of the visible BT.601 luminance (OpenCV, clip limit 2, 8x8 tiles), visible chroma; no IR"
    options = {"clip_limit": 2.0, "tiles": 8}

    def enhance_frame(self, y):
        tiles = int(self.config["tiles"])
        clahe = cv2.createCLAHE(clipLimit=float(self.config["clip_limit"]), tileGridSize=(tiles, tiles))
        return clahe.apply(np.clip(np.rint(y), 0, 255).astype(np.uint8)).astype(np.float64)


@register
class GuidedDetailEnhancement(_VisibleLuminanceMethod):
    """Guided-filter detail enhancement (He, Sun & Tang, "Guided image filtering", ECCV 2010 / TPAMI 2013): the
    luminance on [0, 1] is split into an edge-preserving base, the self-guided filter output (``radius``,
    ``eps``; the paper's r=16, ε=0.1²), and the detail residual, which is amplified ``boost`` times (the paper's
    ×5) and added back; clipped to 0–255, visible chroma kept. The base keeps strong edges, so they do not halo.
    """

    name = "gf-detail"
    description = "guided-filter detail enhancement (He et al. 2010): detail x5, r=16, eps=0.01; visible chroma; no IR"
    options = {"radius": 16, "eps": 0.01, "boost": 5.0}

    def enhance_frame(self, y):
        c = self.config
        image = y / 255.0
        base = guided_filter(image, image, int(c["radius"]), float(c["eps"]))
        return (base + float(c["boost"]) * (image - base)) * 255.0
