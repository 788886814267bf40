"""TemCoCo inference speed: frames/s of the released configuration (19.2 M parameters) at 640×480.

Random weights (``torch.manual_seed(0)``; speed does not depend on the values), batch 1, one window of ``--frames``
frames (default 3: short, since the full 30-frame window takes minutes on a CPU), through the method's own path
(uint8 RGB in, padding, clamp, uint8 out). One untimed warm-up window of 1 frame first, then ``--repeats`` timed
windows; prints the best and the mean. The temporal attention spans the window, so cost per frame grows slowly
with ``--frames``; the published protocol uses 30::

    python benchmarks/temcoco_speed.py [--frames 3] [--size 640x480] [--threads 2] [--device cpu] [--repeats 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from m3svd.methods.temcoco import TemCoCo
from m3svd.methods.temcoco.arch import Fusion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3, help="frames in the timed window (default 3)")
    parser.add_argument("--size", default="640x480", help="W×H (default 640x480)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--repeats", type=int, default=1, help="timed windows (default 1)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))

    rng = np.random.default_rng(0)
    ir = rng.integers(0, 256, (args.frames, h, w), dtype=np.uint8)
    vi = rng.integers(0, 256, (args.frames, h, w, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        weights = Path(tmp) / "temcoco-random.pth"
        torch.save(Fusion().state_dict(), weights)
        method = TemCoCo(device=args.device, weights=weights, window=args.frames, overlap=0)

    def run(n: int) -> float:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        method.fuse(ir[:n], vi[:n])
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    warm = run(1)
    times = [run(args.frames) for _ in range(args.repeats)]
    best, mean = min(times), sum(times) / len(times)
    print(f"TemCoCo released configuration, random weights, {w}×{h}, window of {args.frames} frames, "
          f"device {args.device}, {torch.get_num_threads()} thread(s), torch {torch.__version__}")
    print(f"warm-up (1 frame): {warm:.2f} s")
    print(f"best:  {best:.2f} s per window = {best / args.frames:.2f} s/frame = {args.frames / best:.3f} frames/s")
    print(f"mean:  {mean:.2f} s per window over {len(times)} run(s) = {args.frames / mean:.3f} frames/s")


if __name__ == "__main__":
    main()
