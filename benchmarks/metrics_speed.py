"""Seconds per 640×480 frame for each convention's full metric set, against ``shared/golden/timing.csv``.

Real M3SVD test frames (``shared/data/m3svd/test/{infrared_Enhance,visible_Enhance}/<clip>/*.png``), fused by the
rounded average ``(IR grey + VI grey + 1) // 2``. Each set is scored as ``m3svd evaluate`` scores it
(:func:`m3svd.metrics.score`), cold (fresh :class:`Sources`, so source statistics are recomputed) and warm (the
same ``Sources`` reused), for a batch of 1 and a batch of ``--frames`` on one thread and on ``--threads`` (the
evaluator's default with ``--workers 1``: one per core); the best of ``--repeat`` runs is reported per frame. The
reference timings are one process, one thread. Per-metric timings (one thread) follow for the ``cddfuse`` set.
The process keeps freed memory as ``m3svd evaluate`` does (:func:`m3svd.memory.keep_freed_memory`) unless
``--default-allocator``::

    python benchmarks/metrics_speed.py [--frames 4] [--repeat 3] [--threads N] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from m3svd import metrics
from m3svd.memory import keep_freed_memory
from m3svd.metrics import Sources

ROOT = Path(__file__).resolve().parents[1].parent / "shared"
CONVENTIONS = ("cddfuse", "vfbench", "vifb", "tang", "m3svd")
# the reference Evaluator's metrics (ssim_dr255 is this package's extra)
CDDFUSE_SET = ("en", "sd", "sf", "ag", "mi", "mse", "cc", "psnr", "scd", "vif", "qabf", "ssim")
# timing.csv rows that measure the same metric set as a convention's full set
REFERENCE_ROW = {"cddfuse": "cddfuse_evaluator", "vfbench": "vfbench_spatial_cpu", "vifb": "vifb_numpy_port",
                 "tang": "tang_octave_total"}


def load_frames(data: Path, n: int):
    ir_root, vi_root = data / "m3svd" / "test" / "infrared_Enhance", data / "m3svd" / "test" / "visible_Enhance"
    paths = sorted(ir_root.glob("*/*.png")) if ir_root.is_dir() else []
    if not paths:
        sys.exit(f"metrics_speed: no M3SVD test frames under {ir_root} (pass --data)")
    step = max(len(paths) // n, 1)
    ir, vi = [], []
    for p in paths[::step][:n]:
        i = cv2.imread(str(p), cv2.IMREAD_COLOR)
        v = cv2.imread(str(vi_root / p.parent.name / p.name), cv2.IMREAD_COLOR)
        if i is None or v is None:
            sys.exit(f"metrics_speed: cannot read the pair {p.parent.name}/{p.name}")
        ir.append(i[..., 0])
        vi.append(v[..., ::-1])  # RGB, as the readers give
    ir, vi = np.stack(ir), np.ascontiguousarray(np.stack(vi))
    vg = np.stack([cv2.cvtColor(np.ascontiguousarray(x[..., ::-1]), cv2.COLOR_BGR2GRAY) for x in vi])
    fused = ((ir.astype(np.int32) + vg + 1) // 2).astype(np.uint8)
    return ir, vi, fused


def reference_times(path: Path) -> dict[str, float]:
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        return {row["implementation"]: float(row["median_s_per_frame"]) for row in csv.DictReader(f)}


def metric_set(convention: str):
    if convention == "cddfuse":
        return [metrics.get(name, convention) for name in CDDFUSE_SET]
    return [m for m in metrics.list(convention) if m.kind == "image"]


def time_set(chosen, ir, vi, fused, warm: bool, repeat: int, threads: int = 1) -> float:
    """Best-of-``repeat`` seconds per frame for all of ``chosen`` on the batch."""
    best = float("inf")
    src = Sources(ir=ir, vi=vi)
    if warm:
        metrics.score(chosen, fused, src, threads=threads)
    for _ in range(repeat):
        if not warm:
            src = Sources(ir=ir, vi=vi)
        t = time.perf_counter()
        metrics.score(chosen, fused, src, threads=threads)
        best = min(best, time.perf_counter() - t)
    return best / len(fused)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4, help="batch size N of the batched rows (default 4)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement, best kept (default 3)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads of the threaded rows (default: one per core, as m3svd evaluate --workers 1)")
    ap.add_argument("--data", type=Path, default=ROOT / "data", help="the shared data folder")
    ap.add_argument("--timing", type=Path, default=ROOT / "golden" / "timing.csv", help="reference timings")
    ap.add_argument("--conventions", nargs="+", default=list(CONVENTIONS), choices=CONVENTIONS)
    ap.add_argument("--no-per-metric", action="store_true", help="skip the per-metric cddfuse table")
    ap.add_argument("--default-allocator", action="store_true",
                    help="leave glibc's defaults (freed planes go back to the OS and page-fault afresh)")
    args = ap.parse_args(argv)
    kept = not args.default_allocator and keep_freed_memory()
    ir, vi, fused = load_frames(args.data, max(args.frames, 1))
    ref = reference_times(args.timing)

    print(f"{len(fused)} frames {fused.shape[1]}x{fused.shape[2]}, best of {args.repeat}, seconds per frame, "
          f"{'freed memory kept (as m3svd evaluate)' if kept else 'default allocator'}")
    print(f"{'convention':<10} {'metrics':>7} {'batch':>5} {'threads':>7} {'cold s':>9} {'warm s':>9} "
          f"{'ref s':>8} {'cold x':>8} {'warm x':>8}")
    runs = [(1, 1)] + [(len(fused), t) for t in sorted({1, args.threads}) if len(fused) > 1]
    for conv in args.conventions:
        chosen = metric_set(conv)
        r = ref.get(REFERENCE_ROW.get(conv, ""))
        for n, threads in runs:
            cold = time_set(chosen, ir[:n], vi[:n], fused[:n], False, args.repeat, threads)
            warm = time_set(chosen, ir[:n], vi[:n], fused[:n], True, args.repeat, threads)
            ratio = f"{r / cold:8.1f} {r / warm:8.1f}" if r else f"{'-':>8} {'-':>8}"
            rs = f"{r:8.3f}" if r else f"{'-':>8}"
            print(f"{conv:<10} {len(chosen):>7} {n:>5} {threads:>7} {cold:9.4f} {warm:9.4f} {rs} {ratio}")

    if not args.no_per_metric:
        print(f"\ncddfuse per metric (batch {len(fused)}, seconds per frame)")
        print(f"{'metric':<8} {'cold s':>9} {'warm s':>9}")
        for m in metric_set("cddfuse"):
            cold = time_set([m], ir, vi, fused, False, args.repeat)
            warm = time_set([m], ir, vi, fused, True, args.repeat)
            print(f"{m.name:<8} {cold:9.4f} {warm:9.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
