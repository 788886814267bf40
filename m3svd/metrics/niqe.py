"""NIQE (Mittal, Soundararajan, Bovik 2013, "Making a completely blind image quality analyzer"): no reference.

The distance between a multivariate Gaussian (MVG) fitted to natural-scene statistics of the frame's 96×96 blocks
and one fitted to pristine images; lower is better. Follows the authors' MATLAB release (``computequality.m``),
which the basicsr and pyiqa ports reproduce: MSCN coefficients with a 7×7 Gaussian (σ = 7/6, replicate border),
18 AGGD features per block (the coefficients and their products with the block circularly shifted right, down
and along both diagonals), at two scales (the second after MATLAB ``imresize(·, 0.5)``, bicubic, antialiased),
frame cropped to whole blocks; quality = √((μp − μd)ᵀ ((Σp + Σd)/2)⁺ (μp − μd)).

The pristine model (μp, Σp) is data, not code: it is read from a local file — basicsr's
``niqe_pris_params.npz`` (keys ``mu_pris_param``, ``cov_pris_param``; in the basicsr 1.4.2 sdist on PyPI, also
vendored by VideoFusion) or the release's ``modelparameters.mat`` (``mu_prisparam``, ``cov_prisparam``; pyiqa's
``niqe_modelparameters.mat``) — or fitted to your own pristine frames with :func:`fit_params`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import gamma as gamma_fn

from m3svd.metrics.base import MetricError

BLOCK = 96
PARAMS_FILE = "niqe_pris_params.npz"
PARAMS_ENV = "M3SVD_NIQE_PARAMS"
PARAMS_WHERE = ("the basicsr 1.4.2 sdist on PyPI ships it as basicsr/metrics/niqe_pris_params.npz (or use the "
                "NIQE release's modelparameters.mat)")
SHARPNESS_THRESHOLD = 0.75  # estimatemodelparam.m: pristine blocks kept when sharper than 0.75 × the sharpest


@dataclass(frozen=True)
class Params:
    """A pristine MVG: mean (36,) and covariance (36, 36) of the two-scale block features, and the 7×7 window
    the model was made with when its file carries one (basicsr's does; else :func:`gaussian_7x7`)."""

    mu: np.ndarray
    cov: np.ndarray
    source: str = ""
    window: np.ndarray | None = None


# -- MATLAB imresize (bicubic, antialiased) ---------------------------------------------------------------------
def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


@lru_cache(maxsize=16)
def _resize_matrix(n_in: int, scale: float) -> np.ndarray:
    """``n_out × n_in`` weights of MATLAB ``imresize`` along one axis: the bicubic kernel stretched by 1/scale
    when shrinking (antialiasing), weights normalised per output sample, symmetric (mirror) borders."""
    n_out = math.ceil(n_in * scale)
    width = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, n_out + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    weights = scale * _cubic(scale * dist) if scale < 1 else _cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])
    columns = mirror[np.mod(idx.astype(np.int64) - 1, 2 * n_in)]
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.repeat(np.arange(n_out), taps), columns.ravel()), weights.ravel())
    return matrix


def matlab_imresize(image: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(image, scale)`` (bicubic, antialiasing on) of a 2-D float array, rows first."""
    rows = _resize_matrix(image.shape[0], scale)
    cols = _resize_matrix(image.shape[1], scale)
    return (rows @ image) @ cols.T


# -- features ---------------------------------------------------------------------------------------------------
_GAM = np.arange(0.2, 10.001, 0.001)
_R_GAM = gamma_fn(2 / _GAM) ** 2 / (gamma_fn(1 / _GAM) * gamma_fn(3 / _GAM))


def gaussian_7x7() -> np.ndarray:
    """MATLAB ``fspecial('gaussian', 7, 7/6)``."""
    r = np.arange(-3, 4, dtype=np.float64)
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (7 / 6) ** 2))
    return g / g.sum()


def _aggd(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AGGD (α, β_l, β_r) per row of ``blocks`` (K×n), by the release's moment matching on a grid of α.
    A row with no negative (or no positive) value gets NaN β (and α = 0.2, where MATLAB's ``min`` over NaNs
    lands), so the covariance leaves that block out."""
    with np.errstate(invalid="ignore", divide="ignore"):
        neg, pos = blocks < 0, blocks > 0
        left = np.sqrt((blocks**2 * neg).sum(axis=1) / neg.sum(axis=1))
        right = np.sqrt((blocks**2 * pos).sum(axis=1) / pos.sum(axis=1))
        gammahat = left / right
        rhat = np.abs(blocks).mean(axis=1) ** 2 / (blocks**2).mean(axis=1)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
        distance = (_R_GAM[None, :] - rhatnorm[:, None]) ** 2
        alpha = _GAM[np.argmin(np.where(np.isnan(distance), np.inf, distance), axis=1)]
        factor = np.sqrt(gamma_fn(1 / alpha) / gamma_fn(3 / alpha))
        return alpha, left * factor, right * factor


def _block_features(blocks: np.ndarray) -> np.ndarray:
    """18 features per block (K×b×b MSCN blocks): α and mean β of the coefficients, then (α, mean, β_l, β_r)
    of their products with the block circularly shifted by (0,1), (1,0), (1,1), (1,−1)."""
    k = len(blocks)
    alpha, bl, br = _aggd(blocks.reshape(k, -1))
    features = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        product = blocks * np.roll(blocks, shift, axis=(1, 2))
        alpha, bl, br = _aggd(product.reshape(k, -1))
        with np.errstate(invalid="ignore"):
            mean = (br - bl) * gamma_fn(2 / alpha) / gamma_fn(1 / alpha)
        features += [alpha, mean, bl, br]
    return np.stack(features, axis=1)


def _mscn(image: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = ndimage.convolve(image, window, mode="nearest")
    sigma = np.sqrt(np.abs(ndimage.convolve(image * image, window, mode="nearest") - mu * mu))
    return (image - mu) / (sigma + 1), sigma


def _blocks(x: np.ndarray, size: int, rows: int, cols: int) -> np.ndarray:
    """The ``rows × cols`` grid of ``size``-pixel blocks, column by column (the release's order)."""
    grid = x[:rows * size, :cols * size].reshape(rows, size, cols, size)
    return grid.transpose(2, 0, 1, 3).reshape(rows * cols, size, size)


def features(image: np.ndarray, window: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two-scale features (K×36) of a 2-D 0–255 frame's whole 96×96 blocks, and each block's sharpness (mean
    local σ at scale 1, used to pick pristine blocks)."""
    window = gaussian_7x7() if window is None else window
    image = np.asarray(image, dtype=np.float64)
    rows, cols = image.shape[0] // BLOCK, image.shape[1] // BLOCK
    if rows * cols < 2:
        raise MetricError(f"niqe: a {image.shape[1]}×{image.shape[0]} frame holds {rows * cols} whole "
                          f"{BLOCK}×{BLOCK} block(s); NIQE needs at least 2")
    image = image[:rows * BLOCK, :cols * BLOCK]
    per_scale, sharpness = [], None
    for scale in (1, 2):
        mscn, sigma = _mscn(image, window)
        size = BLOCK // scale
        per_scale.append(_block_features(_blocks(mscn, size, rows, cols)))
        if scale == 1:
            sharpness = _blocks(sigma, size, rows, cols).mean(axis=(1, 2))
            image = matlab_imresize(image / 255.0, 0.5) * 255.0
    return np.concatenate(per_scale, axis=1), sharpness


def _mvg(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``nanmean`` and the covariance of the rows without NaN (MATLAB ``nancov``)."""
    complete = feats[~np.isnan(feats).any(axis=1)]
    if len(complete) < 2:
        raise MetricError(f"niqe: only {len(complete)} block(s) have defined features (flat or one-signed "
                          f"blocks have none); the fit needs 2")
    return np.nanmean(feats, axis=0), np.cov(complete, rowvar=False)


def score(image: np.ndarray, params: Params) -> float:
    """NIQE of one 2-D 0–255 frame against a pristine model; lower is better.

    Flat regions make the metric ill-conditioned: where a pixel equals its local mean the MSCN coefficient is 0 or
    ±1e-16 depending on the window's last bit, which moves a block's left/right spread (seen: 1.5e-3 relative on a
    JPEG with flat areas between two 7×7 windows 1e-17 apart). Hence the model file's own window is used."""
    mu, cov = _mvg(features(image, params.window)[0])
    diff = params.mu - mu
    return float(np.sqrt(diff @ np.linalg.pinv((params.cov + cov) / 2) @ diff))


def fit_params(images, window: np.ndarray | None = None, sharpness_threshold: float = SHARPNESS_THRESHOLD,
               source: str = "fitted") -> Params:
    """A pristine model from 2-D 0–255 frames (``estimatemodelparam.m``): the features of every frame's blocks
    sharper than ``sharpness_threshold`` × its sharpest block, then their mean and covariance."""
    kept = []
    for image in images:
        feats, sharpness = features(image, window)
        kept.append(feats[sharpness > sharpness_threshold * sharpness.max()])
    mu, cov = _mvg(np.concatenate(kept))
    return Params(mu, cov, source, window)


# -- the pristine model file ------------------------------------------------------------------------------------
def load_params(path: str | Path | None = None) -> Params:
    """The pristine model from ``path``, ``$M3SVD_NIQE_PARAMS``, ``$M3SVD_WEIGHTS`` or the weights registry's
    ``niqe_pris_params.npz`` (basicsr's, verified, downloaded on first use); one line naming the file and where to
    get it when absent."""
    from m3svd.flow.weights import WeightsMissing, find_weights

    try:
        found = find_weights(PARAMS_FILE, "NIQE pristine model", path, env=PARAMS_ENV, name="niqe")
    except WeightsMissing as missing:
        raise MetricError(f"{missing}; {PARAMS_WHERE}") from None
    return _read_params(found)


@lru_cache(maxsize=4)
def _read_params(path: Path) -> Params:
    if path.suffix == ".mat":
        from scipy.io import loadmat

        data = loadmat(str(path))
        keys = ("mu_prisparam", "cov_prisparam")
    else:
        data = dict(np.load(path))
        keys = ("mu_pris_param", "cov_pris_param")
    if not all(k in data for k in keys):
        raise MetricError(f"{path}: not a NIQE pristine model (expected arrays {' and '.join(keys)})")
    mu, cov = (np.asarray(data[k], dtype=np.float64) for k in keys)
    mu = mu.reshape(-1)
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise MetricError(f"{path}: NIQE model of shapes {mu.shape} and {cov.shape}; expected (36,) and (36, 36)")
    window = np.asarray(data["gaussian_window"], dtype=np.float64) if "gaussian_window" in data else None
    return Params(mu, cov, str(path), window)
