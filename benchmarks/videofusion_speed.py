"""VideoFusion inference speed: frames/s of the released configuration (6.75 M parameters) at 640×480.

Random weights (``torch.manual_seed(0)``; speed does not depend on the values), batch 1, windows of ``--frames``
frames (default 7, the released test window) through the method's own path (uint8 in, padding, per-frame
stretch, uint8 fused/IR/VIS out). One untimed warm-up of 2 frames at 64×64 first, then ``--repeats`` timed windows
(default 1: on a 2-core CPU one 7-frame window takes minutes; the official code needs ≈46 s per frame there).
Cost is linear in frames and pixels (≈275 GMAC per 640×480 frame). On CUDA it also prints the peak memory::

    python benchmarks/videofusion_speed.py [--frames 7] [--size 640x480] [--threads 2] [--device cpu]
        [--repeats 1] [--autocast none|bf16|fp16]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from m3svd.methods.videofusion import VideoFusion
from m3svd.methods.videofusion.arch import build


def random_method(frames: int, device: str, autocast: str = "none") -> VideoFusion:
    """The port with seeded random weights of the released configuration (speed does not depend on the values)."""
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        weights = Path(tmp) / "videofusion-random.pth"
        torch.save({"params": build("full").state_dict()}, weights)
        return VideoFusion(device=device, weights=weights, frames=frames, autocast=autocast)


def timed(device: str, call, *args) -> float:
    """Seconds of ``call(*args)``, synchronised on CUDA."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    call(*args)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure(fuse, device: str, frames: int, w: int, h: int, repeats: int, warm_size: int = 64) -> dict:
    """Frames/s of ``fuse(ir, vi)`` (a method's ``fuse``) on seeded random uint8 windows of ``frames`` frames.

    One untimed warm-up of 2 frames at ``warm_size`` square, then ``repeats`` timed windows. Returns ``best`` and
    ``mean`` frames/s, ``warm`` seconds and, on CUDA, ``peak_gib`` (peak allocated during the timed windows)."""
    rng = np.random.default_rng(0)
    ir = rng.integers(0, 256, (frames, h, w), dtype=np.uint8)
    vi = rng.integers(0, 256, (frames, h, w, 3), dtype=np.uint8)
    warm = timed(device, fuse, ir[:2, :warm_size, :warm_size], vi[:2, :warm_size, :warm_size])
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = [timed(device, fuse, ir, vi) for _ in range(repeats)]
    out = {"best": frames / min(times), "mean": frames * len(times) / sum(times), "warm": warm,
           "seconds": times}
    if device.startswith("cuda"):
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=7, help="frames per timed window (default 7)")
    parser.add_argument("--size", default="640x480", help="W×H (default 640x480)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--repeats", type=int, default=1, help="timed windows (default 1)")
    parser.add_argument("--autocast", default="none", help="none (default), bf16 or fp16")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    method = random_method(args.frames, args.device, args.autocast)
    r = measure(method.fuse, args.device, args.frames, w, h, args.repeats)
    best, mean = args.frames / r["best"], args.frames / r["mean"]
    print(f"VideoFusion released configuration, random weights, {w}×{h}, window of {args.frames} frames, "
          f"device {args.device}, autocast {args.autocast}, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}")
    print(f"warm-up (2 frames, 64×64): {r['warm']:.2f} s")
    print(f"best:  {best:.2f} s per window = {best / args.frames:.2f} s/frame = {r['best']:.4f} frames/s")
    print(f"mean:  {mean:.2f} s per window over {args.repeats} run(s) = {r['mean']:.4f} frames/s")
    if "peak_gib" in r:
        print(f"peak GPU memory: {r['peak_gib']:.2f} GiB")


if __name__ == "__main__":
    main()
