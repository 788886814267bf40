"""The leaderboard's image metrics in torch: the ``m3svd`` convention on a GPU (or CPU), batched, same numbers.

Users reach it through ``metrics.score(names, fused, sources, device="cuda")`` (and ``m3svd evaluate
--metrics-device``), which sends the metrics this module :func:`serves` here and the rest to numpy.
``TorchScorer(device="cuda").score(fused, ir=ir, vi=vi)`` returns the per-frame values of :data:`METRICS` — the
``m3svd`` convention's definitions, recomputed with torch ops on ``N`` frames at once. In float64 it agrees
with the numpy registry (``m3svd.metrics.get(name)``) to rounding (tests: relative 1e-9); float32 is faster
on GPUs with slow float64 and deviates by the amounts ``tests/test_metrics_torch.py`` asserts and
``benchmarks/metrics_torch.py`` prints. What stays exact in either dtype: the grey frames (a lookup table
built from the numpy reader, so even ties round as there), histograms, EN and MI, and the Sobel maps.

Source-only work (grey sources, their histograms and entropies, Sobel/Nabf maps, SSIM moments, the VIF
reference pyramid) is computed once per :class:`TorchSources` and reused for every fused candidate.
A value that is undefined (a constant frame) is non-finite, as in ``MetricUndefined.values``; never 0.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from m3svd.metrics.base import MetricError, _batch
from m3svd.metrics.pixel import (
    QABF_GAMMA_A,
    QABF_GAMMA_G,
    QABF_KAPPA_A,
    QABF_KAPPA_G,
    QABF_SIGMA_A,
    QABF_SIGMA_G,
    VIF_EPS,
    VIF_SIGMA_NSQ,
    VIF_SIZES,
    gaussian_window,
)

METRICS = ("en", "sd", "sf", "ag", "mi", "mse", "psnr", "cc", "scd", "vif", "qabf", "nabf", "ssim")
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
_GREY_LUT: torch.Tensor | None = None


def _grey_lut() -> torch.Tensor:
    """The numpy reader's grey level of every RGB triple (16 MiB, built once): bit-exact, ties included."""
    global _GREY_LUT
    if _GREY_LUT is None:
        from m3svd.metrics.conventions.m3svd import bt601_grey

        levels = np.arange(256, dtype=np.uint8)
        rgb = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)  # 256×256×256×3
        _GREY_LUT = torch.from_numpy(bt601_grey(rgb).reshape(-1))
    return _GREY_LUT


def grey(frames: torch.Tensor) -> torch.Tensor:
    """``uint8`` N×H×W×3 RGB (or N×H×W grey) on any device → ``uint8`` grey, equal to ``bt601_grey``."""
    if frames.ndim == 3:
        return frames
    lut = _grey_lut().to(frames.device)
    f = frames.long()
    return lut[(f[..., 0] << 16) | (f[..., 1] << 8) | f[..., 2]]


# --------------------------------------------------------------------------------------------- building blocks
def _entropy(counts: torch.Tensor) -> torch.Tensor:
    """−Σ p log2 p per row of ``N×bins`` counts (empty bins skipped)."""
    p = counts.double() / counts.sum(dim=1, keepdim=True)
    return -(p * torch.where(p > 0, torch.log2(p), 0.0)).sum(dim=1)


def _hist(g: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """Per-frame histograms of integer levels: ``N×…`` long → ``N×bins``."""
    n = len(g)
    offsets = torch.arange(n, device=g.device)[:, None] * bins
    return torch.bincount((g.reshape(n, -1) + offsets).reshape(-1), minlength=n * bins).reshape(n, bins)


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=(1, 2), keepdim=True)
    b = b - b.mean(dim=(1, 2), keepdim=True)
    return (a * b).sum(dim=(1, 2)) / torch.sqrt((a * a).sum(dim=(1, 2)) * (b * b).sum(dim=(1, 2)))


def _separable(x: torch.Tensor, taps: torch.Tensor, pad: str | None) -> torch.Tensor:
    """Correlation of N×H×W ``x`` with ``taps ⊗ taps``: ``pad`` ``"replicate"`` (same size) or None ('valid')."""
    k = len(taps)
    x = x[:, None]
    if pad is not None:
        r = k // 2
        x = F.pad(x, (r, r, r, r), mode=pad)
    elif x.shape[-1] < k or x.shape[-2] < k:  # too small for one window: empty, as correlate_valid
        return x.new_zeros((len(x), max(x.shape[-2] - k + 1, 0), max(x.shape[-1] - k + 1, 0)))
    x = F.conv2d(x, taps.view(1, 1, k, 1))
    return F.conv2d(x, taps.view(1, 1, 1, k))[:, 0]


def _sobel(x: torch.Tensor, pad: str, kernels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Correlation with two 3×3 ``kernels`` (2×3×3) after 1-pixel ``pad`` (``"constant"`` or ``"reflect"``)."""
    out = F.conv2d(F.pad(x[:, None], (1, 1, 1, 1), mode=pad), kernels[:, None])
    return out[:, 0], out[:, 1]


def serves(metric) -> bool:
    """Whether ``metric`` (a registered :class:`~m3svd.metrics.Metric`) has an implementation here."""
    return metric.convention == "m3svd" and metric.name in METRICS


@functools.lru_cache(maxsize=8)
def scorer(names: tuple[str, ...], device: str) -> TorchScorer:
    """One float64 :class:`TorchScorer` per metric set and device, kept: its filter taps are uploaded once."""
    return TorchScorer(names, device=device)


@dataclass(eq=False)
class TorchSources:
    """Grey IR/VIS on the scorer's device, with a memo of source-only quantities."""

    ir: torch.Tensor  # N×H×W uint8
    vi: torch.Tensor
    memo: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.ir)

    def get(self, key, compute):
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]


class TorchScorer:
    """The ``m3svd`` convention's :data:`METRICS` on ``device`` in ``dtype`` (float64 default, or float32)."""

    def __init__(self, metrics=METRICS, device: str = "cpu", dtype: torch.dtype = torch.float64):
        unknown = sorted(set(metrics) - set(METRICS))
        if unknown:
            raise MetricError(f"no torch implementation of {unknown[0]!r}; it has {', '.join(METRICS)}")
        if dtype not in (torch.float32, torch.float64):
            raise MetricError(f"torch metrics run in float32 or float64, not {dtype}")
        self.metrics = tuple(metrics)
        self.device = torch.device(device)
        self.dtype = dtype
        tensor = lambda a: torch.tensor(np.asarray(a), dtype=dtype, device=self.device)  # noqa: E731
        self._ssim_taps = tensor(gaussian_window(11, 1.5))
        self._vif_taps = [tensor(gaussian_window(n, n / 5.0)) for n in VIF_SIZES]
        sobel = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
        self._qabf_kernels = tensor(np.stack([-sobel, sobel.T]))  # sx = −gx, sy = gy (pixel.sobel_strength_angle)
        self._nabf_kernels = tensor(np.stack([sobel / 8, sobel.T / 8]))  # gv, gh (tang.nabf_maps)

    # ----------------------------------------------------------------------------------------- inputs
    def _frames(self, name: str, frames, data_range: float | None) -> torch.Tensor:
        a, _ = _batch(name, frames, data_range)  # the registry's conversion to 8-bit levels, so values agree
        return grey(torch.from_numpy(a).to(self.device))

    def sources(self, *, ir, vi, data_range: float | None = None) -> TorchSources:
        """Upload and grey the sources once; pass the result to :meth:`score` for every candidate. Keyword-only,
        as :class:`m3svd.metrics.Sources`: a swapped pair would score silently."""
        g_ir, g_vi = self._frames("IR", ir, data_range), self._frames("VIS", vi, data_range)
        if g_ir.shape != g_vi.shape:
            raise MetricError(f"IR frames {tuple(g_ir.shape)} and VIS frames {tuple(g_vi.shape)} differ in size")
        return TorchSources(g_ir, g_vi)

    def score(self, fused, *, ir=None, vi=None, sources: TorchSources | None = None,
              data_range: float | None = None) -> dict[str, np.ndarray]:
        """Per-frame float64 values of every metric (``{name: (N,)}``, a batch even for one image); non-finite
        where undefined. Inputs as :mod:`m3svd.metrics.inputs` accepts them."""
        if sources is None:
            if ir is None or vi is None:
                raise MetricError("torch metrics need the IR and VIS sources (ir=..., vi=..., or a TorchSources)")
            sources = self.sources(ir=ir, vi=vi, data_range=data_range)
        f = self._frames("fused", fused, data_range)
        if f.shape != sources.ir.shape:
            raise MetricError(f"fused frames {tuple(f.shape)} do not match sources {tuple(sources.ir.shape)}")
        with torch.inference_mode():
            return {name: getattr(self, f"_{name}")(sources, f).double().cpu().numpy() for name in self.metrics}

    # ----------------------------------------------------------------------------------------- helpers
    def _float(self, g: torch.Tensor) -> torch.Tensor:
        return g.to(self.dtype)

    def _src(self, s: TorchSources) -> tuple[torch.Tensor, torch.Tensor]:
        return s.get("float", lambda: (self._float(s.ir), self._float(s.vi)))

    def _src_entropy(self, s: TorchSources):
        return s.get("entropy", lambda: (_entropy(_hist(s.ir.long())), _entropy(_hist(s.vi.long()))))

    # ----------------------------------------------------------------------------------------- metrics
    def _en(self, s, f):
        return _entropy(_hist(f.long()))

    def _sd(self, s, f):
        return self._float(f).std(dim=(1, 2), unbiased=False)

    def _sf(self, s, f):
        x = self._float(f)
        rf, cf = x.diff(dim=1), x.diff(dim=2)
        return torch.sqrt((rf * rf).mean(dim=(1, 2)) + (cf * cf).mean(dim=(1, 2)))

    def _ag(self, s, f):
        x = self._float(f)
        gy, gx = torch.gradient(x, dim=(1, 2))
        return torch.sqrt((gx * gx + gy * gy) / 2).mean(dim=(1, 2))

    def _mi(self, s, f):
        h_ir, h_vi = self._src_entropy(s)
        fl = f.long()
        h_f = _entropy(_hist(fl))
        return (h_f + h_ir - _entropy(_hist((fl << 8) | s.ir.long(), 65536))
                + h_f + h_vi - _entropy(_hist((fl << 8) | s.vi.long(), 65536)))

    def _mse(self, s, f):
        a, b = self._src(s)
        x = self._float(f) / 255
        da, db = x - a / 255, x - b / 255
        return ((da * da).mean(dim=(1, 2)) + (db * db).mean(dim=(1, 2))) / 2

    def _psnr(self, s, f):
        return 20 * torch.log10(1.0 / torch.sqrt(self._mse(s, f)))

    def _cc(self, s, f):
        a, b = self._src(s)
        x = self._float(f)
        return (_pearson(a, x) + _pearson(b, x)) / 2

    def _scd(self, s, f):
        a, b = self._src(s)
        x = self._float(f)
        return _pearson(x - b, a) + _pearson(x - a, b)

    # SSIM: Gaussian 11/1.5, replicate padding, same-size map, L = 255 (m3svd's fix of Tang's constants)
    def _moments(self, x):
        mu = _separable(x, self._ssim_taps, "replicate")
        return mu, _separable(x * x, self._ssim_taps, "replicate") - mu * mu

    def _ssim(self, s, f):
        a, b = self._src(s)
        ma, mb = s.get("ssim", lambda: (self._moments(a), self._moments(b)))
        x = self._float(f)
        mx, vx = self._moments(x)
        total = 0.0
        for y, (my, vy) in ((a, ma), (b, mb)):
            cxy = _separable(x * y, self._ssim_taps, "replicate") - mx * my
            m = ((2 * mx * my + _C1) * (2 * cxy + _C2)) / ((mx * mx + my * my + _C1) * (vx + vy + _C2))
            total = total + 0.5 * m.mean(dim=(1, 2))
        return total

    # VIFp (LIVE vifp_mscale): 4 scales, 'valid' Gaussian filtering, decimation by 2, sigma_n^2 = 2
    def _pyramid(self, x):
        out = []
        for scale, taps in enumerate(self._vif_taps):
            if scale:
                x = _separable(x, taps, None)[:, ::2, ::2]
            mu = _separable(x, taps, None)
            var = (_separable(x * x, taps, None) - mu * mu).clamp_(min=0.0)
            out.append((x, mu, var))
        return out

    def _vif_reference(self, x):
        return [(p, mu, var, torch.log10(1.0 + torch.where(var < VIF_EPS, 0.0, var) / VIF_SIGMA_NSQ).sum(dim=(1, 2)))
                for p, mu, var in self._pyramid(x)]

    def _vif(self, s, f):
        a, b = self._src(s)
        refs = s.get("vif", lambda: (self._vif_reference(a), self._vif_reference(b)))
        pyramid = self._pyramid(self._float(f))
        total = 0.0
        for ref in refs:
            num = den = 0.0
            for taps, (r, mu1, s1, den_s), (d, mu2, s2) in zip(self._vif_taps, ref, pyramid, strict=True):
                s12 = _separable(r * d, taps, None) - mu1 * mu2
                g = s12 / (s1 + VIF_EPS)
                valid = (s1 >= VIF_EPS) & (s2 >= VIF_EPS) & (g >= 0)
                sv = (s2 - g * s12).clamp_(min=VIF_EPS) + VIF_SIGMA_NSQ
                term = torch.where(valid, torch.log10(1.0 + g * g * s1 / sv), 0.0)
                num = num + term.sum(dim=(1, 2))
                den = den + den_s
            total = total + num / den
        return total

    # Qabf (Xydeas-Petrovic), zero-padded Sobel, m3svd's fix: strength ratio 1 where g_source = g_F
    def _qabf_maps(self, x):
        sx, sy = _sobel(x, "constant", self._qabf_kernels)
        angle = torch.where(sx != 0, torch.atan(sy / torch.where(sx != 0, sx, 1.0)), math.pi / 2)
        return torch.sqrt(sx * sx + sy * sy), angle

    def _qabf(self, s, f):
        a, b = self._src(s)
        (ga, aa), (gb, ab) = s.get("qabf", lambda: (self._qabf_maps(a), self._qabf_maps(b)))
        gf, af = self._qabf_maps(self._float(f))

        def preservation(g, angle):
            rel = torch.where(g != gf, torch.minimum(g, gf) / torch.maximum(g, gf), 1.0)
            orient = 1 - torch.abs(angle - af) / (math.pi / 2)
            q_g = QABF_GAMMA_G / (1 + torch.exp(QABF_KAPPA_G * (rel - QABF_SIGMA_G)))
            return q_g * QABF_GAMMA_A / (1 + torch.exp(QABF_KAPPA_A * (orient - QABF_SIGMA_A)))

        num = (preservation(ga, aa) * ga + preservation(gb, ab) * gb).sum(dim=(1, 2))
        return num / (ga + gb).sum(dim=(1, 2))

    # Nabf (Shreyamsha Kumar) with the fused image in its place (m3svd's fix of Tang's argument order)
    def _nabf_maps(self, x):
        gv, gh = _sobel(x, "reflect", self._nabf_kernels)
        both_zero = (gv == 0) & (gh == 0)
        return torch.sqrt(gh * gh + gv * gv), torch.where(both_zero, 0.0, torch.atan(gv / gh))

    def _nabf(self, s, f):
        a, b = self._src(s)
        (ga, aa), (gb, ab) = s.get("nabf", lambda: (self._nabf_maps(a), self._nabf_maps(b)))
        gf, af = self._nabf_maps(self._float(f))

        def q(gs, as_):
            safe = torch.where((gs == 0) | (gf == 0), 1.0, gs)
            ratio = torch.where(gs > gf, gf / safe, gs / torch.where(gf == 0, 1.0, gf))
            gr = torch.where((gs == 0) | (gf == 0), 0.0, ratio)
            ar = torch.abs(torch.abs(as_ - af) - math.pi / 2) * 2 / math.pi
            qg = 0.9999 / (1 + torch.exp(-19 * (gr - 0.5)))
            qa = 0.9995 / (1 + torch.exp(-22 * (ar - 0.5)))
            return torch.sqrt(qg * qa)

        wa = torch.where(ga >= 2, ga ** 1.5, 0.001)
        wb = torch.where(gb >= 2, gb ** 1.5, 0.001)
        n = (gf > ga) & (gf > gb)
        num = torch.where(n, (1 - q(ga, aa)) * wa + (1 - q(gb, ab)) * wb, 0.0).sum(dim=(1, 2))
        return num / (wa + wb).sum(dim=(1, 2))
