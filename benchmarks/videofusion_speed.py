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
    cuda = args.device.startswith("cuda")

    rng = np.random.default_rng(0)
    ir = rng.integers(0, 256, (args.frames, h, w), dtype=np.uint8)
    vi = rng.integers(0, 256, (args.frames, h, w, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        weights = Path(tmp) / "videofusion-random.pth"
        torch.save({"params": build("full").state_dict()}, weights)
        method = VideoFusion(device=args.device, weights=weights, frames=args.frames, autocast=args.autocast)

    def run(a, b) -> float:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        method.fuse(a, b)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start

    warm = run(ir[:2, :64, :64], vi[:2, :64, :64])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = [run(ir, vi) for _ in range(args.repeats)]
    best, mean = min(times), sum(times) / len(times)
    print(f"VideoFusion released configuration, random weights, {w}×{h}, window of {args.frames} frames, "
          f"device {args.device}, autocast {args.autocast}, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}")
    print(f"warm-up (2 frames, 64×64): {warm:.2f} s")
    print(f"best:  {best:.2f} s per window = {best / args.frames:.2f} s/frame = {args.frames / best:.4f} frames/s")
    print(f"mean:  {mean:.2f} s per window over {len(times)} run(s) = {args.frames / mean:.4f} frames/s")
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
