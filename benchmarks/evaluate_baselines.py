"""Every classical baseline on ``m3svd-clean`` and ``m3svd-degraded`` over the M3SVD clips on disk, end to end.

Prints each protocol's results table (mean over clips, 95% bootstrap CI half-width), then frames per second of
``m3svd evaluate`` end to end (decode, fuse, write PNG, all metrics) for one method with 1 and 2 workers, the
time of a rerun that finds every clip done, and several methods in one pass against separate runs::

    python benchmarks/evaluate_baselines.py [--root ../shared/data/m3svd] [--out benchmarks/out/evaluate]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from m3svd import methods, protocols
from m3svd.evaluate import MethodSpec, evaluate, evaluate_methods

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "m3svd"
CLASSICAL = ("ir", "vi", "average", "max", "laplacian", "dwt", "gff", "gff-temporal")


def table(protocol, root: Path, out: Path) -> None:
    """The image-metric table, then the temporal one, from one pass over every baseline (reruns skip done clips)."""
    done = evaluate_methods(protocol, [(MethodSpec(n), out / protocol.id / n) for n in CLASSICAL], root=root)
    runs = dict(zip(CLASSICAL, done, strict=True))
    for kind, names in (("image", list(protocol.image_metrics)), ("temporal", list(protocol.temporal_metrics))):
        print(f"\n## {protocol.key}, {kind} metrics — mean over clips (± 95% CI half-width)")
        print("| method | " + " | ".join(f"{n} {'↑' if _higher(protocol, n) else '↓'}" for n in names) + " |")
        print("|---" * (len(names) + 1) + "|")
        for name, run in runs.items():
            overall = run.summary[run.summary["clip"] == ""].set_index("metric")
            cells = [f"{overall.loc[n, 'mean']:.4f} ± {(overall.loc[n, 'ci_high'] - overall.loc[n, 'ci_low']) / 2:.4f}"
                     for n in names]
            print(f"| {name} | " + " | ".join(cells) + " |")
    run = runs[CLASSICAL[-1]]
    print(f"clips: {', '.join(sorted(run.results['clip'].unique()))}; "
          f"{run.results.drop_duplicates(['clip', 'frame']).shape[0]} frames")


def _higher(protocol, name: str) -> bool:
    from m3svd import metrics

    return metrics.get(name, protocol.convention).higher_is_better


def throughput(protocol, root: Path, out: Path, method: str) -> None:
    print(f"\n## end-to-end throughput, {method} on {protocol.key}")
    for workers in (1, 2):
        target = out / "speed" / f"workers{workers}"
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        run = evaluate(protocol, target, method=MethodSpec(method), root=root, workers=workers)
        seconds = time.perf_counter() - start
        frames = run.results.drop_duplicates(["clip", "frame"]).shape[0]
        print(f"workers={workers}: {frames} frames in {seconds:.1f} s = {frames / seconds:.2f} frames/s")
    start = time.perf_counter()
    run = evaluate(protocol, target, method=MethodSpec(method), root=root, workers=2)
    print(f"rerun: {len(run.skipped)} of {run.results['clip'].nunique()} clips skipped in "
          f"{time.perf_counter() - start:.2f} s")


def one_pass(protocol, root: Path, out: Path, names: tuple[str, ...]) -> None:
    """Several methods scored in one pass (shared source statistics) against one run each; source flows warm."""
    print(f"\n## {len(names)} methods ({', '.join(names)}) on {protocol.key}: one pass vs separate runs")
    evaluate(protocol, out / "warm", method=MethodSpec("average"), root=root)  # fills the source-flow cache
    seconds = {}
    for mode in ("separate", "one pass"):
        target = out / mode.replace(" ", "-")
        shutil.rmtree(target, ignore_errors=True)
        start = time.perf_counter()
        if mode == "separate":
            runs = [evaluate(protocol, target / n, method=MethodSpec(n), root=root) for n in names]
        else:
            runs = evaluate_methods(protocol, [(MethodSpec(n), target / n) for n in names], root=root)
        seconds[mode] = time.perf_counter() - start
        frames = runs[0].results.drop_duplicates(["clip", "frame"]).shape[0] * len(names)
        print(f"{mode}: {frames} method-frames in {seconds[mode]:.1f} s = {frames / seconds[mode]:.2f} frames/s")
    print(f"ratio separate / one pass: {seconds['separate'] / seconds['one pass']:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "evaluate")
    parser.add_argument("--method", default="gff", help="method timed end to end (default gff)")
    args = parser.parse_args()
    assert set(CLASSICAL) <= {m.name for m in methods.list()}
    for name in ("m3svd-clean", "m3svd-degraded"):
        table(protocols.load(name), args.root, args.out)
    throughput(protocols.load("m3svd-clean"), args.root, args.out, args.method)
    one_pass(protocols.load("m3svd-clean"), args.root, args.out / "one-pass", ("average", "max", "laplacian", "dwt"))


if __name__ == "__main__":
    main()
