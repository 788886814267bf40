"""TemCoCo inference speed: frames/s of the released configuration (19.2 M parameters) at 640×480.

Random weights (``torch.manual_seed(0)``; speed does not depend on the values), batch 1, one window of ``--frames``
frames (default 3: short, since the full 30-frame window takes minutes on a CPU), through the method's own path
(uint8 RGB in, padding, clamp, uint8 out; ``--autocast`` wraps it in ``torch.autocast``). One untimed warm-up
window of 2 frames at 64×64 first, then ``--repeats`` timed windows; prints the best and the mean. The temporal
attention spans the window, so cost per frame grows slowly with ``--frames``; the published protocol uses 30::

    python benchmarks/temcoco_speed.py [--frames 3] [--size 640x480] [--threads 2] [--device cpu] [--repeats 1]
        [--autocast none|bf16|fp16]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from videofusion_speed import measure  # noqa: E402

from m3svd.methods.temcoco import TemCoCo  # noqa: E402
from m3svd.methods.temcoco.arch import Fusion  # noqa: E402

AUTOCAST = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def random_method(frames: int, device: str) -> TemCoCo:
    """The port with seeded random weights of the released configuration, one window of ``frames``, no overlap."""
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        weights = Path(tmp) / "temcoco-random.pth"
        torch.save(Fusion().state_dict(), weights)
        return TemCoCo(device=device, weights=weights, window=frames, overlap=0)


def autocast_fuse(method: TemCoCo, autocast: str):
    """``method.fuse`` under ``torch.autocast`` (the port has no precision option; this is the benchmark's)."""
    dtype = AUTOCAST[autocast]

    def fuse(ir, vi):
        ctx = (torch.autocast(torch.device(method.device).type, dtype=dtype) if dtype is not None
               else contextlib.nullcontext())
        with ctx:
            return method.fuse(ir, vi)

    return fuse




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3, help="frames in the timed window (default 3)")
    parser.add_argument("--size", default="640x480", help="W×H (default 640x480)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--repeats", type=int, default=1, help="timed windows (default 1)")
    parser.add_argument("--autocast", default="none", choices=tuple(AUTOCAST), help="none (default), bf16 or fp16")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    method = random_method(args.frames, args.device)
    r = measure(autocast_fuse(method, args.autocast), args.device, args.frames, w, h, args.repeats)
    best, mean = args.frames / r["best"], args.frames / r["mean"]
    print(f"TemCoCo released configuration, random weights, {w}×{h}, window of {args.frames} frames, "
          f"device {args.device}, autocast {args.autocast}, {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}")
    print(f"warm-up (2 frames, 64×64): {r['warm']:.2f} s")
    print(f"best:  {best:.2f} s per window = {best / args.frames:.2f} s/frame = {r['best']:.3f} frames/s")
    print(f"mean:  {mean:.2f} s per window over {args.repeats} run(s) = {r['mean']:.3f} frames/s")
    if "peak_gib" in r:
        print(f"peak GPU memory: {r['peak_gib']:.2f} GiB")


if __name__ == "__main__":
    main()
