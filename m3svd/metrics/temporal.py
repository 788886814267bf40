"""Temporal-consistency metrics of a fused video: flowD, feaCD, BiSWE, MS2R, Lai warping error, tOF, flicker, TGF.

API. A temporal metric is an ordinary registry :class:`Metric` with ``kind="temporal"`` and ``span`` 2 (one value
per consecutive pair, ``N-1`` values) or 3 (one per triplet centred on frames 1..N-2, ``N-2`` values). It is
called like an image metric, on the **whole window of consecutive frames** of one clip::

    src = VideoSources(ir=ir, vi=vi, flow="dis", cache=FlowCache())   # T×H×W IR, T×H×W×3 VIS
    values = metrics.get("flowd")(fused, sources=src)            # T×H×W[×3] fused → T-1 values

:class:`VideoSources` is :class:`Sources` plus how source flows are made: ``flow`` (an estimator name or
:class:`m3svd.flow.Estimator`; default OpenCV DIS medium), ``cache`` (a :class:`m3svd.flow.FlowCache`, ``True``
for the default folder, or ``None`` for memory only) and ``resnet18`` (feaCD's weights file). Source flows and
masks are computed once per ``VideoSources`` (and once per dataset with a cache) and shared by every metric and
every fused candidate; flows on the fused video are per candidate (memoised for the last fused video seen, so
BiSWE and MS2R share them). A plain :class:`Sources` works too (DIS, no disk cache). Never pass frames of two
clips in one window: pairs would straddle the cut; padded (replicated) end frames are not added either.

Frames are read as the lineages read files: a grey fused/IR frame becomes 3 identical channels, VIS stays RGB,
values 0–255 (Lai: [0, 1]). Definitions: ``docs/temporal-metrics.md``; conventions and fixes:
``metrics/CONVENTIONS.md`` ("Temporal metrics").
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from m3svd import flow as fl
from m3svd.metrics import register
from m3svd.metrics.base import Metric, Sources

BT601 = np.array([0.299, 0.587, 0.114])


@dataclass(eq=False, kw_only=True)
class VideoSources(Sources):
    """IR/VIS windows of consecutive frames plus the flow estimator, flow cache and feaCD weights to use."""

    flow: str | fl.Estimator = "dis"
    cache: fl.FlowCache | str | Path | bool | None = None
    resnet18: str | Path | None = None

    @classmethod
    def from_clip(cls, clip, start: int = 0, stop: int | None = None, **kwargs) -> VideoSources:
        ir, vi = clip.frames(start, stop)
        return cls(ir=ir, vi=vi, **kwargs)


def _estimator(src: Sources) -> fl.Estimator:
    return src.memo(("temporal", "estimator"), lambda: fl.estimator(getattr(src, "flow", "dis")))


def _cache(src: Sources) -> fl.FlowCache | None:
    c = getattr(src, "cache", None)
    if c is True:
        return src.memo(("temporal", "cache"), fl.FlowCache)
    if isinstance(c, str | Path):
        return src.memo(("temporal", "cache"), lambda: fl.FlowCache(c))
    return c or None


def source_flows(src: Sources, which: str, est: fl.Estimator | None = None, masks: bool = True) -> fl.VideoFlows:
    """Flows (and masks) of the ``ir`` or ``vi`` source video, once per :class:`Sources` and estimator."""
    est = est or _estimator(src)
    frames = src.ir if which == "ir" else src.vi
    return src.memo(("temporal", "flows", which, est.id, masks),
                    lambda: fl.VideoFlows(frames, est, _cache(src), masks=masks, forward_only=not masks))


def fused_flows(src: Sources, fused: np.ndarray, est: fl.Estimator | None = None,
                forward_only: bool = False) -> fl.VideoFlows:
    """Flows of a fused video; the last one seen per estimator is kept, so metrics scoring it share the work."""
    est = est or _estimator(src)
    digest = hashlib.sha256(np.ascontiguousarray(fused).data).hexdigest()
    slot = ("temporal", "fused", est.id, forward_only)
    held = src._memo.get(slot)
    if held is None or held[0] != digest:
        held = src._memo[slot] = (digest, fl.VideoFlows(fused, est, None, forward_only=forward_only))
    return held[1]


# The flows each metric reads: which video (a source, or the fused one) and whether they are tOF's Farnebäck flows
# (else the sources' estimator, with masks on the sources). :func:`prefetch` computes them up front.
FLOWS = {"flowd": ("vi",), "biswe": ("ir", "vi", "fused"), "ms2r": ("ir", "vi", "fused"), "warp_error": ("vi",),
         "tgf": ("vi", "ir"), "tof": ("ir:tof", "vi:tof", "fused:tof")}
# Metrics that may run side by side on threads: numpy, OpenCV and one-image grid_sample only, whose values never
# depend on the thread (feaCD's network is left on the calling thread, as are metrics added later).
THREADED = frozenset(FLOWS) | {"flicker"}


def prefetch(src: Sources, fused: np.ndarray, names, pool=None) -> None:
    """Compute every flow (and mask) that the temporal metrics ``names`` read on ``fused`` and its sources, its
    pairs spread over ``pool`` (a ``ThreadPoolExecutor``; OpenCV, numpy and torch release the GIL), so the metrics
    then find them computed. Each flow is the one they would compute themselves: the values do not change."""
    videos = []
    for what in dict.fromkeys(w for name in names for w in FLOWS.get(name, ())):
        which, _, kind = what.partition(":")
        est = TOF_FLOW if kind == "tof" else None
        videos.append(fused_flows(src, fused, est, forward_only=est is not None) if which == "fused" else
                      source_flows(src, which, est, masks=est is None))
    pairs = [(video, i) for video in videos for i in range(len(video))]
    for _ in (pool.map if pool is not None else map)(lambda job: job[0].pair(job[1]), pairs):
        pass


def rgb(frame: np.ndarray) -> np.ndarray:
    """One frame as float64 H×W×3 (grey replicated), 0–255."""
    f = np.asarray(frame, dtype=np.float64)
    return np.repeat(f[..., None], 3, axis=2) if f.ndim == 2 else f


def grey(frame: np.ndarray) -> np.ndarray:
    """One frame as float64 BT.601 grey (the toolkit's weights, unrounded), 0–255."""
    f = np.asarray(frame, dtype=np.float64)
    return f @ BT601 if f.ndim == 3 else f


def planes(frame: np.ndarray) -> list[np.ndarray]:
    """:func:`rgb` as three contiguous float64 planes (a grey frame: one array, three times).

    Metrics sum over channels plane by plane as ``(c0 + c1) + c2``: numpy's order for the 3-channel last axis of
    :func:`rgb` frames, so the values keep every bit, without a reduction over a length-3 axis per pixel.
    """
    f = np.asarray(frame)
    if f.ndim == 2:
        p = f.astype(np.float64)
        return [p, p, p]
    return [np.ascontiguousarray(f[..., k], dtype=np.float64) for k in range(3)]


def warp_planes(ps: list[np.ndarray], grid: fl.Grid) -> list[np.ndarray]:
    """:func:`m3svd.flow.warp` of each plane (once for a repeated one)."""
    if ps[0] is ps[1] is ps[2]:
        w = grid.sample(ps[0][None])[0]
        return [w, w, w]
    return list(grid.sample(np.stack(ps)))


def _each(fn, xs: list[np.ndarray], ys: list[np.ndarray]) -> list[np.ndarray]:
    if xs[0] is xs[1] is xs[2] and ys[0] is ys[1] is ys[2]:
        r = fn(xs[0], ys[0])
        return [r, r, r]
    return [fn(x, y) for x, y in zip(xs, ys, strict=True)]


class _Frames:
    """Per-frame conversions of a video, each made once while a metric walks its pairs (keeps the last few)."""

    def __init__(self, video: np.ndarray, convert, keep: int = 3):
        self.video, self.convert, self.keep, self.held = video, convert, keep, {}

    def __getitem__(self, i: int):
        if i not in self.held:
            self.held = {j: v for j, v in self.held.items() if j > i - self.keep}
            self.held[i] = self.convert(self.video[i])
        return self.held[i]


# --------------------------------------------------------------------------------------------- flowD


def flowd(src: Sources, fused: np.ndarray, literal: bool) -> np.ndarray:
    """mean_p ‖F_t − W(F_{t−1}, O)‖₂ over the 3 channels; O on the visible source.

    ``literal`` (TemCoCo's call order): O = O^V_{t−1→t} passed to the backward warp, geometrically the wrong
    direction; otherwise O = O^V_{t→t−1}, which maps F_{t−1} onto frame t's grid.
    """
    vf = source_flows(src, "vi")
    frames = _Frames(fused, planes, keep=2)
    out = np.empty(len(fused) - 1)
    for t in range(len(fused) - 1):
        warped = warp_planes(frames[t], fl.Grid(vf.fw(t) if literal else vf.bw(t)))
        d = _each(np.subtract, frames[t + 1], warped)
        out[t] = np.sqrt((d[0] * d[0] + d[1] * d[1]) + d[2] * d[2]).mean()
    return out


# --------------------------------------------------------------------------------------------- BiSWE, MS2R


def biswe(src: Sources, fused: np.ndarray) -> np.ndarray:
    """VF-Bench BiSWE per triplet: Σ_{s=t±1} Σ M_s d_s / (Σ M_s + 1e−10), fused-video flows, masks of both sources."""
    ff = fused_flows(src, fused)
    irf, vif = source_flows(src, "ir"), source_flows(src, "vi")
    frames = _Frames(fused, planes)
    out = np.empty(len(fused) - 2)
    for t in range(1, len(fused) - 1):
        err = 0.0
        for s, o, mask in ((t - 1, ff.bw(t - 1), irf.fb_b(t - 1) & vif.fb_b(t - 1)),
                           (t + 1, ff.fw(t), irf.fb_a(t) & vif.fb_a(t))):
            a = _each(lambda c, w: np.abs(c - w), frames[t], warp_planes(frames[s], fl.Grid(o)))
            d = ((a[0] + a[1]) + a[2]) / 3  # the mean over channels
            err += float((d * mask).sum()) / (float(mask.sum()) + 1e-10)
        out[t - 1] = err
    return out


def ms2r(src: Sources, fused: np.ndarray) -> np.ndarray:
    """VF-Bench MS2R per triplet: ½ Σ_R mean |(O^F_{t→t+1} − O^F_{t−1→t}) − (O^R_{t→t+1} − O^R_{t−1→t})|."""
    ff = fused_flows(src, fused)
    refs = (source_flows(src, "ir"), source_flows(src, "vi"))
    out = np.empty(len(fused) - 2)
    for t in range(1, len(fused) - 1):
        df = ff.fw(t).astype(np.float64) - ff.fw(t - 1)
        out[t - 1] = 0.5 * sum(float(np.abs(df - (r.fw(t).astype(np.float64) - r.fw(t - 1))).mean()) for r in refs)
    return out


# --------------------------------------------------------------------------------------------- Lai, tOF


def warp_error(src: Sources, fused: np.ndarray) -> np.ndarray:
    """Lai et al.: Σ M (W(F_{t+1}, O^V_{t→t+1}) − F_t)² / (3 Σ M) on [0, 1] RGB, M = Lai's non-occlusion on V."""
    vf = source_flows(src, "vi")
    frames = _Frames(fused, lambda f: _each(np.divide, planes(f), [255.0] * 3), keep=2)
    out = np.empty(len(fused) - 1)
    for t in range(len(fused) - 1):
        m = vf.noc(t)
        d = _each(np.subtract, warp_planes(frames[t + 1], fl.Grid(vf.fw(t))), frames[t])
        d = np.stack([x[m] for x in d], axis=-1)  # the masked pixels × 3, in the order of the H×W×3 frame
        n = 3 * int(m.sum()) or d.size or 1
        out[t] = float((d * d).sum()) / n
    return out


TOF_FLOW = fl.Farneback()


def _crop8(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[:2]
    y, x = (h % 8) // 2, (w % 8) // 2
    return a[y:y + h - h % 8, x:x + w - w % 8]


def tof(src: Sources, fused: np.ndarray) -> np.ndarray:
    """TecoGAN tOF against each source, averaged: mean_p ‖O^F_{t→t+1} − O^R_{t→t+1}‖₂, Farnebäck on grey."""
    ff = fused_flows(src, fused, TOF_FLOW, forward_only=True)
    refs = (source_flows(src, "ir", TOF_FLOW, masks=False), source_flows(src, "vi", TOF_FLOW, masks=False))
    out = np.empty(len(fused) - 1)
    for t in range(len(fused) - 1):
        of = _crop8(ff.fw(t))
        ox, oy = (np.ascontiguousarray(of[..., k], dtype=np.float64) for k in (0, 1))
        total = 0.0
        for r in refs:
            rf = _crop8(r.fw(t))
            dx, dy = ox - rf[..., 0], oy - rf[..., 1]
            total += float(np.sqrt(dx * dx + dy * dy).mean())  # x² + y²: the sum over the last axis of 2
        out[t] = 0.5 * total
    return out


# --------------------------------------------------------------------------------------------- flicker, TGF


def flicker(src: Sources, fused: np.ndarray) -> np.ndarray:
    """VBench temporal flickering per pair: (255 − mean |f_{t+1} − f_t|)/255 over pixels and channels."""
    out = np.empty(len(fused) - 1)
    for t in range(len(fused) - 1):
        out[t] = (255.0 - np.abs(rgb(fused[t + 1]) - rgb(fused[t])).mean()) / 255.0
    return out


def tgf(src: Sources, fused: np.ndarray) -> np.ndarray:
    """Motion-compensated temporal-gradient fidelity (``m3svd``): ½ Σ_R Σ M |δF − δR| / Σ M, grey levels.

    δX = X_{t+1} − W(X_t, O^V_{t+1→t}): each video's change after motion compensation with the visible flow.
    M = forward–backward-consistent pixels of both sources on frame t+1. It asks the fused change to follow the
    sources' change (VideoFusion's L_var, evaluated against both sources): flicker adds to δF, a frozen output
    leaves δF = the motion residual, both are penalised.
    """
    vif, irf = source_flows(src, "vi"), source_flows(src, "ir")
    videos = [_Frames(x, grey, keep=2) for x in (fused, src.vi, src.ir)]
    out = np.empty(len(fused) - 1)
    for t in range(len(fused) - 1):
        m = vif.fb_b(t) & irf.fb_b(t)
        if not m.any():
            m = np.ones_like(m)
        warped = fl.Grid(vif.bw(t)).sample(np.stack([x[t] for x in videos]))  # the three videos, one flow
        delta = [x[t + 1] - w for x, w in zip(videos, warped, strict=True)]
        out[t] = 0.5 * sum(float(np.abs(delta[0] - d)[m].mean()) for d in delta[1:])
    return out


# --------------------------------------------------------------------------------------------- feaCD

RESNET18_FILE = "resnet18-f37072fd.pth"  # torchvision IMAGENET1K_V1
RESNET18_URL = f"https://download.pytorch.org/models/{RESNET18_FILE}"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_NETS: dict[str, object] = {}


def resnet18():
    """torchvision's ResNet-18 layout (``state_dict`` keys identical), built with torch only."""
    from torch import nn

    class Basic(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    net = nn.Module()
    net.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    net.bn1 = nn.BatchNorm2d(64)
    widths = (64, 64, 128, 256, 512)
    for i in range(4):
        stride = 1 if i == 0 else 2
        setattr(net, f"layer{i + 1}", nn.Sequential(Basic(widths[i], widths[i + 1], stride),
                                                    Basic(widths[i + 1], widths[i + 1], 1)))
    net.fc = nn.Linear(512, 1000)

    def forward(x):
        x = nn.functional.max_pool2d(nn.functional.relu(net.bn1(net.conv1(x))), 3, 2, 1)
        for i in range(4):
            x = getattr(net, f"layer{i + 1}")(x)
        return net.fc(x.mean(dim=(2, 3)))

    net.forward = forward
    return net


def find_resnet18(path: str | Path | None = None) -> Path:
    """feaCD's weights file: ``path``, ``$M3SVD_RESNET18``, ``$M3SVD_WEIGHTS`` or the registry's (verified,
    downloaded on first use)."""
    from m3svd.flow.weights import find_weights

    return find_weights(RESNET18_FILE, "feaCD backbone ResNet-18 ImageNet", path, env="M3SVD_RESNET18",
                        name="resnet18")


def load_resnet18(path: str | Path | None = None):
    """ResNet-18 in eval mode from a local file (see :mod:`m3svd.flow.weights`); one copy per file per process."""
    from m3svd.files import sha256_file
    from m3svd.flow.weights import load_state_dict

    p = find_resnet18(path)
    key = str(p.resolve())
    if key not in _NETS:
        net = resnet18()
        net.load_state_dict(load_state_dict(p, "ResNet-18"), strict=True)
        net.eval()
        net.sha256 = sha256_file(p)
        _NETS[key] = net
    return _NETS[key]


def logits(net, frames: np.ndarray, normalise: bool):
    """1000-d logits per frame (float32 tensor N×1000): 0–255 input (TemCoCo) or ImageNet-normalised.

    One frame per forward pass, so a frame's logits never depend on which frames share its batch (a cached
    value equals a recomputed one).
    """
    import torch

    out = []
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    with torch.inference_mode():
        for f in frames:
            x = torch.from_numpy(rgb(f).astype(np.float32)).permute(2, 0, 1)[None]
            out.append(net(((x - mean) / std if normalise else x).contiguous())[0])
    return torch.stack(out) if out else torch.zeros(0, 1000)


def source_logits(src: Sources, net, which: str, literal: bool):
    """Logits of a source video: once per :class:`Sources`, and per frame in the disk cache when there is one."""
    import torch

    frames = src.vi if which == "vi" else src.ir

    def compute():
        cache = _cache(src)
        if cache is None:
            return logits(net, frames, not literal)
        ns = f"resnet18-{net.sha256[:12]}-{'raw' if literal else 'imagenet'}"
        keys = [fl.frame_hash(f) for f in frames]
        found = [cache.get(ns, k) for k in keys]
        todo = [i for i, e in enumerate(found) if e is None]
        fresh = logits(net, frames[todo], not literal)
        for j, i in enumerate(todo):
            found[i] = {"logits": fresh[j].numpy()}
            cache.put(ns, keys[i], found[i])
        return torch.stack([torch.from_numpy(np.asarray(e["logits"])) for e in found])

    return src.memo(("temporal", "logits", which, net.sha256, literal), compute)


def feacd(src: Sources, fused: np.ndarray, literal: bool) -> np.ndarray:
    """Σ_{R∈{V,IR}} [1 − cos(m_F, m_R)], m_X = f(X_{t−1}) − f(X_t), f = ResNet-18 logits.

    ``literal`` (TemCoCo): raw 0–255 input and ``cosine_similarity(dim=0)`` over the batch axis of size 1, i.e.
    the mean over logits of 1 − sign agreement (range [0, 4]). Otherwise ImageNet-normalised input and the cosine
    of the 1000-d vectors (range [0, 4]).
    """
    import torch

    net = load_resnet18(getattr(src, "resnet18", None))
    lf = logits(net, fused, not literal)
    refs = [source_logits(src, net, which, literal) for which in ("vi", "ir")]
    out = np.empty(len(fused) - 1)
    for t in range(len(fused) - 1):
        mf = (lf[t] - lf[t + 1])[None]
        total = 0.0
        for lr in refs:
            mr = (lr[t] - lr[t + 1])[None]
            if literal:
                total += float((1 - torch.nn.functional.cosine_similarity(mf, mr, dim=0)).mean())
            else:
                total += float(1 - torch.nn.functional.cosine_similarity(mf.double(), mr.double(), dim=1)[0])
        out[t] = total
    return out


# --------------------------------------------------------------------------------------------- registry


# the golden values stored for temporal metrics: TemCoCo's flowD and VF-Bench's BiSWE and MS2R, on stored flows
_CHECKED = {"flowd": "TemCoCo's code", "biswe": "VF-Bench's code", "ms2r": "VF-Bench's code"}


def _register(name, convention, compute, higher, value_range, span, description):
    reference = (f"{_CHECKED[name]} on stored flows; tests/test_temporal_golden.py" if name in _CHECKED else None)
    register(Metric(name, convention, compute, higher_is_better=higher, value_range=value_range, kind="temporal",
                    span=span, description=description, reference=reference))


_FLOWD_MAX = 255 * math.sqrt(3)
for _conv in ("temcoco", "m3svd"):
    _lit = _conv == "temcoco"
    _register("flowd", _conv, partial(flowd, literal=_lit), False, (0.0, _FLOWD_MAX), 2,
              "mean ‖F_t − W(F_{t−1})‖ over RGB, visible-source flow"
              + (" passed in TemCoCo's call order (t−1→t)" if _lit else " t→t−1 (correct backward warp)"))
    _register("feacd", _conv, partial(feacd, literal=_lit), False, (0.0, 4.0), 2,
              "ResNet-18 logit-change disagreement with V and IR"
              + (": TemCoCo's dim-0 cosine (sign agreement), raw 0–255 input" if _lit
                 else ": 1 − vector cosine, ImageNet-normalised input"))
for _conv in ("vfbench", "m3svd"):
    _register("biswe", _conv, biswe, False, (0.0, 510.0), 3,
              "VF-Bench bi-directional self-warping error (fused-video flow, both sources' fw-bw masks)")
    _register("ms2r", _conv, ms2r, False, (0.0, math.inf), 3,
              "VF-Bench motion smoothness: mean |second-order flow of F − that of each source|, px/frame²")
for _conv in ("lai", "m3svd"):
    _register("warp_error", _conv, warp_error, False, (0.0, 1.0), 2,
              "Lai et al. 2018 masked warping MSE on [0,1], flow and occlusion on the visible source")
for _conv in ("tecogan", "m3svd"):
    _register("tof", _conv, tof, False, (0.0, math.inf), 2,
              "TecoGAN tOF: mean ‖Farnebäck flow of F − that of each source‖, averaged over IR and V, px")
for _conv in ("vbench", "m3svd"):
    _register("flicker", _conv, flicker, True, (0.0, 1.0), 2,
              "VBench temporal flickering (255 − mean |f_{t+1} − f_t|)/255; rewards static output")
_register("tgf", "m3svd", tgf, False, (0.0, 255.0), 2,
          "motion-compensated temporal-gradient fidelity: fused change vs each source's change, grey levels")

# Metrics a frozen (static) output can win, measured on the M3SVD test clips (metrics/CONVENTIONS.md): a protocol
# that names one of them must also name ``tgf`` (penalises frozen output on every clip tried) or ``feacd``.
FROZEN_REWARDED = ("biswe", "flicker", "flowd", "warp_error", "ms2r", "tof")
