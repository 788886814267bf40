"""VideoFusion (Tang et al., CVPR 2026): joint IR–VIS video fusion and restoration, checkpoint-compatible port.

The network (:mod:`.arch`) reproduces the official ``VideoFusion_Trans`` on the conformance golden to float
rounding (float64: bit-identical; float32: 6e-8), and the authors' checkpoint loads with strict key matching.

Inference protocol, reproduced as the official test runs it:

- windows of ``frames`` frames (option, default 7 as in the released test config; the paper's table used 25),
  non-overlapping, the last window aligned to the clip's end (frames in the overlap take its output, as the
  official file overwrite does);
- inputs RGB in [0, 1]; IR as three equal channels (the official reader loads the grey PNG as 3-channel BGR);
- frames reflect-padded bottom/right to multiples of 4 and cropped back;
- outputs: fused RGB, restored IR and restored VIS. Saved fused frames are, by default, min–max stretched per
  frame over all three channels (``stretch="per_frame_minmax"``, the official ``tensor2img`` call: it changes EN,
  SD and the temporal metrics and adds frame-to-frame gain changes); ``stretch="none"`` keeps the network's fixed
  (0, 1) range. Restored frames always use (0, 1). Then ×255, rounded. The restored IR (3-channel, as the official
  code writes it) becomes grey the way the toolkit reads any stored frame (exact when the channels agree,
  BT.601 otherwise).

Options: ``frames`` (7), ``stretch`` (``per_frame_minmax``), ``autocast`` (``none``/``bf16``/``fp16``, on CPU or
CUDA; not the official precision, each result row records it), ``tile`` (0 = off; otherwise tiles of that many
pixels, overlapping by ``tile_overlap``, when a frame does not fit in memory: the attention and pooling are global
per frame, so tiled outputs differ from untiled ones, and rows record the tile size). Self-ensemble (``flip_seq``)
is off in the official test and not offered. Measured on the small golden (outputs in 0.39–0.60): bf16 autocast
deviates by up to 3.3e-3, fp16 by 4e-4, 24-pixel tiles overlapping by 8 by 1.6e-2. Speed on a 2-core CPU: ≈48 s
per 640×480 frame (``benchmarks/videofusion_speed.py``), as the official code.

Weights (``--weights PATH``; without it the weights registry's copy, downloaded and verified on first use, see
``m3svd weights ls``): the authors' ``net_g_latest.pth`` (``{'params': state_dict}``, released
configuration, 6.75 M parameters) from the URL in :data:`CHECKPOINT_URL`, or weights written by
``m3svd train --method videofusion`` (same container; ``config="small"`` gives the 16-feature network). The
configuration is read from the weights; :attr:`VideoFusion.official_checkpoint` says whether the file is the
released blob (git blob id). No toolkit-trained weights ship: training needs a GPU, and none was lent
when this was written. The recipe (:mod:`.train`: 3 clips of 6 frames per GPU, 128×128 crops, clean
targets, inputs degraded by :mod:`m3svd.data.degrade` or the dataset's own degraded frames), on 4 GPUs, on data
that is not M3SVD test data (e.g. the M3SVD train split; ``assets/loss.jpg`` suggests ≈220k iterations)::

    torchrun --nproc_per_node 4 -m m3svd.cli train --method videofusion --root M3SVD_ROOT --split train \\
        --config full --iterations 220000 --device cuda

writes ``videofusion.pth`` (``{'params': …}``) labelled by the ``videofusion.json`` next to it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from m3svd.methods import register
from m3svd.methods.base import Fusion, Method, MethodError, check_window
from m3svd.methods.nets import check_state_dict, load_state_dict, pad_to_multiple, registry_weights

CHECKPOINT = "net_g_latest.pth"
CHECKPOINT_URL = ("https://github.com/Linfeng-Tang/VideoFusion/raw/e38a803a360e8ace90c468025ac2b9bde8522bf0/"
                  "experiments/VideoFusion/net_g_latest.pth")
CHECKPOINT_GIT_BLOB = "50026edb9260762d54419a79042e9497a060f81c"  # git blob SHA-1 of the released file
WEIGHTS_HINT = (f"expected {CHECKPOINT} ({{'params': state_dict}}) from {CHECKPOINT_URL}, "
                "or weights trained by `m3svd train --method videofusion`")
STRETCHES = ("per_frame_minmax", "none")
AUTOCASTS = ("none", "bf16", "fp16")


def git_blob_sha1(path: str | Path) -> str:
    """Git's blob id of a file, ``sha1(b"blob <size>\\0" + bytes)``: verifies the released checkpoint's bytes."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def stretch_per_frame(x):
    """Official saving of fused frames: ``(x − min)/(max − min)`` per frame of ``(T, 3, H, W)``, all channels.

    A constant frame (max = min) becomes 0 (the official code would divide by zero).
    """
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    span = x.amax(dim=(1, 2, 3), keepdim=True) - lo
    return (x - lo) / span.masked_fill(span == 0, 1)


def to_uint8(x):
    """``[0, 1]`` → ×255 → round half to even → uint8, as ``tensor2img`` (float32)."""
    import torch

    return x.float().clamp(0, 1).mul(255.0).round().to(torch.uint8)


def tiles(size: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Spans ``(start, stop)`` of ``tile`` covering ``[0, size)``, step ``tile − overlap``, the last at the end."""
    if tile >= size:
        return [(0, size)]
    step = tile - overlap
    starts = list(range(0, size - tile, step)) + [size - tile]
    return [(s, s + tile) for s in starts]


@register
class VideoFusion(Method):
    name = "videofusion"
    version = "1"
    description = "VideoFusion (CVPR 2026): spatio-temporal IR/VIS video fusion + restoration"
    temporal_window = 7
    window_overlap = 0
    restores = True
    options = {"frames": 7, "stretch": "per_frame_minmax", "autocast": "none", "tile": 0, "tile_overlap": 32}

    def __init__(self, device: str = "cpu", weights: str | Path | None = None, **options):
        super().__init__(device=device, weights=weights, **options)
        c = self.config
        if not isinstance(c["frames"], int) or isinstance(c["frames"], bool) or c["frames"] < 1:
            raise MethodError(f"videofusion: frames must be a positive integer, found {c['frames']!r}")
        if c["stretch"] not in STRETCHES:
            raise MethodError(f"videofusion: stretch must be one of {', '.join(STRETCHES)}, found {c['stretch']!r}")
        if c["autocast"] not in AUTOCASTS:
            raise MethodError(f"videofusion: autocast must be one of {', '.join(AUTOCASTS)}, "
                              f"found {c['autocast']!r}")
        tile, overlap = c["tile"], c["tile_overlap"]
        if not (isinstance(tile, int) and isinstance(overlap, int) and tile >= 0 and overlap >= 0
                and tile % 4 == 0 and (tile == 0 or overlap < tile)):
            raise MethodError(f"videofusion: tile must be 0 (off) or a multiple of 4 larger than tile_overlap ≥ 0, "
                              f"found tile={tile!r}, tile_overlap={overlap!r}")
        self.temporal_window = c["frames"]
        if self.weights is None:  # the authors' file from the weights registry, downloaded on first use
            self.weights, self._weights_sha256 = registry_weights("videofusion")
        import torch

        from m3svd.methods.videofusion.arch import CONFIGS, build

        state = load_state_dict(self.weights, "VideoFusion", WEIGHTS_HINT)
        stem = state.get("conv3d_ir_1.module.0.weight")
        width = int(stem.shape[0]) if stem is not None and stem.ndim == 5 else CONFIGS["full"]["num_features"]
        self.arch = next((name for name, cfg in CONFIGS.items() if cfg["num_features"] == width), "full")
        with torch.device("meta"):
            expected = build(self.arch).state_dict()
        check_state_dict(state, expected, self.weights, "VideoFusion")
        self.net = build(self.arch)
        self.net.load_state_dict(state, strict=True)
        self.net.eval().to(self.device)

    @property
    def official_checkpoint(self) -> bool:
        """Whether the weights are byte-identical to the authors' released ``net_g_latest.pth``."""
        return git_blob_sha1(self.weights) == CHECKPOINT_GIT_BLOB

    def forward(self, ir_t, vi_t):
        """``(T, 3, H, W)`` float tensors → dict of ``(T, 3, H, W)`` float32 outputs (padding, tiling, autocast)."""
        import torch

        from m3svd.methods.videofusion.arch import SIZE_MULTIPLE

        h, w = ir_t.shape[-2:]
        ir_t, vi_t = pad_to_multiple(ir_t, SIZE_MULTIPLE), pad_to_multiple(vi_t, SIZE_MULTIPLE)
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.config["autocast"])
        dev = torch.device(self.device)

        def run(a, b):
            with torch.autocast(dev.type, dtype=dtype, enabled=dtype is not None):
                return {k: v[0].float() for k, v in self.net(a[None], b[None]).items()}

        with torch.inference_mode():
            if not self.config["tile"]:
                out = run(ir_t, vi_t)
            else:
                out = self._tiled(run, ir_t, vi_t)
        return {k: v[..., :h, :w] for k, v in out.items()}

    def _tiled(self, run, ir_t, vi_t):
        """Tiles over H and W, each run on the whole window; overlaps averaged with linear ramps."""
        import torch

        tile, overlap = self.config["tile"], self.config["tile_overlap"]
        hp, wp = ir_t.shape[-2:]
        out, weight = None, torch.zeros(hp, wp, device=ir_t.device)
        for r0, r1 in tiles(hp, tile, overlap):
            for c0, c1 in tiles(wp, tile, overlap):
                part = run(ir_t[..., r0:r1, c0:c1], vi_t[..., r0:r1, c0:c1])
                ramp = _ramp(r1 - r0, overlap, r0 > 0, r1 < hp, ir_t.device)[:, None] \
                    * _ramp(c1 - c0, overlap, c0 > 0, c1 < wp, ir_t.device)[None, :]
                if out is None:
                    out = {k: torch.zeros(*v.shape[:-2], hp, wp, device=v.device) for k, v in part.items()}
                for k, v in part.items():
                    out[k][..., r0:r1, c0:c1] += v * ramp
                weight[r0:r1, c0:c1] += ramp
        return {k: v / weight for k, v in out.items()}

    def fuse(self, ir: np.ndarray, vi: np.ndarray) -> Fusion:
        check_window(ir, vi)
        import torch

        from m3svd.data.frames import to_grey

        t, h, w = ir.shape
        dev = torch.device(self.device)
        ir_t = torch.from_numpy(np.ascontiguousarray(ir)).to(dev).float().div_(255.0)[:, None].expand(t, 3, h, w)
        vi_t = torch.from_numpy(np.ascontiguousarray(vi)).to(dev).permute(0, 3, 1, 2).float().div_(255.0)
        out = self.forward(ir_t, vi_t)
        fused = out["fusion"]
        if self.config["stretch"] == "per_frame_minmax":
            fused = stretch_per_frame(fused)

        def frames(x):
            return to_uint8(x).permute(0, 2, 3, 1).contiguous().cpu().numpy()

        restored_ir = np.stack([to_grey(f) for f in frames(out["ir"])])
        return Fusion(frames(fused), ir=restored_ir, vi=frames(out["vi"]))


def _ramp(n: int, overlap: int, left: bool, right: bool, device):
    """Blending weights along one tile axis: linear over the overlap on sides that have a neighbour."""
    import torch

    r = torch.ones(n, device=device)
    k = min(overlap, n)
    if k:
        edge = (torch.arange(k, device=device, dtype=torch.float32) + 1) / (k + 1)
        if left:
            r[:k] = torch.minimum(r[:k], edge)
        if right:
            r[n - k:] = torch.minimum(r[n - k:], edge.flip(0))
    return r
