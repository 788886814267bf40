"""Fast-FMI (Haghighat & Razian 2014): the vectorised windows against a literal per-window reading of ``fmi.m``.

No lineage's golden files hold FMI values (``golden/README.md``), so the reference here is the algorithm as
``fmi.m`` states it, loop by loop, for every feature and for both equality tests (Tang's quirk and the fix).
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


@pytest.mark.parametrize("kind", ["none", "dct", "wavelet", "edge"])
@pytest.mark.parametrize("reuse_normalised", [True, False])
def test_vectorised_fmi_equals_the_literal_per_window_loop(kind, reuse_normalised):
    feature = T.fmi_feature(kind)
    ir, vi, fused = (feature(x) for x in _frames())
    got = T.fmi_score(*(T.fmi_windows(x) for x in (ir, vi, fused)), reuse_normalised=reuse_normalised)
    assert got == pytest.approx(_literal_fmi(ir, vi, fused, reuse_normalised), rel=1e-12, abs=1e-14)


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
