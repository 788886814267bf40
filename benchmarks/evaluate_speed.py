"""End-to-end ``m3svd evaluate`` speed: frames per second for one method on a protocol (decode, fuse, write PNGs,
every image and temporal metric), with 1 and 2 workers, a cold and a warm flow cache, in one run.

Each configuration runs in a fresh process (imports excluded from the time) into a fresh output folder:

- **cold**: an empty flow cache, so every source flow and mask is estimated and written;
- **warm**: the same cache again, so source flows and masks are read back (fused-video flows are always computed).

``--baseline TREE`` also times another checkout of this repository (e.g. the main branch's worktree) on the same
configurations, interleaved with this one, and prints the ratio: the reference is timed in the same run, so the
ratio holds on a busy machine where the seconds do not. Values are compared too: every run of the same inputs must
give the same rows (``value`` column, bit for bit).

    python benchmarks/evaluate_speed.py --root /work/data/lbroot                  # gff on m3svd-val-clean
    python benchmarks/evaluate_speed.py --root DATA --baseline ../main --clips 0111_1716,0114_1609

Reports frames/s (wall) and CPU seconds per frame (this process and its workers: steadier than wall time when
other jobs share the cores). ``--stages`` first prints where one clip's time goes, per tree, in CPU ms per frame
on one thread (decode, fuse, PNG, image metrics, each flow kind with a cold cache, each temporal metric).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
from m3svd import protocols
from m3svd.evaluate import MethodSpec, Subset, evaluate_methods
from m3svd.memory import keep_freed_memory
import pandas as pd

args = json.loads(sys.argv[1])
keep_freed_memory()
protocol = protocols.load(args["protocol"])
subset = Subset(clips=tuple(args["clips"])) if args["clips"] else None
spec = MethodSpec(args["method"])
wall, cpu = time.perf_counter(), time.process_time()
evaluate_methods(protocol, [(spec, args["out"])], root=args["root"], workers=args["workers"],
                 flow_cache=args["cache"], subset=subset)
wall = time.perf_counter() - wall
child = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = time.process_time() - cpu + child.ru_utime + child.ru_stime
rows = pd.read_parquet(Path(args["out"]) / "results.parquet")
frames = len(rows[["clip", "frame"]].drop_duplicates())
rows = rows.sort_values(["clip", "frame", "metric"])
print(json.dumps({"wall": wall, "cpu": cpu, "frames": frames,
                  "values": [[c, int(f), m, float(v)] for c, f, m, v in
                             zip(rows["clip"], rows["frame"], rows["metric"], rows["value"])]}))
"""


STAGES = r"""
import json, sys, tempfile, time
import cv2, torch
torch.set_num_threads(1)
cv2.setNumThreads(1)
from m3svd import flow as fl
from m3svd import metrics, protocols
from m3svd.evaluate.inputs import find_dataset
from m3svd.methods import create
from m3svd.metrics import temporal as tm

args = json.loads(sys.argv[1])
protocol = protocols.load(args["protocol"])
clips = {c.name: c for c in find_dataset(protocol, args["root"]).select(protocol.split, protocol.variant)}
clip = clips[args["clips"][0]] if args["clips"] else next(iter(clips.values()))
times = {}


def timed(label, fn):
    t = time.process_time()
    out = fn()
    times[label] = times.get(label, 0.0) + time.process_time() - t
    return out


ir, vi = timed("decode", lambda: clip.frames(0, 20))
fused = timed("fuse", lambda: create(args["method"]).fuse(ir, vi).fused)
timed("write PNG", lambda: [cv2.imencode(".png", f) for f in fused])
image = [metrics.get(n, protocol.convention) for n in protocol.image_metrics]
timed("image metrics", lambda: metrics.score(image, fused, metrics.Sources(ir=ir, vi=vi), keep_undefined=True))
with tempfile.TemporaryDirectory() as cache:
    src = tm.VideoSources(ir=ir, vi=vi, flow=protocol.flow, cache=fl.FlowCache(cache))
    timed("source DIS + masks + cache write", lambda: [tm.source_flows(src, w).compute_all() for w in ("ir", "vi")])
    timed("source Farneback + cache write",
          lambda: [tm.source_flows(src, w, tm.TOF_FLOW, masks=False).compute_all() for w in ("ir", "vi")])
    timed("fused DIS (both ways)", lambda: tm.fused_flows(src, fused).compute_all())
    timed("fused Farneback", lambda: tm.fused_flows(src, fused, tm.TOF_FLOW, forward_only=True).compute_all())
    for name in protocol.temporal_metrics:
        timed(f"metric {name}", lambda: metrics.get(name, protocol.convention)(fused, sources=src))
print(json.dumps({"frames": len(fused), "clip": clip.name, "times": times}))
"""


def run(tree: Path, args: dict, script: str = CHILD) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(args)], env=env, cwd=tree, capture_output=True,
                          text=True)
    if done.returncode:
        sys.exit(f"evaluate_speed: the run in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="the dataset root of the protocol (e.g. holding val-frames/)")
    ap.add_argument("--protocol", default="m3svd-val-clean")
    ap.add_argument("--method", default="gff")
    ap.add_argument("--clips", default=None, help="only these clips (comma-separated; default: all of the protocol)")
    ap.add_argument("--workers", default="1,2", help="worker counts to time (default 1,2; '' for --stages only)")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to time in the same run")
    ap.add_argument("--stages", action="store_true", help="first, CPU ms per frame by stage on one clip, per tree")
    args = ap.parse_args(argv)
    trees = [("this", HERE)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    clips = args.clips.split(",") if args.clips else None
    print(f"{args.method} on {args.protocol} ({args.root}{', clips ' + args.clips if clips else ''}); "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
    if args.stages:
        common = {"protocol": args.protocol, "method": args.method, "root": args.root, "clips": clips}
        stages = {label: run(tree, common, STAGES) for label, tree in trees}
        first = stages["this"]
        print(f"\nCPU ms per frame by stage, one thread, first 20 frames of clip {first['clip']}, cold flow cache")
        print(f"{'stage':<36}" + "".join(f"{label:>10}" for label, _ in trees))
        for key in list(first["times"]) + ["total"]:
            row = [1e3 * (sum(st["times"].values()) if key == "total" else st["times"].get(key, float("nan")))
                   / st["frames"] for st in stages.values()]
            print(f"{key:<36}" + "".join(f"{v:10.1f}" for v in row))
        print()
    results, reference_values = {}, None
    with tempfile.TemporaryDirectory(prefix="m3svd-evaluate-speed-") as tmp:
        for workers in (int(w) for w in args.workers.split(",") if w):
            for label, tree in trees:
                cache = Path(tmp) / f"cache-{label}-{workers}"
                for state in ("cold", "warm"):
                    out = Path(tmp) / f"out-{label}-{workers}-{state}"
                    r = run(tree, {"protocol": args.protocol, "method": args.method, "root": args.root,
                                   "clips": clips, "workers": workers, "cache": str(cache), "out": str(out)})
                    values = r.pop("values")
                    reference_values = reference_values or values
                    r["same"] = values == reference_values
                    results[label, workers, state] = r
                    print(f"  {label:<8} workers {workers} {state}: {r['frames'] / r['wall']:6.2f} frames/s, "
                          f"{r['cpu'] / r['frames']:6.3f} CPU s/frame, values "
                          f"{'identical' if r['same'] else 'DIFFER'}", flush=True)
    if not results:
        return 0
    print(f"\n{'workers':>7} {'cache':>5} " + " ".join(f"{label + ' fr/s':>14}" for label, _ in trees)
          + (f" {'speed-up':>9}" if args.baseline else ""))
    for workers in (int(w) for w in args.workers.split(",") if w):
        for state in ("cold", "warm"):
            rates = [results[label, workers, state]["frames"] / results[label, workers, state]["wall"]
                     for label, _ in trees]
            print(f"{workers:>7} {state:>5} " + " ".join(f"{r:14.2f}" for r in rates)
                  + (f" {rates[0] / rates[1]:8.2f}x" if args.baseline else ""))
    same = all(r["same"] for r in results.values())
    print(f"\nvalues of every run identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
