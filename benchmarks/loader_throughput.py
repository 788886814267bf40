"""Frames/s through ``DataLoader(M3SVD)`` with 0, 1 and 2 workers against raw decode of the same frames.

Raw decode reads every frame of the selected windows with ``clip.ir(i)`` / ``clip.vi(i)`` in one process (no crop,
no tensors); a DataLoader row counts the same frame pairs delivered as cropped float tensors, worker start-up
included. Runs on the real test data in ``../shared/data`` (PNG four-folder clips and the mp4 clips)::

    python benchmarks/loader_throughput.py [--frames 7] [--windows 48] [--crop 256] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from m3svd.data.torch_dataset import M3SVD
from m3svd.errors import DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FORMATS = {"png": ("m3svd", "--png-root"), "mp4": ("m3svd_videos", "--mp4-root")}


def _dataset(root: Path, args) -> M3SVD:
    """A fresh dataset (and fresh decoders) for each measurement."""
    return M3SVD(root, split="test", variant="clean", frames=args.frames, stride=1, crop=args.crop)


def _selection(n: int, count: int) -> list[int]:
    """``count`` window indices spread evenly over ``n`` windows (cycling when ``count > n``)."""
    if count <= n:
        return np.linspace(0, n - 1, count).round().astype(int).tolist()
    return [i % n for i in range(count)]


def raw_decode(root: Path, args, indices: list[int]) -> tuple[int, float, float]:
    """``(frame pairs, seconds, seconds to the first batch's worth of windows)``."""
    ds = _dataset(root, args)
    start, pairs, first = time.perf_counter(), 0, None
    for k, index in enumerate(indices):
        window = ds.windows[index]
        clip = ds.clips[window.clip]
        for i in range(window.start, window.start + args.frames):
            clip.ir(i)
            clip.vi(i)
            pairs += 1
        if k + 1 == args.batch_size:
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    return pairs, total, first or total


def through_loader(root: Path, args, indices: list[int], workers: int) -> tuple[int, float, float]:
    loader = DataLoader(Subset(_dataset(root, args), indices), batch_size=args.batch_size, num_workers=workers,
                        timeout=300 if workers else 0)
    start, pairs, first = time.perf_counter(), 0, None
    for batch in loader:
        pairs += batch["ir"].shape[0] * batch["ir"].shape[1]
        first = first or time.perf_counter() - start
    return pairs, time.perf_counter() - start, first


def measure(fmt: str, root: Path, args) -> list[dict]:
    n = len(_dataset(root, args))
    indices = _selection(n, args.windows)
    rows = []
    for label, run in [("raw decode", lambda: raw_decode(root, args, indices))] + [
        (f"DataLoader w={w}", lambda w=w: through_loader(root, args, indices, w)) for w in args.workers
    ]:
        pairs, seconds, first = run()
        rows.append({"format": fmt, "reader": label, "frame_pairs": pairs, "seconds": seconds,
                     "first_batch_s": first, "frames_per_s": pairs / seconds})
        print(f"  {fmt} {label}: {pairs} frame pairs in {seconds:.2f} s", file=sys.stderr, flush=True)
    for row in rows:
        row["vs_raw"] = row["frames_per_s"] / rows[0]["frames_per_s"]
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'format':<7}{'reader':<17}{'frames':>7}{'seconds':>9}{'1st batch s':>12}{'frames/s':>10}"
             f"{'loader/raw':>12}"]
    for r in rows:
        lines.append(f"{r['format']:<7}{r['reader']:<17}{r['frame_pairs']:>7}{r['seconds']:>9.2f}"
                     f"{r['first_batch_s']:>12.2f}{r['frames_per_s']:>10.1f}{r['vs_raw']:>12.2f}")
    return "\n".join(lines)


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=7, metavar="N", help="frames per window (default 7)")
    parser.add_argument("--windows", type=int, default=48, help="windows read per measurement (default 48)")
    parser.add_argument("--crop", type=int, default=256, help="square crop side in px (default 256)")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per batch (default 4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader workers (0 1 2)")
    parser.add_argument("--formats", nargs="+", choices=sorted(FORMATS), default=["png", "mp4"])
    parser.add_argument("--png-root", type=Path, default=SHARED / "m3svd", help="four-folder PNG clips")
    parser.add_argument("--mp4-root", type=Path, default=SHARED / "m3svd_videos", help="mp4 clips")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args(argv)
    if min(args.frames, args.windows, args.crop, args.batch_size) < 1:
        parser.error("--frames, --windows, --crop and --batch-size must be positive")

    roots = {"png": args.png_root, "mp4": args.mp4_root}
    for fmt in args.formats:
        if not roots[fmt].is_dir():
            print(f"loader_throughput: no {fmt} data at {roots[fmt]} (pass {FORMATS[fmt][1]} DIR)", file=sys.stderr)
            return 2
    torch.set_num_threads(1)  # the loaders parallelise by process; keep each one single-threaded
    rows = []
    try:
        for fmt in args.formats:
            rows += measure(fmt, roots[fmt], args)
    except DataError as error:
        print(f"loader_throughput: {error}", file=sys.stderr)
        return 2
    print(f"frames={args.frames} windows={args.windows} crop={args.crop} batch={args.batch_size} "
          f"cpus={os.cpu_count()} (frames = IR+VIS frame pairs; worker start-up included)")
    print(table(rows))
    if args.out:
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        write_json(args.out, {"settings": settings, "cpus": os.cpu_count(), "results": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
