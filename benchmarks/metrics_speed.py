"""Image-metric speed against the reference code timed in the same run, with the values' agreement.

Real M3SVD test frames (``shared/data/m3svd/test/{infrared_Enhance,visible_Enhance}/<clip>/*.png``, 640×480,
spread over the test clips), fused by the rounded average ``(IR grey + VI grey + 1) // 2``.

**Same-run ratios** (the figures that count: absolute seconds depend on the machine and its load). Each reference
is loaded at runtime from the path given (fetch it from its public repository at the commit pinned in
``benchmarks/references.json``; it is never committed here) and timed interleaved with this package's matching
metric set, frame by frame, alternating which goes first, on one thread (OpenCV and torch set to 1), ours through
:func:`m3svd.metrics.score` with fresh :class:`Sources` per frame (source statistics recomputed, the input
conversion included). The reference gets its inputs already read as its own loader reads them (not timed).
The ratio is the median over (frame, round) samples of reference seconds / ours (wall clock; the same with
process CPU time in brackets, less sensitive to other processes on a shared machine).

- ``--cddfuse-evaluator PATH``: MMIF-CDDFuse ``utils/Evaluator.py``, its 12 metrics on float32 grey (as
  ``image_read_cv2(path, 'GRAY')`` gives) against the ``cddfuse`` set; the ``m3svd`` protocol's 12 image
  metrics are timed in the same loop (a different metric set: a yardstick, not a like-for-like ratio). It needs
  scikit-learn, which m3svd does not: put it on ``PYTHONPATH``. Agreement: max |Δ| and max |Δ|/|ref| per metric
  against the Evaluator on float32 inputs (its own precision) and on the same arrays cast to float64 (untimed).
- ``--vfbench-metric PATH``: VF-Bench ``src/util/metric.py`` (torch, float64, CPU) VIF, SSIM, MI, Qabf against
  the ``vfbench`` set, on ``--vfbench-frames`` frames (it takes seconds per frame).

Without a path the benchmark says so in one line and reports our own times only. Then, unless
``--conventions`` is given empty: each convention's image set cold (fresh ``Sources``) and warm (reused), batch 1
and batch N, on one thread and ``--threads``; and per-metric milliseconds of the ``cddfuse`` and ``m3svd``
protocol sets (each metric alone, fresh sources) next to the Evaluator's per-method times. The process keeps freed
memory as ``m3svd evaluate`` does (:func:`m3svd.memory.keep_freed_memory`) unless ``--default-allocator``::

    PYTHONPATH=/path/to/sklearn-site python benchmarks/metrics_speed.py \\
        --cddfuse-evaluator REFS/cddfuse/Evaluator.py --vfbench-metric REFS/vfbench/metric.py \\
        [--frames 4] [--rounds 3] [--vfbench-frames 1] [--conventions cddfuse m3svd] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
import sys
import time
import types
from pathlib import Path

import cv2
import numpy as np

from m3svd import metrics, protocols
from m3svd.memory import keep_freed_memory
from m3svd.metrics import Sources

ROOT = Path(__file__).resolve().parents[1].parent / "shared"
MANIFEST = Path(__file__).with_name("references.json")
CONVENTIONS = ("cddfuse", "vfbench", "vifb", "tang", "m3svd")
# the Evaluator's 12 metrics, ours → its method (ssim is its legacy data_range=2 SSIM; ssim_dr255 is our extra)
CDDFUSE_SET = {"en": "EN", "sd": "SD", "sf": "SF", "ag": "AG", "mi": "MI", "mse": "MSE", "cc": "CC",
               "psnr": "PSNR", "scd": "SCD", "vif": "VIFF", "qabf": "Qabf", "ssim": "SSIM"}
FUSED_ONLY = ("EN", "SD", "SF", "AG")
VFBENCH_SET = {"vif": "Metric_VIF", "ssim": "Metric_SSIM", "mi": "Metric_MI", "qabf": "Metric_Qabf"}


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


def protocol_set() -> list[str]:
    """The ``m3svd-clean`` protocol's image metrics (from the protocol, so the benchmark follows it)."""
    return list(protocols.load("m3svd-clean").image_metrics)


def metric_set(convention: str):
    if convention == "cddfuse":
        return [metrics.get(name, convention) for name in CDDFUSE_SET]
    if convention == "m3svd-protocol":
        return [metrics.get(name, "m3svd") for name in protocol_set()]
    return [m for m in metrics.list(convention) if m.kind == "image"]


# --------------------------------------------------------------------------------------------- references


def load_reference(path: Path, key: str, name: str, patch: tuple[str, str] | None = None) -> types.ModuleType:
    """The reference file executed as a module (``patch``: one exact line replaced first); a sha256 other than the
    manifest's is reported, not refused."""
    if not path.is_file():
        sys.exit(f"metrics_speed: {name} not found at {path} (fetch {_pinned(key)})")
    text = path.read_bytes()
    expected = json.loads(MANIFEST.read_text())[key]["sha256"]
    if hashlib.sha256(text).hexdigest() != expected:
        print(f"note: {path} is not the pinned {_pinned(key)} (sha256 differs); timing it anyway")
    source = text.decode()
    if patch is not None:
        if source.count(patch[0]) != 1:
            sys.exit(f"metrics_speed: {path}: expected the line {patch[0]!r} once, found it "
                     f"{source.count(patch[0])} times")
        source = source.replace(patch[0], patch[1])
    module = types.ModuleType(f"reference_{key}")
    module.__file__ = str(path)
    try:
        exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - the reference under test
    except ImportError as error:
        sys.exit(f"metrics_speed: cannot load {name} from {path}: {error} (install it or put it on PYTHONPATH)")
    return module


def _pinned(key: str) -> str:
    ref = json.loads(MANIFEST.read_text())[key]
    return f"{ref['repo']}@{ref['commit'][:8]} {ref['path']}"


def cddfuse_reader(frames: np.ndarray, dtype=np.float32) -> list[np.ndarray]:
    """``image_read_cv2(path, 'GRAY')`` on decoded frames: BGR float32 → ``BGR2GRAY`` → ``np.round``."""
    out = []
    for x in frames:
        bgr = np.repeat(x[..., None], 3, axis=-1) if x.ndim == 2 else x[..., ::-1]
        grey = np.round(cv2.cvtColor(np.ascontiguousarray(bgr, dtype=np.float32), cv2.COLOR_BGR2GRAY))
        out.append(grey.astype(dtype))
    return out


def run_evaluator(ev, f, a, b) -> tuple[dict[str, float], dict[str, float]]:
    """Every Evaluator metric on one frame as ``test_IVF.py`` calls them: ``({ours: value}, {ours: seconds})``."""
    values, seconds = {}, {}
    for ours, method in CDDFUSE_SET.items():
        fn = getattr(ev, method)
        t = time.perf_counter()
        values[ours] = float(fn(f) if method in FUSED_ONLY else fn(f, a, b))
        seconds[ours] = time.perf_counter() - t
    return values, seconds


def run_vfbench(vb, f, a, b) -> tuple[dict[str, float], dict[str, float]]:
    values, seconds = {}, {}
    for ours, fn_name in VFBENCH_SET.items():
        t = time.perf_counter()
        values[ours] = float(getattr(vb, fn_name)(f, a, b).item())
        seconds[ours] = time.perf_counter() - t
    return values, seconds


def vfbench_inputs(ir, vi, fused):
    """VF-Bench's metric inputs: float64 ``1×C×H×W`` tensors of the 0–255 levels (grey stays one channel; its
    ``_input_check`` repeats it to three)."""
    import torch

    def t(x):
        x = x[None, None] if x.ndim == 2 else np.ascontiguousarray(x.transpose(2, 0, 1))[None]
        return torch.from_numpy(x.astype(np.float64))

    return t(fused), t(ir), t(vi)


def ours_once(chosen, ir, vi, fused) -> tuple[dict[str, float], float]:
    """One frame through ``metrics.score`` with fresh sources, one thread: ``({name: value}, seconds)``."""
    t = time.perf_counter()
    values = metrics.score(chosen, fused[None], Sources(ir=ir[None], vi=vi[None]), threads=1)
    return {k: float(v[0]) for k, v in values.items()}, time.perf_counter() - t


def same_run(run_ref, ref_inputs, sets: dict, ir, vi, fused, rounds: int):
    """Interleave the reference and each of ``sets`` frame by frame, alternating which goes first. Returns
    (reference values per frame, per-metric reference seconds, {set: (ours values per frame, wall ratios, ours
    wall seconds, CPU-time ratios)}, reference wall seconds)."""
    ref_values, ref_metric_s, ref_s = [None] * len(fused), {}, []
    ours = {name: ([None] * len(fused), [], [], []) for name in sets}
    for r in range(rounds):
        for i in range(len(fused)):
            order = ["ref", *sets] if (r + i) % 2 == 0 else [*sets, "ref"]
            wall, cpu = {}, {}
            for who in order:
                c = time.process_time()
                if who == "ref":
                    values, seconds = run_ref(*ref_inputs[i])
                    ref_values[i] = values
                    for k, s in seconds.items():
                        ref_metric_s.setdefault(k, []).append(s)
                    wall[who] = sum(seconds.values())
                else:
                    values, wall[who] = ours_once(sets[who], ir[i], vi[i], fused[i])
                    ours[who][0][i] = values
                cpu[who] = time.process_time() - c
            ref_s.append(wall["ref"])
            for who in sets:
                ours[who][1].append(wall["ref"] / wall[who])
                ours[who][2].append(wall[who])
                ours[who][3].append(cpu["ref"] / cpu[who])
    return ref_values, {k: statistics.median(v) for k, v in ref_metric_s.items()}, ours, ref_s


def agreement(ref_values: list[dict], our_values: list[dict]) -> dict[str, tuple[float, float]]:
    """``{metric: (max |ours − ref|, max |ours − ref| / |ref|)}`` over the frames."""
    out = {}
    for name in ref_values[0]:
        d = [abs(o[name] - r[name]) for r, o in zip(ref_values, our_values, strict=True)]
        rel = [x / abs(r[name]) if r[name] else (0.0 if x == 0 else float("inf"))
               for x, r in zip(d, ref_values, strict=True)]
        out[name] = (max(d), max(rel))
    return out


def print_ratios(label: str, ref_s: list[float], sets: dict, ours: dict) -> None:
    print(f"{label}: median {statistics.median(ref_s) * 1e3:.0f} ms/frame")
    for name, chosen in sets.items():
        _, ratios, secs, cpu = ours[name]
        print(f"  ours {name} ({len(chosen)} metrics): median {statistics.median(secs) * 1e3:.1f} ms/frame, "
              f"ratio {statistics.median(ratios):.1f}x (samples {min(ratios):.1f}-{max(ratios):.1f}; "
              f"CPU time {statistics.median(cpu):.1f}x)")


def print_agreement(title: str, agree: dict) -> None:
    print(f"  agreement {title}: " + ", ".join(f"{k} {a:.2g}/{r:.2g}" for k, (a, r) in agree.items())
          + "  (max abs / max rel)")


def time_alone(m, ir, vi, fused, repeat: int) -> float:
    """Median seconds per frame of one metric alone, fresh sources per frame, one thread."""
    samples = []
    for _ in range(repeat):
        for i in range(len(fused)):
            samples.append(ours_once([m], ir[i], vi[i], fused[i])[1])
    return statistics.median(samples)


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
    ap.add_argument("--cddfuse-evaluator", type=Path, help="MMIF-CDDFuse utils/Evaluator.py (references.json)")
    ap.add_argument("--vfbench-metric", type=Path, help="VF-Bench src/util/metric.py (references.json)")
    ap.add_argument("--frames", type=int, default=4, help="frames N (default 4)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds over the frames (default 3)")
    ap.add_argument("--vfbench-frames", type=int, default=1, help="frames for VF-Bench (default 1)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per own-time measurement, best kept (default 3)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads of the threaded own-time rows (default: one per core, as m3svd evaluate)")
    ap.add_argument("--data", type=Path, default=ROOT / "data", help="the shared data folder")
    ap.add_argument("--conventions", nargs="*", default=["cddfuse", "m3svd-protocol"],
                    choices=[*CONVENTIONS, "m3svd-protocol"],
                    help="own-time table rows (default cddfuse m3svd-protocol; none: skip the table)")
    ap.add_argument("--no-per-metric", action="store_true", help="skip the per-metric table")
    ap.add_argument("--default-allocator", action="store_true",
                    help="leave glibc's defaults (freed planes go back to the OS and page-fault afresh)")
    args = ap.parse_args(argv)
    kept = not args.default_allocator and keep_freed_memory()
    ir, vi, fused = load_frames(args.data, max(args.frames, 1))
    n = len(fused)
    print(f"{n} frames {fused.shape[1]}x{fused.shape[2]}, "
          f"{'freed memory kept (as m3svd evaluate)' if kept else 'default allocator'}")

    sets = {"cddfuse": metric_set("cddfuse"), "m3svd-protocol": metric_set("m3svd-protocol")}
    ref_metric_s = {}
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    if args.cddfuse_evaluator is None:
        print("CDDFuse Evaluator: no --cddfuse-evaluator given, not timed (our own times only)")
    else:
        mod = load_reference(args.cddfuse_evaluator, "cddfuse_evaluator", "the CDDFuse Evaluator")
        mod.ssim = functools.partial(mod.ssim, data_range=2.0)  # references.json: run_as
        ev = mod.Evaluator
        inputs = [tuple(cddfuse_reader(x[i:i + 1])[0] for x in (fused, ir, vi)) for i in range(n)]
        print(f"\nsame run, one thread, fresh sources, {n} frames x {args.rounds} rounds, ratio = Evaluator / ours")
        ref_values, ref_metric_s, ours, ref_s = same_run(lambda *a: run_evaluator(ev, *a), inputs,
                                                         sets, ir, vi, fused, args.rounds)
        print_ratios(f"CDDFuse Evaluator ({_pinned('cddfuse_evaluator')}, 12 metrics)", ref_s, sets, ours)
        print_agreement("cddfuse vs Evaluator (float32 inputs, as it runs)",
                        agreement(ref_values, ours["cddfuse"][0]))
        f64 = [run_evaluator(ev, *(x.astype(np.float64) for x in inp))[0] for inp in inputs]
        print_agreement("cddfuse vs Evaluator on float64 inputs (golden value_f64_inputs)",
                        agreement(f64, ours["cddfuse"][0]))
    if args.vfbench_metric is None:
        print("VF-Bench: no --vfbench-metric given, not timed (our own times only)")
    else:
        import torch

        torch_threads = torch.get_num_threads()
        torch.set_num_threads(1)
        vb = load_reference(args.vfbench_metric, "vfbench_metric", "VF-Bench's metric code",
                            patch=("assert batch.device.type != 'cpu', \"input is on CPU\"", "pass"))
        k = max(1, min(args.vfbench_frames, n))
        inputs = [vfbench_inputs(ir[i], vi[i], fused[i]) for i in range(k)]
        vsets = {"vfbench": metric_set("vfbench")}
        print(f"\nsame run, one thread, fresh sources, {k} frames x {args.rounds} rounds, ratio = VF-Bench / ours")
        ref_values, _, ours, ref_s = same_run(lambda *a: run_vfbench(vb, *a), inputs, vsets,
                                              ir[:k], vi[:k], fused[:k], args.rounds)
        print_ratios(f"VF-Bench metric.py ({_pinned('vfbench_metric')}, torch CPU float64, 4 metrics)", ref_s,
                     vsets, ours)
        print_agreement("vfbench vs VF-Bench", agreement(ref_values, ours["vfbench"][0]))
        torch.set_num_threads(torch_threads)

    if not args.no_per_metric:
        print(f"\nper metric, ms per frame (median; ours: the metric alone, fresh sources, one thread, "
              f"{n} frames x {args.repeat})")
        print(f"{'metric':<10} {'Evaluator':>9} {'cddfuse':>8} {'ratio':>6}   {'metric':<8} {'m3svd':>8}")
        rows_c = [(m, time_alone(m, ir, vi, fused, args.repeat)) for m in sets["cddfuse"]]
        rows_m = [(m, time_alone(m, ir, vi, fused, args.repeat)) for m in sets["m3svd-protocol"]]
        for k in range(max(len(rows_c), len(rows_m))):
            left = right = ""
            if k < len(rows_c):
                m, s = rows_c[k]
                r = ref_metric_s.get(m.name)
                left = (f"{m.name:<10} {r * 1e3 if r else float('nan'):9.1f} {s * 1e3:8.2f} "
                        f"{r / s if r else float('nan'):6.1f}")
            if k < len(rows_m):
                m, s = rows_m[k]
                right = f"{m.name:<8} {s * 1e3:8.2f}"
            print(f"{left:<37}   {right}")
    cv2.setNumThreads(threads)

    if args.conventions:
        print(f"\nown times, seconds per frame, best of {args.repeat}")
        print(f"{'set':<15} {'metrics':>7} {'batch':>5} {'threads':>7} {'cold s':>9} {'warm s':>9}")
        runs = [(1, 1)] + [(n, t) for t in sorted({1, args.threads}) if n > 1]
        for conv in args.conventions:
            chosen = metric_set(conv)
            for b, t in runs:
                cold = time_set(chosen, ir[:b], vi[:b], fused[:b], False, args.repeat, t)
                warm = time_set(chosen, ir[:b], vi[:b], fused[:b], True, args.repeat, t)
                print(f"{conv:<15} {len(chosen):>7} {b:>5} {t:>7} {cold:9.4f} {warm:9.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
