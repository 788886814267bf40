"""Seconds for every temporal metric on one whole clip, CPU, with a cold and a warm source-flow cache.

Default clip: M3SVD test video 0117_1620 (590 frames, 640×480, ``shared/data/m3svd_videos``), fused by the rounded
average ``(IR grey + VI grey + 1) // 2``. Two passes over the same frames, each with fresh :class:`VideoSources`:

- **cold**: an empty :class:`FlowCache` in a temporary folder, so source flows and masks are estimated and written;
- **warm**: the same cache folder, so source flows and masks are read back.

Each pass reports the source flows (DIS medium with masks on IR and VIS, Farnebäck for tOF), the fused-video flows
(per method, never cached) and every metric given its flows, in seconds for the clip and ms per frame. feaCD needs
ResNet-18 ImageNet weights (``--resnet18`` or the usual folders); without them a seeded random network of the same
shape is timed and labelled so::

    python benchmarks/temporal_speed.py [--frames 590] [--data ../shared/data] [--resnet18 PATH] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from m3svd import flow as fl
from m3svd import metrics
from m3svd.data import open_dataset
from m3svd.flow.weights import WeightsMissing
from m3svd.metrics import temporal as tm

ROOT = Path(__file__).resolve().parents[1].parent / "shared"
ORDER = ("flowd", "biswe", "ms2r", "warp_error", "tof", "flicker", "tgf", "feacd")


def load(data: Path, clip_name: str, n: int | None):
    clips = [c for c in open_dataset(data / "m3svd_videos").select() if c.name == clip_name]
    if not clips:
        sys.exit(f"temporal_speed: no clip {clip_name} under {data / 'm3svd_videos'} (pass --data)")
    clip = clips[0]
    stop = len(clip) if n is None else min(n, len(clip))
    ir, vi = clip.frames(0, stop)
    vg = np.stack([cv2.cvtColor(v, cv2.COLOR_RGB2GRAY) for v in vi])
    return ir, vi, ((ir.astype(np.int32) + vg + 1) // 2).astype(np.uint8)


def resnet_weights(path: str | None, tmp: Path) -> tuple[Path, str]:
    try:
        return tm.find_resnet18(path), "ImageNet"
    except WeightsMissing:
        import torch

        torch.manual_seed(0)
        p = tmp / "resnet18-random.pth"
        torch.save(tm.resnet18().state_dict(), p)
        return p, "random (ImageNet weights not found; timing only)"


def one_pass(label, ir, vi, fused, cache_dir, weights, conventions) -> dict[str, float]:
    cache = fl.FlowCache(cache_dir)
    src = tm.VideoSources(ir=ir, vi=vi, flow="dis", cache=cache, resnet18=weights)
    times = {}
    t = time.perf_counter()
    for which in ("ir", "vi"):
        tm.source_flows(src, which).compute_all()
    times["source flows: DIS + masks"] = time.perf_counter() - t
    t = time.perf_counter()
    for which in ("ir", "vi"):
        tm.source_flows(src, which, tm.TOF_FLOW, masks=False).compute_all()
    times["source flows: Farneback"] = time.perf_counter() - t
    t = time.perf_counter()
    tm.fused_flows(src, fused).compute_all()
    tm.fused_flows(src, fused, tm.TOF_FLOW, forward_only=True).compute_all()
    times["fused flows: DIS + Farneback"] = time.perf_counter() - t
    for name in ORDER:
        for conv in conventions.get(name, ("m3svd",)):
            m = metrics.get(name, conv)
            t = time.perf_counter()
            m(fused, sources=src)
            times[m.id] = time.perf_counter() - t
    times["cache hits/misses"] = (cache.hits, cache.misses)
    return times


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=None, help="first N frames only (default: the whole clip)")
    ap.add_argument("--clip", default="0117_1620", help="clip name in m3svd_videos (default 0117_1620, 590 frames)")
    ap.add_argument("--data", type=Path, default=ROOT / "data", help="the shared data folder")
    ap.add_argument("--resnet18", default=None, help="ResNet-18 ImageNet weights for feaCD")
    ap.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: library defaults)")
    ap.add_argument("--all-conventions", action="store_true", help="also time the compat conventions")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    t = time.perf_counter()
    ir, vi, fused = load(args.data, args.clip, args.frames)
    decode = time.perf_counter() - t
    n = len(fused)
    conventions = {"flowd": ("m3svd", "temcoco"), "feacd": ("m3svd", "temcoco")} if args.all_conventions else {}
    with tempfile.TemporaryDirectory(prefix="m3svd-flow-cache-") as tmp:
        weights, kind = resnet_weights(args.resnet18, Path(tmp))
        print(f"clip {args.clip}: {n} frames {fused.shape[2]}x{fused.shape[1]} (decode {decode:.1f} s); "
              f"feaCD weights: {kind}")
        cold = one_pass("cold", ir, vi, fused, Path(tmp) / "cache", weights, conventions)
        size = sum(p.stat().st_size for p in (Path(tmp) / "cache").rglob("*.npz")) / 2**20
        warm = one_pass("warm", ir, vi, fused, Path(tmp) / "cache", weights, conventions)
    print(f"flow cache on disk: {size:.0f} MiB; hits/misses cold {cold.pop('cache hits/misses')}, "
          f"warm {warm.pop('cache hits/misses')}")
    print(f"{'step':<30} {'cold s':>8} {'warm s':>8} {'cold ms/fr':>10} {'warm ms/fr':>10}")
    for key in cold:
        print(f"{key:<30} {cold[key]:8.2f} {warm[key]:8.2f} {1e3 * cold[key] / n:10.1f} {1e3 * warm[key] / n:10.1f}")
    total_c, total_w = sum(cold.values()), sum(warm.values())
    print(f"{'all temporal metrics':<30} {total_c:8.2f} {total_w:8.2f} {1e3 * total_c / n:10.1f} "
          f"{1e3 * total_w / n:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
