"""Optical flow for temporal metrics: estimators behind one interface, backward warping, occlusion masks, a cache.

Conventions (``docs/temporal-metrics.md``), fixed for every estimator:

- A flow is ``float32 H×W×2``, channel 0 = dx (+ right), 1 = dy (+ down), in pixels, defined on the grid of the
  **first** frame of the pair: ``estimator(a, b)(p)`` points from p in ``a`` to its match in ``b``.
- :func:`warp` is the backward warp ``W(X, O)(p) = X(p + O(p))``, bilinear, pixel centres at integer
  coordinates, coordinates clamped to the border (VF-Bench ``flow_warp``: ``align_corners=True``, ``'border'``).
  ``warp(X_b, estimator(a, b))`` lands on frame ``a``'s grid.
- Every flow is rounded to a multiple of :data:`QUANTUM` (1/16 px) when it is made, with or without the cache, so
  a cached result equals an uncached one bit for bit and the golden flows (stored on that grid) pass unchanged.

Estimators: :class:`DIS` (default, offline, deterministic), :class:`Farneback`, :func:`raft` (torchvision RAFT
architecture, weights from a local file, sha256 recorded), :class:`TorchFlow` (the adapter for any flow network a
user supplies, e.g. SEA-RAFT: :func:`sea_raft`), :class:`Lookup` (stored flows, for conformance tests). Each has a
``params`` dict recorded with results and an ``id`` that keys the cache.

:class:`VideoFlows` gives the forward/backward flows and occlusion masks of consecutive frames of one video,
computed on demand, kept in memory and, given a :class:`FlowCache`, on disk keyed by content hash and estimator id.
"""

from __future__ import annotations

import hashlib
import json
import threading
import zipfile
from pathlib import Path

import cv2
import numpy as np

from m3svd.errors import M3SVDError
from m3svd.files import atomic_bytes, atomic_path
from m3svd.paths import default_root

QUANTUM = 1.0 / 16
FB_THRESHOLD = 1.0  # VF-Bench BiSWE_Evaluator(occ_threshold=1.0)
MASK_VERSION = "1"

__all__ = ["DIS", "FlowCache", "FlowError", "Farneback", "Grid", "Lookup", "TorchFlow", "VideoFlows", "estimator",
           "fb_mask", "lai_noc_mask", "pair_masks", "raft", "sea_raft", "warp"]


class FlowError(M3SVDError, ValueError):
    """A flow estimator got frames it cannot use, or an unknown estimator name."""


def grey(frame: np.ndarray) -> np.ndarray:
    """8-bit grey for the classical estimators: OpenCV's fixed-point BT.601 (``COLOR_RGB2GRAY``) on RGB."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        raise FlowError(f"flow: expected uint8 frames, found {frame.dtype}")
    if frame.ndim == 2:
        return frame
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)
    raise FlowError(f"flow: expected H×W or H×W×3 frames, found shape {frame.shape}")


def frame_hash(frame: np.ndarray) -> str:
    a = np.ascontiguousarray(frame)
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()


def quantise(flow: np.ndarray) -> np.ndarray:
    """Flow → int16 multiples of :data:`QUANTUM` (±2047 px: more than any frame is wide)."""
    return np.clip(np.round(np.asarray(flow, dtype=np.float64) / QUANTUM), -32767, 32767).astype(np.int16)


# --------------------------------------------------------------------------------------------- estimators


class Estimator:
    """``estimator(a, b)`` → flow from ``a`` to ``b`` (``uint8`` H×W or H×W×3 RGB frames of one size)."""

    name = "estimator"

    @property
    def params(self) -> dict:
        return {}

    @property
    def id(self) -> str:
        """``name-<12 hex>``: the hash of the name, parameters and quantum; keys the cache."""
        blob = json.dumps({"name": self.name, "params": self.params, "quantum": QUANTUM}, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def describe(self) -> dict:
        """What a result row records about the flow."""
        return {"estimator": self.name, "id": self.id, "quantum_px": QUANTUM, **self.params}

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id})"


_DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
_DIS_FIELDS = ("FinestScale", "PatchSize", "PatchStride", "GradientDescentIterations",
               "VariationalRefinementIterations", "VariationalRefinementAlpha", "VariationalRefinementDelta",
               "VariationalRefinementGamma", "UseMeanNormalization", "UseSpatialPropagation")


class DIS(Estimator):
    """OpenCV DIS (Kroeger et al. 2016) on 8-bit grey; preset MEDIUM (the goldens' preset). Offline, no weights.

    Every parameter is read back from the OpenCV object into ``params`` (they differ between presets and could
    change between OpenCV versions); ``overrides`` set any of them (names as in ``_DIS_FIELDS``).
    """

    name = "dis"

    def __init__(self, preset: str = "medium", **overrides):
        if preset not in _DIS_PRESETS:
            raise FlowError(f"DIS: unknown preset {preset!r}; choose {', '.join(_DIS_PRESETS)}")
        unknown = set(overrides) - set(_DIS_FIELDS)
        if unknown:
            raise FlowError(f"DIS: unknown parameter {sorted(unknown)[0]!r}; choose {', '.join(_DIS_FIELDS)}")
        self.preset, self.overrides = preset, overrides
        self._local = threading.local()

    def _object(self):
        """This thread's OpenCV DIS object: one object must not run two ``calc`` at once (it keeps its pyramids),
        and every thread's gives the same flows."""
        dis = getattr(self._local, "dis", None)
        if dis is None:
            dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
            for key, value in self.overrides.items():
                getattr(dis, f"set{key}")(value)
            self._local.dis = dis
        return dis

    @property
    def params(self) -> dict:
        dis = self._object()
        values = {k: getattr(dis, f"get{k}")() for k in _DIS_FIELDS}
        return {"preset": self.preset, "opencv": cv2.__version__,
                **{k: (bool(v) if isinstance(v, bool) else float(v) if isinstance(v, float) else int(v))
                   for k, v in values.items()}}

    def __call__(self, a, b):
        return self._object().calc(grey(a), grey(b), None)

    def __getstate__(self):  # OpenCV objects do not pickle; each thread rebuilds its own on first use
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._local = threading.local()


class Farneback(Estimator):
    """OpenCV Farnebäck; defaults are TecoGAN's tOF call ``(0.5, 3, 15, 3, 5, 1.2, 0)``."""

    name = "farneback"

    def __init__(self, pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0):
        self._p = {"pyr_scale": pyr_scale, "levels": levels, "winsize": winsize, "iterations": iterations,
                   "poly_n": poly_n, "poly_sigma": poly_sigma, "flags": flags}

    @property
    def params(self) -> dict:
        return {**self._p, "opencv": cv2.__version__}

    def __call__(self, a, b):
        p = self._p
        return cv2.calcOpticalFlowFarneback(grey(a), grey(b), None, p["pyr_scale"], p["levels"], p["winsize"],
                                            p["iterations"], p["poly_n"], p["poly_sigma"], p["flags"])


class TorchFlow(Estimator):
    """Adapter for a flow network: ``forward(a, b)`` (two 1×3×H×W float tensors on ``device``) → 1×2×H×W flow.

    Frames are RGB (grey replicated), scaled to ``input_range`` and replicate-padded to a multiple of ``multiple``;
    the flow is cropped back. ``params`` records ``name``, ``weights_sha256`` and whatever ``options`` says
    (iterations, resolution), so two runs with different weights never share a cache entry.
    """

    def __init__(self, forward, name: str, weights_sha256: str, input_range=(0.0, 255.0), multiple: int = 8,
                 device: str = "cpu", min_size: int = 1, **options):
        self.forward, self.name, self.device = forward, name, device
        self.input_range, self.multiple, self.min_size = tuple(input_range), multiple, min_size
        self._p = {"weights_sha256": weights_sha256, "input_range": list(self.input_range), "multiple": multiple,
                   **options}

    @property
    def params(self) -> dict:
        return dict(self._p)

    def _tensor(self, frame):
        import torch

        frame = np.asarray(frame)
        rgb = np.repeat(frame[..., None], 3, axis=2) if frame.ndim == 2 else frame
        lo, hi = self.input_range
        t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() * ((hi - lo) / 255.0) + lo
        h, w = t.shape[-2:]
        ph, pw = -h % self.multiple, -w % self.multiple
        if ph or pw:
            t = torch.nn.functional.pad(t, (0, pw, 0, ph), mode="replicate")
        return t.to(self.device), (h, w)

    def __call__(self, a, b):
        import torch

        (ta, (h, w)), (tb, _) = self._tensor(a), self._tensor(b)
        if min(ta.shape[-2:]) < self.min_size:
            raise FlowError(f"{self.name}: frames of {h}×{w} px are too small; this network needs ≥ {self.min_size} px")
        with torch.inference_mode():
            flow = self.forward(ta, tb)
        return flow[0, :, :h, :w].permute(1, 2, 0).float().cpu().numpy()


def raft(variant: str = "large", weights: str | Path | None = None, iters: int = 12, device: str = "cpu") -> TorchFlow:
    """torchvision RAFT (``large``/``small``) with weights from ``weights``, else torchvision's file from the weights
    registry (downloaded and verified on first use; see :mod:`m3svd.flow.weights`); strict key match; inputs in
    [-1, 1]."""
    from m3svd.files import sha256_file
    from m3svd.flow import raftnet as arch
    from m3svd.flow.weights import find_weights, load_state_dict

    if variant not in arch.ARCHITECTURES:
        raise FlowError(f"RAFT: unknown variant {variant!r}; choose {', '.join(arch.ARCHITECTURES)}")
    filename = arch.DEFAULT_FILES[variant]
    path = find_weights(filename, f"RAFT-{variant}", weights, env=f"M3SVD_RAFT_{variant.upper()}",
                        name=f"raft-{variant}")
    model = arch.ARCHITECTURES[variant]()
    model.load_state_dict(load_state_dict(path, f"RAFT-{variant}"), strict=True)
    model.eval().to(device)
    # min_size: torchvision's meta; below it the 1/64 correlation level has one column and sampling divides by 0
    return TorchFlow(lambda a, b: model(a, b, num_flow_updates=iters)[-1], f"raft-{variant}", sha256_file(path),
                     input_range=(-1.0, 1.0), device=device, min_size=128, iters=iters)


def sea_raft(model, weights_sha256: str, iters: int = 4, device: str = "cpu", name: str = "sea-raft",
             **options) -> TorchFlow:
    """Adapter point for a SEA-RAFT model the user builds and loads (princeton-vl/SEA-RAFT, not shipped here).

    SEA-RAFT takes 0–255 RGB and returns a dict whose ``"flow"`` list ends with the final flow (TemCoCo uses
    kitti-M, VF-Bench spring-S, both iters 4). Pass the weights' sha256 and any config (``config="spring-S"``,
    ``resolution=…``) so they are recorded.
    """
    model.eval().to(device)
    return TorchFlow(lambda a, b: model(a, b, iters=iters, test_mode=True)["flow"][-1], name, weights_sha256,
                     input_range=(0.0, 255.0), device=device, iters=iters, **options)


class Lookup(Estimator):
    """Stored flows keyed by the content of the two (grey) frames: reproduces a reference's flows exactly."""

    name = "lookup"

    def __init__(self, label: str = "stored"):
        self.label, self._flows = label, {}

    @property
    def params(self) -> dict:
        return {"label": self.label}

    def add(self, frames, fw, bw) -> Lookup:
        """Register flows of a sequence: ``fw[i]`` from frame i to i+1, ``bw[i]`` from i+1 to i."""
        keys = [frame_hash(grey(f)) for f in frames]
        for i in range(len(frames) - 1):
            self._flows[keys[i], keys[i + 1]] = np.asarray(fw[i], np.float32)
            self._flows[keys[i + 1], keys[i]] = np.asarray(bw[i], np.float32)
        return self

    def __call__(self, a, b):
        key = (frame_hash(grey(a)), frame_hash(grey(b)))
        if key not in self._flows:
            raise FlowError(f"lookup flow {self.label!r}: no stored flow for this frame pair")
        return self._flows[key]


def estimator(spec: str | Estimator = "dis", **kwargs) -> Estimator:
    """An estimator from a protocol's ``flow`` string: ``dis`` (= ``dis-medium``), ``dis-fast``,
    ``dis-ultrafast``, ``farneback``, ``raft-large``, ``raft-small``; an :class:`Estimator` is returned as is."""
    if isinstance(spec, Estimator):
        return spec
    s = spec.lower()
    if s == "dis" or s.startswith("dis-"):
        return DIS(s[4:] or "medium", **kwargs) if s != "dis" else DIS(**kwargs)
    if s == "farneback":
        return Farneback(**kwargs)
    if s in ("raft-large", "raft-small", "raft"):
        return raft(s[5:] or "large", **kwargs)
    raise FlowError(f"unknown flow estimator {spec!r}; choose dis, dis-fast, dis-ultrafast, farneback, raft-large, "
                    "raft-small (SEA-RAFT: m3svd.flow.sea_raft(model, sha256))")


# --------------------------------------------------------------------------------------------- warping and masks


class Grid:
    """The sampling grid of one flow for :func:`warp`: made once, then used for every image warped with that flow
    (a pair's masks and each metric warp with the same few flows)."""

    def __init__(self, flow: np.ndarray):
        import torch

        o = np.asarray(flow, dtype=np.float64)
        h, w = o.shape[:2]
        self.shape = (h, w)
        # the arithmetic (and so every bit) of the torch expression it replaces: 2 (i + o) / (n − 1) − 1 per axis;
        # numpy builds it on one core, where torch's element-wise ops would start threads for each step
        x = np.arange(w, dtype=np.float64)[None, :] + o[..., 0]
        y = np.arange(h, dtype=np.float64)[:, None] + o[..., 1]
        self.grid = torch.from_numpy(np.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], axis=-1)[None])

    def warp(self, image: np.ndarray) -> np.ndarray:
        """:func:`warp` of ``image`` with this grid's flow."""
        img = np.asarray(image, dtype=np.float64)
        if img.ndim == 2:
            return self.sample(img[None])[0]
        return self.sample(np.ascontiguousarray(np.moveaxis(img, 2, 0))).transpose(1, 2, 0)

    def sample(self, planes: np.ndarray) -> np.ndarray:
        """Warp ``C×H×W`` float64 planes: ``C×H×W`` (each plane's values do not depend on the others)."""
        import torch

        out = torch.nn.functional.grid_sample(torch.from_numpy(planes)[None], self.grid, mode="bilinear",
                                              padding_mode="border", align_corners=True)
        return out[0].numpy()


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Backward warp, float64: ``out(p) = image(p + flow(p))`` bilinear, border clamp (``H×W`` or ``H×W×C``).

    torch ``grid_sample`` in float64 (``align_corners=True``, ``'border'``, VF-Bench's call): exact bilinear to
    ~1e-11, unlike ``cv2.remap``'s 1/32-px fixed-point weights, so it matches the float32 reference to its rounding.
    :class:`Grid` keeps one flow's sampling grid for several images.
    """
    return Grid(flow).warp(image)


def fb_mask(fw: np.ndarray, bw: np.ndarray, threshold: float = FB_THRESHOLD) -> np.ndarray:
    """VF-Bench validity on ``a``'s grid: ‖fw + W(bw, fw)‖₂ < threshold (fw: a→b, bw: b→a)."""
    d = np.asarray(fw, np.float64) + warp(bw, fw)
    return np.sqrt((d * d).sum(axis=-1)) < threshold


def lai_noc_mask(fw: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """Lai et al. 2018 non-occlusion on ``a``'s grid (``detect_occlusion`` as called: fw a→b, bw b→a).

    Occluded where |W(bw, fw) + fw|² > 0.01 (|W(bw, fw)|² + |fw|²) + 0.5 or, at motion boundaries,
    |∇fw|² > 0.01 |fw|² + 0.002 (forward differences, 0 on the last row/column).
    """
    fw = np.asarray(fw, np.float64)
    bw_w = warp(bw, fw)
    sq = lambda v: (v * v).sum(axis=-1)  # noqa: E731
    occ = sq(bw_w + fw) > 0.01 * (sq(bw_w) + sq(fw)) + 0.5
    du = np.zeros_like(fw)
    dv = np.zeros_like(fw)
    du[:, :-1] = fw[:, :-1] - fw[:, 1:]
    dv[:-1, :] = fw[:-1, :] - fw[1:, :]
    boundary = (du * du + dv * dv).sum(axis=-1) > 0.01 * sq(fw) + 0.002
    return ~(occ | boundary)


def pair_masks(fw: np.ndarray, bw: np.ndarray, threshold: float = FB_THRESHOLD):
    """``(fb_mask(fw, bw), fb_mask(bw, fw), lai_noc_mask(fw, bw))``, bit for bit, in half the time: one warp each
    way, shared terms, contiguous x/y planes instead of interleaved channels (a sum over two channels is x + y)."""
    fx, fy, bx, by = (np.ascontiguousarray(f[..., k], dtype=np.float64) for f in (fw, bw) for k in (0, 1))
    bw_on_a = Grid(fw).sample(np.stack([bx, by]))  # W(bw, fw): frame b's flow on frame a's grid
    fw_on_b = Grid(bw).sample(np.stack([fx, fy]))
    dx, dy = fx + bw_on_a[0], fy + bw_on_a[1]
    d2 = dx * dx + dy * dy  # |fw + W(bw, fw)|²: the fw-bw check and Lai's occlusion test
    ex, ey = bx + fw_on_b[0], by + fw_on_b[1]
    fw2 = fx * fx + fy * fy
    occ = d2 > 0.01 * ((bw_on_a[0] * bw_on_a[0] + bw_on_a[1] * bw_on_a[1]) + fw2) + 0.5
    grad = []
    for f in (fx, fy):
        du, dv = np.zeros_like(f), np.zeros_like(f)
        du[:, :-1] = f[:, :-1] - f[:, 1:]
        dv[:-1, :] = f[:-1, :] - f[1:, :]
        grad.append(du * du + dv * dv)
    boundary = grad[0] + grad[1] > 0.01 * fw2 + 0.002
    return np.sqrt(d2) < threshold, np.sqrt(ex * ex + ey * ey) < threshold, ~(occ | boundary)


# --------------------------------------------------------------------------------------------- cache


def default_cache_dir() -> Path:
    """``<default_root()>/cache/flow``: next to the datasets, so it follows ``$M3SVD_ROOT``."""
    return default_root() / "cache" / "flow"


class FlowCache:
    """Flows (and masks) of frame pairs on disk: one ``.npz`` per pair under ``<root>/<estimator id>/``.

    The key is the sha256 of both frames' bytes, the estimator id (name + parameters + weights hash) and the mask
    version, so any clip, window or method that meets the same frames reuses the entry. Writes go to a temporary
    file in the same folder and are renamed into place: a crash never leaves a half-written entry, and an
    unreadable entry is recomputed. Entries are ``.npz`` files, zip-deflated at ``level`` (default 1: a DIS entry
    with masks takes ≈9 ms to write and ≈300 KiB, against ≈33 ms and ≈190 KiB at ``np.savez_compressed``'s level
    6 — on a cold pass the writes were a tenth of the temporal metrics' time; ``compress=False`` stores them raw,
    ≈2.5 MiB). Any level reads back the same. Other source-only arrays (feaCD's logits) use their own
    ``namespace``. ``hits``/``misses`` count lookups.
    """

    def __init__(self, root: str | Path | None = None, compress: bool = True, level: int = 1):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.compress, self.level = compress, level
        self.hits = self.misses = 0
        self._count = threading.Lock()  # pairs may be read by several threads (TemporalScorer)

    def __getstate__(self):  # a lock does not pickle
        return {k: v for k, v in self.__dict__.items() if k != "_count"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._count = threading.Lock()

    def path(self, namespace: Estimator | str, key: str) -> Path:
        ns = namespace if isinstance(namespace, str) else namespace.id
        return self.root / ns / key[:2] / f"{key}.npz"

    def get(self, namespace: Estimator | str, key: str) -> dict | None:
        try:
            with np.load(self.path(namespace, key)) as z:
                entry = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError):
            with self._count:
                self.misses += 1
            return None
        with self._count:
            self.hits += 1
        return entry

    def put(self, namespace: Estimator | str, key: str, entry: dict) -> None:
        path = self.path(namespace, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(namespace, Estimator):
            meta = path.parent.parent / "estimator.json"
            if not meta.exists():
                text = json.dumps(namespace.describe(), indent=1, sort_keys=True).encode()
                atomic_bytes(meta, text)
        method = zipfile.ZIP_DEFLATED if self.compress else zipfile.ZIP_STORED
        with (atomic_path(path) as tmp,
              zipfile.ZipFile(tmp, "w", method, compresslevel=self.level if self.compress else None) as archive):
            for name, array in entry.items():  # np.savez's layout: one NAME.npy member per array
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


# --------------------------------------------------------------------------------------------- per-video flows


class VideoFlows:
    """Flows between consecutive frames ``i → i+1`` (``fw(i)``) and ``i+1 → i`` (``bw(i)``) of one video.

    With ``masks=True`` each pair also carries the VF-Bench forward–backward masks on both frames
    (``fb_a(i)`` on frame i, ``fb_b(i)`` on frame i+1, threshold 1 px) and Lai's non-occlusion mask on frame i
    (``noc(i)``). Pairs are computed once and kept in memory (flows as int16 multiples of 1/16 px); with a
    ``cache`` they are read from / written to disk. ``forward_only`` skips the backward flows (tOF, MS2R).
    """

    def __init__(self, frames: np.ndarray, est: Estimator, cache: FlowCache | None = None, masks: bool = False,
                 forward_only: bool = False):
        self.frames, self.est, self.cache = frames, est, cache
        self.masks, self.forward_only = masks, forward_only and not masks
        self._pairs: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.frames) - 1

    def _key(self, i: int) -> str:
        a, b = self.frames[i], self.frames[i + 1]
        what = f"{frame_hash(a)}:{frame_hash(b)}:{self.est.id}:{int(self.masks)}{int(self.forward_only)}:{MASK_VERSION}"
        return hashlib.sha256(what.encode()).hexdigest()

    def _compute(self, i: int) -> dict:
        a, b = self.frames[i], self.frames[i + 1]
        entry = {"fw": quantise(self.est(a, b))}
        if entry["fw"].shape != a.shape[:2] + (2,):
            raise FlowError(f"{self.est.name}: flow of shape {entry['fw'].shape} for frames of shape {a.shape}")
        if not self.forward_only:
            entry["bw"] = quantise(self.est(b, a))
            if self.masks:
                masks = pair_masks(entry["fw"].astype(np.float64) * QUANTUM, entry["bw"].astype(np.float64) * QUANTUM)
                entry.update((name, np.packbits(mask)) for name, mask in zip(("fb_a", "fb_b", "noc"), masks,
                                                                                strict=True))
        return entry

    def pair(self, i: int) -> dict:
        """Pair ``i``'s entry (int16 flows, packed masks), computed or read from the cache once; distinct pairs
        may be computed by concurrent threads."""
        if not 0 <= i < len(self):
            raise IndexError(f"pair {i} outside 0..{len(self) - 1}")
        if i not in self._pairs:
            entry = None
            if self.cache is not None:
                key = self._key(i)
                entry = self.cache.get(self.est, key)
                if entry is None:
                    entry = self._compute(i)
                    self.cache.put(self.est, key, entry)
            self._pairs[i] = entry if entry is not None else self._compute(i)
        return self._pairs[i]

    def fw(self, i: int) -> np.ndarray:
        return self.pair(i)["fw"].astype(np.float32) * np.float32(QUANTUM)

    def bw(self, i: int) -> np.ndarray:
        return self.pair(i)["bw"].astype(np.float32) * np.float32(QUANTUM)

    def _mask(self, i: int, name: str) -> np.ndarray:
        h, w = self.frames.shape[1:3]
        return np.unpackbits(self.pair(i)[name], count=h * w).reshape(h, w).astype(bool)

    def fb_a(self, i: int) -> np.ndarray:
        return self._mask(i, "fb_a")

    def fb_b(self, i: int) -> np.ndarray:
        return self._mask(i, "fb_b")

    def noc(self, i: int) -> np.ndarray:
        return self._mask(i, "noc")

    def compute_all(self) -> VideoFlows:
        for i in range(len(self)):
            self.pair(i)
        return self
