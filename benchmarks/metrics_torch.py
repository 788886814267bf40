"""Frame pairs per second for the leaderboard's image metrics through the torch path, against the numpy registry.

The ``m3svd`` convention's torch set (``m3svd.metrics.torch_backend.METRICS``) on real 640×480 M3SVD test frames
(``shared/data/m3svd/test``), fused by the rounded average. Sources are prepared once (as ``m3svd evaluate`` does
for every candidate), so the timing is the per-candidate cost. Each line prints pairs/s and the ratio against the
numpy registry on the same frames; the maximum relative deviation from it is printed beside. On a CUDA device the
target is 1,000 pairs/s (float32)::

    python benchmarks/metrics_torch.py [--frames 8] [--batch 8] [--repeat 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_speed import ROOT, load_frames  # noqa: E402

from m3svd import metrics  # noqa: E402
from m3svd.metrics import Sources  # noqa: E402
from m3svd.metrics.torch_backend import METRICS, TorchScorer  # noqa: E402


def best_of(repeat: int, run, *args) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def run(scorer: TorchScorer, chunks, device: str) -> None:
    for sources, fused in chunks:
        scorer.score(fused, sources=sources)
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def numpy_reference(ir, vi, fused, repeat: int) -> tuple[dict[str, np.ndarray], float]:
    """The numpy registry's values of :data:`METRICS` and its pairs/s (sources prepared once, as evaluate does)."""
    sources = Sources(ir=ir, vi=vi)
    reference = {m: metrics.get(m)(fused, sources=sources) for m in METRICS}  # warms the source memo
    seconds = best_of(repeat, lambda: [metrics.get(m)(fused, sources=sources) for m in METRICS])
    return reference, len(fused) / seconds


def measure(ir, vi, fused, reference: dict[str, np.ndarray], device: str, dtype: torch.dtype, batch: int,
            repeat: int) -> dict:
    """Pairs/s of :class:`TorchScorer` in batches of ``batch`` (sources prepared once, one warm-up pass), the
    maximum relative deviation from ``reference`` over all metrics and frames and, on CUDA, the peak MiB."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    scorer = TorchScorer(device=device, dtype=dtype)
    n = len(fused)
    chunks = [(scorer.sources(ir=ir[a:a + batch], vi=vi[a:a + batch]), fused[a:a + batch])
              for a in range(0, n, batch)]
    got = [scorer.score(f, sources=s) for s, f in chunks]  # warm-up, and the values to compare
    seconds = best_of(repeat, run, scorer, chunks, device)
    deviation = max(float(np.nanmax(np.abs(np.concatenate([g[m] for g in got]) - reference[m])
                                    / np.maximum(np.abs(reference[m]), 1e-12))) for m in METRICS)
    out = {"pairs_s": n / seconds, "max_rel_dev": deviation}
    if device.startswith("cuda"):
        out["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8, help="frame pairs scored (default 8)")
    parser.add_argument("--batch", type=int, default=8, help="frames per torch call (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs (default 3)")
    parser.add_argument("--device", action="append", help="torch device(s); default cpu, plus cuda when present")
    parser.add_argument("--data", type=Path, default=ROOT / "data", help="the shared data folder")
    args = parser.parse_args()
    ir, vi, fused = load_frames(args.data, args.frames)
    n = len(ir)
    print(f"{n} frame pairs {ir.shape[1]}×{ir.shape[2]}, metrics: {', '.join(METRICS)}; torch threads "
          f"{torch.get_num_threads()}")

    reference, numpy_rate = numpy_reference(ir, vi, fused, args.repeat)
    print(f"numpy registry         {numpy_rate:9.1f} pairs/s   1.00×")

    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        for dtype in (torch.float64, torch.float32):
            r = measure(ir, vi, fused, reference, device, dtype, args.batch, args.repeat)
            memory = f"   peak {r['peak_mib']:.0f} MiB" if "peak_mib" in r else ""
            print(f"torch {device:5s} {str(dtype)[6:]:8s} {r['pairs_s']:9.1f} pairs/s "
                  f"{r['pairs_s'] / numpy_rate:6.2f}×   max rel dev {r['max_rel_dev']:.1e}{memory}")


if __name__ == "__main__":
    main()
