"""``cddfuse`` convention: the CDDFuse ``utils/Evaluator.py`` lineage (MMIF-CDDFuse@fd8da1f3, ≈25 copies).

Reading as ``image_read_cv2(path, 'GRAY')``: BGR → float32 → OpenCV ``BGR2GRAY`` on float32 (0.299 R + 0.587 G
+ 0.114 B) → ``np.round`` (half to even), for IR, VI and F alike (a grey frame stays as it is). The metrics
then run in **float64** on those integer-valued grey planes, i.e. they reproduce the golden
``value_f64_inputs`` column (the original keeps float32 arrays; that changes values by ≲ 1e-6 relative, and
the legacy SSIM by ≈ 2.5e-4). Two-source metrics use A = IR, B = VI. See ``metrics/CONVENTIONS.md``.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.ndimage import uniform_filter1d

from m3svd.metrics import register
from m3svd.metrics.base import Metric, Sources, fused_memo
from m3svd.metrics.pixel import (
    centred,
    entropy_bits,
    mutual_information,
    pearson,
    qabf_combine,
    sobel_strength_angle,
    spatial_frequency,
    vifp_distorted,
    vifp_reference,
    vifp_terms,
)

CONVENTION = "cddfuse"
INF = math.inf


def grey_levels(frames: np.ndarray) -> np.ndarray:
    """The CDDFuse reader on decoded ``uint8`` frames (``N×H×W`` grey or ``N×H×W×3`` RGB) → its integer grey
    levels as ``uint8`` (the rounded float32 grey is integer-valued in 0–255, so this is exact)."""
    if frames.ndim == 3:  # imread makes 3 equal channels; 0.299x+0.587x+0.114x rounds back to x
        return frames
    n, h, w, _ = frames.shape
    bgr = np.ascontiguousarray(frames[..., ::-1], dtype=np.float32).reshape(n * h, w, 3)
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).reshape(n, h, w)
    return np.round(grey).astype(np.uint8)


def read_grey(frames: np.ndarray) -> np.ndarray:
    """The CDDFuse reader on decoded ``uint8`` frames → float64 grey (:func:`grey_levels` as float64)."""
    return grey_levels(frames).astype(np.float64)


def _source_levels(src: Sources) -> tuple[np.ndarray, np.ndarray]:
    ir = src.memo((CONVENTION, "levels8", "ir"), lambda: grey_levels(src.ir))
    vi = src.memo((CONVENTION, "levels8", "vi"), lambda: grey_levels(src.vi))
    return ir, vi


def _levels(fused: np.ndarray) -> np.ndarray:
    """The fused frames' grey levels (``uint8``), once per frame for a whole metric set."""
    return fused_memo(fused, (CONVENTION, "levels8"), lambda: grey_levels(fused))


def _grey(fused: np.ndarray) -> np.ndarray:
    """The fused frames as this convention reads them (float64 grey), once per frame for a whole metric set."""
    return fused_memo(fused, (CONVENTION, "grey"), lambda: _levels(fused).astype(np.float64))


def _grey_sources(src: Sources) -> tuple[np.ndarray, np.ndarray]:
    ir, vi = _source_levels(src)
    return (src.memo((CONVENTION, "grey", "ir"), lambda: ir.astype(np.float64)),
            src.memo((CONVENTION, "grey", "vi"), lambda: vi.astype(np.float64)))


def _mean(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1).mean(axis=1)


# --------------------------------------------------------------------------------------------- fused only


def en(src: Sources, fused: np.ndarray) -> np.ndarray:
    return entropy_bits(_levels(fused))  # the rounded grey's levels, as uint8


def sd(src: Sources, fused: np.ndarray) -> np.ndarray:
    return _grey(fused).reshape(len(fused), -1).std(axis=1)


def sf(src: Sources, fused: np.ndarray) -> np.ndarray:
    f = _grey(fused)
    return spatial_frequency(f)


def ag(src: Sources, fused: np.ndarray) -> np.ndarray:
    f = _grey(fused)
    gy, gx = np.gradient(f, axis=(1, 2))
    return _mean(np.sqrt((gx * gx + gy * gy) / 2))


# --------------------------------------------------------------------------------------------- two sources


def mi(src: Sources, fused: np.ndarray) -> np.ndarray:
    ir, vi = _source_levels(src)  # uint8: exact OpenCV joint histograms
    f = _levels(fused)
    return mutual_information(f, ir) + mutual_information(f, vi)


def _mse_pair(src: Sources, f: np.ndarray) -> np.ndarray:
    ir, vi = _grey_sources(src)
    return (_mean((ir - f) ** 2) + _mean((vi - f) ** 2)) / 2


def mse(src: Sources, fused: np.ndarray) -> np.ndarray:
    return _mse_pair(src, _grey(fused))


def psnr(src: Sources, fused: np.ndarray) -> np.ndarray:
    f = _grey(fused)
    peak = f.reshape(len(f), -1).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(peak**2 / _mse_pair(src, f))


def _centred_sources(src: Sources):
    ir, vi = _grey_sources(src)
    return (src.memo((CONVENTION, "centred", "ir"), lambda: centred(ir)),
            src.memo((CONVENTION, "centred", "vi"), lambda: centred(vi)))


def cc(src: Sources, fused: np.ndarray) -> np.ndarray:
    f = centred(_grey(fused))
    c_ir, c_vi = _centred_sources(src)
    return (pearson(c_ir, f) + pearson(c_vi, f)) / 2


def scd(src: Sources, fused: np.ndarray) -> np.ndarray:
    ir, vi = _grey_sources(src)
    c_ir, c_vi = _centred_sources(src)
    f = _grey(fused)
    return pearson(c_ir, f - vi) + pearson(c_vi, f - ir)


def vif(src: Sources, fused: np.ndarray) -> np.ndarray:
    f = vifp_distorted(_grey(fused))  # the fused pyramid, shared by both sources
    total = np.zeros(len(fused))
    for name, plane in zip(("ir", "vi"), _grey_sources(src), strict=True):
        ref = src.memo((CONVENTION, "vifp", name), lambda plane=plane: vifp_reference(plane))
        num, den = vifp_terms(ref, f)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = num / den
        total += np.where(np.isnan(value), 1.0, value)  # Evaluator.compare_viff maps NaN to 1.0
    return total


def qabf(src: Sources, fused: np.ndarray) -> np.ndarray:
    ir, vi = _source_levels(src)  # uint8: the exact integer Sobel
    sob_ir = src.memo((CONVENTION, "sobel", "ir"), lambda: sobel_strength_angle(ir))
    sob_vi = src.memo((CONVENTION, "sobel", "vi"), lambda: sobel_strength_angle(vi))
    return qabf_combine(sob_ir, sob_vi, sobel_strength_angle(_levels(fused)))


# --------------------------------------------------------------------------------------------- SSIM

SSIM_WIN = 7
SSIM_COV = SSIM_WIN**2 / (SSIM_WIN**2 - 1)  # sample covariance N/(N−1)


def _box(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """7×7 uniform mean of each plane, bit-identical to scipy's ``uniform_filter(x, size=(1, 7, 7))`` (``out``
    may be ``x``). scipy filters down the columns, then along the rows, with the same running mean on every
    line; a column pass is 3× slower than a row pass, so it runs as a row pass on the transposed plane. Any
    float64 planes; SSIM's integer-valued ones take :func:`_box_integer`."""
    out = np.empty_like(x) if out is None else out
    for plane, result in zip(x, out, strict=True):
        t = cv2.transpose(plane)
        uniform_filter1d(t, SSIM_WIN, axis=1, output=t)
        cv2.transpose(t, result)
        uniform_filter1d(result, SSIM_WIN, axis=1, output=result)
    return out


def _box_integer(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`_box` of integer-valued planes (all that SSIM filters here: grey levels and their products), the
    same doubles, without transposes. scipy's column pass is a running sum divided by 7 per pixel: on integers
    that sum is exact, so OpenCV's unnormalised box sum (exact too) divided by 7 gives the same doubles; then
    scipy's own running mean along the rows, which are contiguous."""
    dst = np.empty_like(x) if out is None or out is x else out
    for plane, result in zip(x, dst, strict=True):
        cv2.boxFilter(plane, cv2.CV_64F, (1, SSIM_WIN), dst=result, normalize=False, borderType=cv2.BORDER_REFLECT)
    dst /= SSIM_WIN
    uniform_filter1d(dst, SSIM_WIN, axis=-1, output=dst)
    if out is x:
        np.copyto(x, dst)
        return x
    return dst


def _box_moments(x: np.ndarray):
    """7×7 uniform means of integer-valued x and x² (borders cropped later)."""
    return _box_integer(x), _box_integer(x * x)


def _ssim_sum(src: Sources, fused: np.ndarray, data_range: float) -> np.ndarray:
    """SSIM(F,IR) + SSIM(F,VI), scikit-image ``structural_similarity`` defaults (7×7 box, sample covariance,
    K1 0.01, K2 0.03, 3-pixel border cropped from the map) with the given ``data_range``."""
    f = _grey(fused)
    uf, uff = _box_moments(f)
    uf2 = uf * uf  # = uf**2
    uff -= uf2
    vf = np.multiply(uff, SSIM_COV, out=uff)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    r = (SSIM_WIN - 1) // 2
    total = np.zeros(len(f))
    ufus, vsf, den = np.empty_like(f), np.empty_like(f), np.empty_like(f)  # reused for both sources
    for name, s in zip(("ir", "vi"), _grey_sources(src), strict=True):
        us, us2, vs = src.memo((CONVENTION, "box7", name), lambda s=s: _box_source(s))
        # the same operations as ((2 uf us + c1)(2 vsf + c2)) / ((uf² + us² + c1)(vf + vs + c2)), in place
        np.multiply(uf, us, out=ufus)
        np.multiply(s, f, out=vsf)
        _box_integer(vsf, out=vsf)
        vsf -= ufus
        vsf *= SSIM_COV
        vsf *= 2
        vsf += c2
        ufus *= 2
        ufus += c1
        ufus *= vsf
        np.add(uf2, us2, out=den)
        den += c1
        den2 = np.add(vf, vs, out=vsf)
        den2 += c2
        den *= den2
        ufus /= den
        total += ufus[:, r:-r, r:-r].mean(axis=(1, 2))
    return total


def _box_source(s: np.ndarray):
    """A source's 7×7 mean μ, μ² and sample variance (memoised)."""
    us, uss = _box_moments(s)
    us2 = us * us
    uss -= us2
    uss *= SSIM_COV
    return us, us2, uss


def ssim(src: Sources, fused: np.ndarray) -> np.ndarray:
    return _ssim_sum(src, fused, data_range=2.0)


def ssim_dr255(src: Sources, fused: np.ndarray) -> np.ndarray:
    return _ssim_sum(src, fused, data_range=255.0)


# --------------------------------------------------------------------------------------------- registry

_Q = "CDDFuse Evaluator on OpenCV-float32-grey + np.round inputs"
for _name, _fn, _hib, _range, _desc in [
    ("en", en, True, (0.0, 8.0), "entropy of the 256-bin grey histogram, bits"),
    ("sd", sd, True, (0.0, 127.5), "population standard deviation (divide by MN)"),
    ("sf", sf, True, (0.0, INF), "spatial frequency; means over the number of differences (not MN as VIFB)"),
    ("ag", ag, True, (0.0, INF), "average gradient, np.gradient, mean over all MN pixels (VIFB: /(M-1)(N-1))"),
    ("mi", mi, True, (0.0, 2 * math.log(256)), "contingency-table MI in nats (sklearn), SUM over IR and VI"),
    ("mse", mse, False, (0.0, 255.0**2), "(MSE(IR,F) + MSE(VI,F))/2 on 0-255"),
    ("cc", cc, True, (-1.0, 1.0), "(r(IR,F) + r(VI,F))/2, Pearson; undefined on a constant image"),
    ("psnr", psnr, True, (-INF, INF), "10 log10(max(F)^2 / MSE): the peak is the fused maximum, not 255"),
    ("scd", scd, True, (-2.0, 2.0), "corr(F-VI, IR) + corr(F-IR, VI)"),
    ("vif", vif, True, (0.0, INF),
     "Evaluator's 'VIFF', which is really Sheikh-Bovik VIFp (4 scales, sigma_n^2 = 2), SUM over sources, NaN->1"),
    ("qabf", qabf, True, (0.0, 1.0), "Xydeas-Petrovic Qabf, zero-padded Sobel, atan, the g_A = g_F -> g_F quirk"),
    ("ssim", ssim, True, (-2.0, 2.0),
     "faithful legacy SSIM: skimage<0.20 default data_range=2 on 0-255 floats (C1, C2 ~ 0), 7x7 box, SUM"),
    ("ssim_dr255", ssim_dr255, True, (-2.0, 2.0),
     "the Evaluator's SSIM with data_range=255 (what skimage>=0.20 needs): 7x7 box, sample cov, SUM"),
]:
    register(Metric(_name, CONVENTION, _fn, _hib, _range, version="1", kind="image", description=f"{_desc} ({_Q})",
                    reference="CDDFuse Evaluator outputs; tests/test_metrics_cddfuse.py",
                    aliases=("VIFF",) if _name == "vif" else ()))
