"""Scoring many methods at once: the metric time of N predictions folders scored in one pass
(``evaluate_methods``, source statistics and flows computed once) against one folder alone, in the same run.

    python benchmarks/many_methods.py --protocol tno42 --root DATA DATA/tno42-fused/*
    python benchmarks/many_methods.py --protocol m3svd-val-clean --root DATA DATA/baselines/m3svd-val-clean/*

Prints seconds for 1 and for N folders and the ratio N-pass / 1-pass (fusion excluded: the folders hold fused
frames already). Source flows are kept in memory (no disk cache), so both runs start cold.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from m3svd import protocols
from m3svd.evaluate import Predictions, evaluate_methods
from m3svd.memory import keep_freed_memory


def timed(protocol, folders: list[Path], root: Path) -> float:
    with tempfile.TemporaryDirectory() as out:
        runs = [(Predictions(str(f), f.name), Path(out) / f.name) for f in folders]
        started = time.perf_counter()
        evaluate_methods(protocol, runs, root=root, flow_cache=False)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+", help="predictions folders (DIR/<clip>/<frame>.png)")
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--root", type=Path, required=True, help="the dataset root of the protocol")
    args = parser.parse_args()
    keep_freed_memory()
    protocol = protocols.load(args.protocol)
    one = timed(protocol, args.folders[:1], args.root)
    many = timed(protocol, args.folders, args.root)
    n = len(args.folders)
    print(f"{protocol.key}: 1 folder {one:.1f} s; {n} folders in one pass {many:.1f} s "
          f"({many / one:.2f}× one folder's time for {n}×the work; {n * one / many:.1f}× faster than {n} runs)")


if __name__ == "__main__":
    main()
