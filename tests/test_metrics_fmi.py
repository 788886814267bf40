"""Fast-FMI (Haghighat & Razian 2014): the registered metrics against a literal per-window reading of ``fmi.m``.

No lineage's golden files hold FMI values, so the reference here is the algorithm as ``fmi.m`` states it, loop by
loop, for both equality tests (Tang's quirk and the fix), on features the reference makes itself: the DCT from its
cosine matrix, the discrete-Meyer DWT as ``dwt2.m`` does it (symmetric extension, convolution, keep every second
sample; only the 62 filter taps come from PyWavelets). The ``edge`` feature is the one exception: the reference
uses the code's own port of MATLAB ``edge()``, which is checked against nothing (its metric cards say so).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from m3svd import metrics
from m3svd.metrics.conventions import tang as T


def _rerange(x):
    lo, hi = x.min(), x.max()
    return np.ones_like(x) if hi == lo else (x - lo) / (hi - lo)


def _fmi_pair(s, f):
    """One window's normalised MI of source window ``s`` and fused window ``f`` (both already min–max'ed)."""
    ps, pf = s.flatten("F") / s.sum(), f.flatten("F") / f.sum()
    n = len(ps)
    cs, cf = np.cumsum(ps), np.cumsum(pf)
    ts, tf = ps - ps.mean(), pf - pf.mean()
    c = 0.0 if (ts * tf).sum() == 0 else (ts * tf).sum() / math.sqrt((ts * ts).sum() * (tf * tf).sum())
    idx = np.arange(1, n + 1)
    sd_s = math.sqrt((idx**2 * ps).sum() - (idx * ps).sum() ** 2)
    sd_f = math.sqrt((idx**2 * pf).sum() - (idx * pf).sum() ** 2)

    def upper(x, y):
        return 0.5 * (x + y - abs(x - y))

    def lower(x, y):
        return 0.5 * (x + y - 1 + abs(x + y - 1))

    bound = upper if c >= 0 else lower
    if c == 0 or sd_s == 0 or sd_f == 0:
        weight = 0.0
    else:
        cov = sum(bound(cf[i], cs[j]) - cf[i] * cs[j] for i in range(n) for j in range(n))
        weight = c / (cov / (sd_f * sd_s))
    joint = 0.0
    for i in range(n):
        for j in range(n):
            up = bound(cf[i], cs[j])
            left = bound(cf[i - 1], cs[j]) if i else 0.0
            down = bound(cf[i], cs[j - 1]) if j else 0.0
            corner = bound(cf[i - 1], cs[j - 1]) if i and j else 0.0
            p = weight * (up - left - down + corner) + (1 - weight) * pf[i] * ps[j]
            if p != 0:  # real(−p·log2 p): a negative p contributes −p·log2|p|
                joint += -p * math.log2(abs(p))
    h_s = -sum(p * math.log2(p) for p in ps if p != 0)
    h_f = -sum(p * math.log2(p) for p in pf if p != 0)
    mi = h_s + h_f - joint
    return 0.0 if mi == 0 else 2 * mi / (h_s + h_f)


def _literal_fmi(a, b, f, reuse_normalised):
    """``fmi.m``'s loop over 3×3 'valid' windows of the feature images ``a`` (IR), ``b`` (VI), ``f``."""
    m, n = a.shape
    values = []
    for p in range(1, m - 1):
        for q in range(1, n - 1):
            sa, sb, sf = (x[p - 1:p + 2, q - 1:q + 2].copy() for x in (a, b, f))
            if np.array_equal(sa, sf):
                fmi_af = 1.0
            else:
                normalised_f = _rerange(sf)
                fmi_af = _fmi_pair(_rerange(sa), normalised_f)
                if reuse_normalised:  # fmi.m normalises fSub in place before testing bSub == fSub
                    sf = normalised_f
            fmi_bf = 1.0 if np.array_equal(sb, sf) else _fmi_pair(_rerange(sb), _rerange(sf))
            values.append((fmi_af + fmi_bf) / 2)
    return float(np.mean(values))


def _frames():
    rng = np.random.default_rng(7)
    ir = rng.integers(0, 256, (13, 15)).astype(np.float64)
    vi = rng.integers(0, 256, (13, 15)).astype(np.float64)
    vi[:5, :6] = 40.0  # flat windows: equal to F below in VI only, and flat after normalising
    fused = np.round(0.5 * ir + 0.5 * vi)
    fused[:5, :6] = 40.0
    fused[8:, 9:] = ir[8:, 9:]  # windows equal to IR's
    return ir, vi, fused


def _dct2(x):
    """MATLAB ``dct2``: the orthonormal DCT-II matrix applied to the columns, then the rows."""
    def matrix(n):
        k, j = np.mgrid[0:n, 0:n]
        c = np.sqrt(2 / n) * np.cos(np.pi * (2 * j + 1) * k / (2 * n))
        c[0] /= np.sqrt(2)
        return c

    return matrix(x.shape[0]) @ x @ matrix(x.shape[1]).T


def _dwt_down(x, taps, axis):
    """``dwt.m``'s convdown along ``axis``: half-point symmetric extension by L − 1, 'valid' convolution, samples
    2, 4, … (1-based) up to n + L − 1."""
    n, length = x.shape[axis], len(taps)
    pad = [(0, 0), (0, 0)]
    pad[axis] = (length - 1, length - 1)
    y = np.pad(x, pad, mode="symmetric")
    z = np.apply_along_axis(lambda v: np.convolve(v, taps, mode="valid"), axis, y)
    return np.take(z, np.arange(1, n + length - 1, 2), axis=axis)


def _dmey_feature(x):
    """``fmi.m``'s 'wavelet' feature: ``dwt2(x, 'dmey')`` tiled [cA cH; cV cD], min–max rescaled to [0, 1]."""
    import pywt

    lo, hi = np.array(pywt.Wavelet("dmey").dec_lo), np.array(pywt.Wavelet("dmey").dec_hi)
    rows_lo, rows_hi = _dwt_down(x, lo, axis=1), _dwt_down(x, hi, axis=1)
    ca, ch = _dwt_down(rows_lo, lo, axis=0), _dwt_down(rows_lo, hi, axis=0)
    cv, cd = _dwt_down(rows_hi, lo, axis=0), _dwt_down(rows_hi, hi, axis=0)
    tiled = np.block([[ca, ch], [cv, cd]])
    return (tiled - tiled.min()) / (tiled.max() - tiled.min())


FEATURES = {"none": lambda x: x, "dct": _dct2, "wavelet": _dmey_feature, "edge": T.fmi_feature("edge")}
# registered name per (convention, feature)
REGISTERED = {("tang", "edge"): "fmi_pixel", ("tang", "dct"): "fmi_dct", ("tang", "wavelet"): "fmi_w",
              ("m3svd", "none"): "fmi_pixel", ("m3svd", "edge"): "fmi_edge", ("m3svd", "dct"): "fmi_dct",
              ("m3svd", "wavelet"): "fmi_w"}


@pytest.mark.parametrize("convention, kind", list(REGISTERED))
def test_registered_fmi_equals_the_literal_per_window_loop_on_its_own_features(convention, kind):
    ir, vi, fused = _frames()
    feature = FEATURES[kind]
    expected = _literal_fmi(feature(ir), feature(vi), feature(fused), reuse_normalised=convention == "tang")
    metric = metrics.get(REGISTERED[convention, kind], convention)
    got = metric(fused.astype(np.uint8), ir=ir.astype(np.uint8), vi=vi.astype(np.uint8))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-14)


def test_the_quirk_changes_the_value_on_these_frames():
    """The frames hold windows where the two equality tests disagree, so the tang/m3svd pairs above differ."""
    ir, vi, fused = _frames()
    assert _literal_fmi(ir, vi, fused, True) != pytest.approx(_literal_fmi(ir, vi, fused, False), rel=1e-6)


def test_reference_features_match_the_libraries_the_code_uses():
    """The hand-made DCT and DWT agree with scipy's dctn and PyWavelets' dwt2 (what the code calls), so a failure
    above points at the FMI windows, not at the features."""
    ir, _, _ = _frames()
    np.testing.assert_allclose(_dct2(ir), T.fmi_feature("dct")(ir), rtol=0, atol=1e-9)
    np.testing.assert_allclose(_dmey_feature(ir), T.dmey_feature(ir), rtol=0, atol=1e-12)


def test_wavelet_feature_is_the_tiled_one_level_dmey_transform_in_0_1():
    ir, _, _ = _frames()
    feature = T.dmey_feature(ir)
    side = (np.array(ir.shape) + 62 - 1) // 2  # MATLAB dwt2 with a 62-tap filter: floor((n + 61) / 2) per band
    assert feature.shape == tuple(2 * side)
    assert feature.min() == 0.0 and feature.max() == 1.0
    np.testing.assert_array_equal(T.dmey_feature(np.zeros((9, 9))), np.ones((70, 70)))  # flat: all ones


def test_fmi_w_is_registered_in_both_conventions_and_scores_a_copy_of_the_sources_highest():
    ir, vi, fused = (np.stack([x, x]).astype(np.uint8) for x in _frames())
    for convention in ("tang", "m3svd"):
        metric = metrics.get("fmi_w", convention)
        assert metric.higher_is_better and metric.value_range == (0.0, 1.0)
        mixed = metric(fused, ir=ir, vi=vi)
        assert mixed.shape == (2,) and np.all((0 < mixed) & (mixed < 1))
        assert np.all(metric(ir, ir=ir, vi=ir) == 1.0)
