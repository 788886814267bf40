#!/usr/bin/env python
"""Generate one Markdown "metric card" per registered metric name, plus an index.

Every registered metric is computed on every golden item of the lineage it belongs to (each lineage's golden file
checks its own convention), and the max / median relative error ``|ours - golden| / |golden|`` is reported next
to the definitions taken from the registry's descriptions. Nothing in the cards is typed by hand.

    python metrics/build_cards.py                 # full run, writes metrics/cards/
    python metrics/build_cards.py --quick         # a few items per lineage
    python metrics/build_cards.py --metrics qabf ssim --out /tmp/cards

Golden data layout: see ``../shared/golden/README.md``; ``tang2022``'s own Octave run is
``tests/data/tang2022_octave.csv``, whose Image-Fusion items are compared only when ``M3SVD_TANG2022_DIR`` names
that repository's ``General Evaluation Metric`` folder at 53f5542. Run from the repository root with
``PYTHONPATH=$PWD`` when another checkout of ``m3svd`` is installed. Tolerances are read from the tests
(``tests/test_metrics_<lineage>.py``) when they can be imported; otherwise the column says "n/a".
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the cards describe this checkout's m3svd, not another installed copy
DEFAULT_GOLDEN = REPO.parent / "shared" / "golden"
DEFAULT_OUT = REPO / "metrics" / "cards"

# Golden file metric names -> registry names (the same maps as tests/test_metrics_<lineage>.py).
VIFB_NAMES = {
    "Avg_gradient": "ag", "Cross_entropy": "ce", "Edge_intensity": "ei", "Entropy": "en", "Mutinf": "mi",
    "Psnr": "psnr", "Qabf": "qabf", "Qcb": "qcb", "Qcv": "qcv", "Rmse": "rmse", "Spatial_frequency": "sf",
    "Ssim": "ssim", "Variance": "sd",
}
CDDFUSE_NAMES = {"EN": "en", "SD": "sd", "SF": "sf", "AG": "ag", "MI": "mi", "MSE": "mse", "CC": "cc",
                 "PSNR": "psnr", "SCD": "scd", "VIFF": "vif", "Qabf": "qabf", "SSIM": "ssim",
                 "SSIM_dr255": "ssim_dr255"}
VFBENCH_NAMES = {"VIF": "vif", "SSIM": "ssim", "MI": "mi", "Qabf": "qabf"}
TANG_NAMES = {"EN": "en", "SD": "sd", "SF": "sf", "AG": "ag", "MI": "mi", "MSE": "mse", "PSNR": "psnr", "CC": "cc",
              "SCD": "scd", "VIF": "vif", "Qabf": "qabf", "SSIM": "ssim", "Nabf": "nabf", "MS_SSIM": "mef_ms_ssim"}

# golden temporal metric name -> (registry name, convention), as tests/test_temporal_golden.py
TEMPORAL_NAMES = {"flowD": ("flowd", "m3svd"), "flowD_literal": ("flowd", "temcoco"), "BiSWE": ("biswe", "vfbench"),
                  "MS2R": ("ms2r", "vfbench")}
TEMPORAL_LABEL = "TemCoCo / VF-Bench temporal code on stored flows"
TEMPORAL = (TEMPORAL_LABEL, "temporal/temporal.csv", "test_temporal_golden", "RTOL")

# per convention: (source label, golden file relative to the golden dir, test module, tolerance attribute[, the
# metric names the source covers; without it, every name its file holds])
SOURCES = {
    "vifb": [("VIFB MATLAB `value` (5 significant digits)", "vifb/vifb_matlab.csv", "test_metrics_vifb", "RTOL")],
    "cddfuse": [
        ("CDDFuse Evaluator `value_f64_inputs`", "cddfuse/cddfuse.csv", "test_metrics_cddfuse", "RTOL_F64"),
        ("CDDFuse Evaluator `value` (float32 reader)", "cddfuse/cddfuse.csv", "test_metrics_cddfuse", "RTOL_F32"),
    ],
    "vfbench": [("VF-Bench `metric.py`", "vfbench/vfbench.csv", "test_metrics_vfbench", "RTOL",
                 set(VFBENCH_NAMES.values())),
                (*TEMPORAL, {"biswe", "ms2r"})],
    "tang": [("Tang toolbox under GNU Octave", "tang/tang_octave.csv", "test_metrics_tang", "RTOL")],
    # "repo:" = a file of this repository, not of the golden folder
    "tang2022": [("Tang 2022 toolbox under GNU Octave", "repo:tests/data/tang2022_octave.csv",
                  "test_metrics_tang2022", "RTOL")],
    "temcoco": [(*TEMPORAL, {"flowd"})],
    "m3svd": [(*TEMPORAL, {"flowd"})],
}
NO_GOLDEN = {
    "m3svd": "no golden file of its own (Tang's definitions with bugs fixed); the unchanged metrics are checked "
             "against the tang golden values in `tests/test_metrics_m3svd.py`",
}

QUICK_VIFB_PAIRS = 6   # VIFB image/method pairs in --quick mode
QUICK_ITEMS = 4        # subset.csv items per lineage in --quick mode (2 VIFB + 2 M3SVD)


# ----------------------------------------------------------------------------------------------------- golden


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _quick_subset(items: list[dict]) -> list[dict]:
    vifb = [i for i in items if i["set"] == "vifb"][: QUICK_ITEMS // 2]
    other = [i for i in items if i["set"] != "vifb"][: QUICK_ITEMS - len(vifb)]
    return vifb + other


def build_jobs(golden: Path, quick: bool, wanted: set[str] | None) -> list[dict]:
    """One job per (lineage, source pair): the fused items with their expected values per metric."""
    shared = golden.parent
    jobs: list[dict] = []

    def keep(name: str) -> bool:
        return wanted is None or name in wanted

    # vifb: per image/method pair; sources as stored (VIFB uses IR[:, :, k]).
    table: dict[tuple[str, str], dict[str, list]] = defaultdict(dict)
    for row in _rows(golden / "vifb" / "vifb_matlab.csv"):
        name = VIFB_NAMES[row["metric"]]
        if keep(name):
            table[row["image"], row["method"]][name] = [float(row["value"])]
    pairs = sorted(table)
    if quick:
        pairs = pairs[:: max(1, len(pairs) // QUICK_VIFB_PAIRS)][:QUICK_VIFB_PAIRS]
    by_image: dict[str, list] = defaultdict(list)
    for image, method in pairs:
        by_image[image].append((f"vifb/{image}_{method}", str(golden / "vifb" / "fused_images" /
                                                                f"{image}_{method}.jpg"), table[image, method]))
    inputs = shared / "data" / "vifb" / "input"
    for image, fused in sorted(by_image.items()):
        jobs.append({"convention": "vifb", "grey_ir": False, "ir": str(inputs / "IR" / f"{image}.jpg"),
                     "vi": str(inputs / "VI" / f"{image}.jpg"), "fused": fused})

    # subset.csv lineages
    items = {row["id"]: row for row in _rows(golden / "subset.csv")}
    order = list(items.values())
    if quick:
        order = _quick_subset(order)
    chosen = [row["id"] for row in order]
    for convention, names, columns in (("cddfuse", CDDFUSE_NAMES, ("value_f64_inputs", "value")),
                                       ("vfbench", VFBENCH_NAMES, ("value",)),
                                       ("tang", TANG_NAMES, ("value",))):
        expected: dict[str, dict[str, list]] = defaultdict(dict)
        for row in _rows(golden / SOURCES[convention][0][1]):
            name = names[row["metric"]]
            if keep(name):
                expected[row["id"]][name] = [float(row[c]) for c in columns]
        groups: dict[tuple[str, str], list] = defaultdict(list)
        for item_id in chosen:
            if item_id in expected:
                row = items[item_id]
                groups[row["ir_path"], row["vi_path"]].append(
                    (item_id, str(shared / row["fused_path"]), expected[item_id]))
        for (ir, vi), fused in groups.items():
            jobs.append({"convention": convention, "grey_ir": True, "ir": str(shared / ir), "vi": str(shared / vi),
                         "fused": fused})
    jobs += tang2022_jobs(shared, quick, keep)
    if (golden / "temporal" / "temporal.csv").exists() and any(keep(n) for n, _ in TEMPORAL_NAMES.values()):
        jobs.append({"convention": "temporal", "golden": str(golden / "temporal"), "data": str(shared / "data")})
    return jobs


def tang2022_jobs(shared: Path, quick: bool, keep) -> list[dict]:
    """One job per item of the repository's ``tests/data/tang2022_octave.csv`` whose inputs are here: ``shared/…``
    under ``../shared``, ``images/…`` under ``$M3SVD_TANG2022_DIR/Image`` (Image-Fusion@53f5542; skipped if unset)."""
    path = REPO / SOURCES["tang2022"][0][1].removeprefix("repo:")
    if not path.exists():
        return []
    env = os.environ.get("M3SVD_TANG2022_DIR")
    roots = {"shared": shared, "images": Path(env) / "Image" if env else None}
    expected: dict[str, dict[str, list]] = defaultdict(dict)
    files: dict[str, list] = {}
    for row in _rows(path):
        name = TANG_NAMES[row["metric"]]
        if keep(name):
            expected[row["id"]][name] = [float(row["value"])]
            files[row["id"]] = [(roots[p.split("/", 1)[0]], p.split("/", 1)[1]) for p in (row["ir"], row["vi"],
                                                                                          row["fused"])]
    jobs = []
    for item_id in sorted(expected):
        if any(root is None for root, _ in files[item_id]):
            continue
        ir, vi, fused = (str(root / rest) for root, rest in files[item_id])
        jobs.append({"convention": "tang2022", "grey_ir": False, "ir": ir, "vi": vi,
                     "fused": [(item_id, fused, expected[item_id])]})
    return jobs[:QUICK_ITEMS // 2] if quick else jobs


def run_temporal_job(job: dict) -> list[tuple[str, str, int, str, float | None]]:
    """The temporal golden values per frame pair/triplet, from the stored flows (as tests/test_temporal_golden.py)."""
    import numpy as np

    from m3svd import flow, metrics
    from m3svd.data.frames import read_image, to_grey
    from m3svd.metrics.temporal import VideoSources

    golden, clip = Path(job["golden"]), "0111_1716"
    test = Path(job["data"]) / "m3svd" / "test"
    read = lambda folder, i: read_image(test / folder / clip / f"{i:04d}.png")  # noqa: E731
    ir = np.stack([to_grey(read("infrared_Enhance", i)) for i in range(10)])
    vi = np.stack([read("visible_Enhance", i) for i in range(10)])
    fused = {v: np.stack([read_image(golden / "frames" / f"{v}_{i:04d}.png") for i in range(10)])
             for v in ("avg", "flicker")}
    stored = flow.Lookup("golden/temporal")
    for name, frames in (("ir", ir), ("vi", vi), *fused.items()):
        with np.load(golden / f"flows_{name}.npz") as z:
            stored.add(frames, [z[f"fw_{i:04d}"] for i in range(9)], [z[f"bw_{i:04d}"] for i in range(9)])
    sources = VideoSources(ir=ir, vi=vi, flow=stored)
    out = []
    rows = [r for r in _rows(golden / "temporal.csv") if r["frames"] != "mean" and r["metric"] in TEMPORAL_NAMES]
    for video in fused:
        for golden_name, (name, convention) in TEMPORAL_NAMES.items():
            expected = [float(r["value"]) for r in rows if r["video"] == video and r["metric"] == golden_name]
            if not expected:
                continue
            ours = metrics.get(name, convention)(fused[video], sources=sources)
            column = SOURCES[convention].index(next(s for s in SOURCES[convention] if s[0] == TEMPORAL_LABEL))
            for i, (a, b) in enumerate(zip(ours, expected, strict=True)):
                out.append((convention, name, column, f"{video}/{i}", abs(a - b) / abs(b) if b else float(a != 0)))
    return out


def run_job(job: dict) -> list[tuple[str, str, int, str, float | None]]:
    """Score one source pair's fused items: [(convention, metric, column index, item id, rel. error or None)]."""
    if job["convention"] == "temporal":
        return run_temporal_job(job)
    from m3svd import metrics
    from m3svd.data.frames import read_image, to_grey
    from m3svd.metrics import MetricError, Sources

    ir = read_image(Path(job["ir"]))
    sources = Sources(ir=to_grey(ir) if job["grey_ir"] else ir, vi=read_image(Path(job["vi"])))
    out = []
    for item_id, fused_path, expected in job["fused"]:
        fused = read_image(Path(fused_path))
        for name, refs in sorted(expected.items()):
            try:
                ours = float(metrics.get(name, job["convention"])(fused, sources=sources))
            except MetricError:
                ours = math.nan
            for column, ref in enumerate(refs):
                if math.isnan(ours):
                    rel = None
                elif ref == 0:
                    rel = 0.0 if ours == 0 else math.inf
                else:
                    rel = abs(ours - ref) / abs(ref)
                out.append((job["convention"], name, column, item_id, rel))
    return out


# ----------------------------------------------------------------------------------------------------- tolerances


def test_tolerances() -> dict[tuple[str, int], object]:
    """{(convention, column): tolerance table} imported from the test modules (absent when they cannot load)."""
    tests = REPO / "tests"
    found: dict[tuple[str, int], object] = {}
    if not tests.is_dir():
        return found
    sys.path.insert(0, str(tests))
    try:
        for convention, sources in SOURCES.items():
            for column, (_, _, module, attr, *_) in enumerate(sources):
                try:
                    found[convention, column] = getattr(importlib.import_module(module), attr)
                except Exception:  # noqa: BLE001 - a test module that cannot be imported just means "n/a"
                    pass
    finally:
        sys.path.remove(str(tests))
    return found


def tolerance_for(table: object, name: str) -> float | None:
    if isinstance(table, (int, float)):
        return float(table)
    if isinstance(table, defaultdict):
        return float(table[name])
    if isinstance(table, dict):
        value = table.get(name)
        return None if value is None else float(value)
    return None


# ----------------------------------------------------------------------------------------------------- rendering


def fmt_num(x: float) -> str:
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.6g}"


def fmt_range(value_range) -> str:
    lo, hi = value_range
    return f"[{fmt_num(lo)}, {fmt_num(hi)}]"


def fmt_err(x: float) -> str:
    if math.isinf(x):
        return "∞"
    return "0" if x == 0 else f"{x:.2e}"


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def direction(m) -> str:
    return "higher is better" if m.higher_is_better else "lower is better"


def render_card(name: str, entries: list, agreement: dict, tolerances: dict, meta: dict) -> str:
    lines = [f"# Metric card: `{name}`", "",
             f"Generated by `{meta['command']}` on {meta['date']} with m3svd {meta['version']}"
             f" ({meta['mode']}). Do not edit by hand.", "",
             f"Registered in {len(entries)} convention(s): " + ", ".join(f"`{m.convention}`" for m in entries) + ".",
             ""]
    if not any(m.reference for m in entries):
        lines += [f"**No reference comparison:** no convention of `{name}` has been compared with a reference "
                  "implementation's outputs; its values rest on reading the paper and code only.", ""]
    lines += ["## Definition per convention", ""]
    for m in entries:
        lines.append(f"- **`{m.convention}`** ({direction(m)}, range {fmt_range(m.value_range)}): {m.description}")
    lines += ["", "## Reference comparison (the metric's `reference` metadata)", ""]
    for m in entries:
        lines.append(f"- `{m.convention}`: " + (f"checked against {m.reference}" if m.reference
                                                  else "**none** (`reference = None`)"))
    lines += ["", "## How the conventions differ", "",
              "| convention | higher_is_better | range | version | kind | description |",
              "|---|---|---|---|---|---|"]
    for m in entries:
        lines.append(f"| `{m.convention}` | {m.higher_is_better} | {fmt_range(m.value_range)} | {m.version} "
                     f"| {m.kind} | {cell(m.description)} |")
    directions = {m.higher_is_better for m in entries}
    if len(directions) > 1:
        lines += ["", "**Direction differs between conventions.**"]
    lines += ["", "## Agreement with golden reference outputs", "",
              "Relative error = \\|ours − golden\\| / \\|golden\\| per item; each convention is compared only with "
              "its own lineage's golden file.", "",
              "| convention | golden source | items compared | max rel error | median rel error | test tolerance "
              "| within tolerance |",
              "|---|---|---|---|---|---|---|"]
    for m in entries:
        sources = [(column, s) for column, s in enumerate(SOURCES.get(m.convention, ()))
                   if len(s) < 5 or name in s[4]]
        if not sources:
            reason = (NO_GOLDEN.get(m.convention, "no golden file for this convention") if m.kind == "image" else
                      "no golden values for it (golden/temporal holds " + ", ".join(TEMPORAL_NAMES) + " only)")
            lines.append(f"| `{m.convention}` | — | 0 | — | — | — | not compared: {cell(reason)} |")
            continue
        for column, (label, path, module, attr, *_) in sources:
            result = agreement.get((m.convention, name, column))
            source = f"{label}, `{path.removeprefix('repo:')}`" if path.startswith("repo:") else \
                f"{label}, `golden/{path}`"
            if not result:
                lines.append(f"| `{m.convention}` | {cell(source)} | 0 | — | — | — | no golden values for `{name}` |")
                continue
            errors = [e for e in result if e is not None]
            failed = len(result) - len(errors)
            tol = tolerance_for(tolerances.get((m.convention, column)), name)
            tol_text = "n/a" if tol is None else f"{tol:g} (`tests/{module}.py::{attr}`)"
            if errors:
                worst, median = max(errors), statistics.median(errors)
                within = "n/a" if tol is None else ("yes" if worst <= tol else f"**no** ({sum(e > tol for e in errors)}"
                                                                              f" items over)")
                max_text, median_text = fmt_err(worst), fmt_err(median)
            else:
                within, max_text, median_text = "no value computed", "—", "—"
            if failed:
                within += f"; {failed} item(s) raised MetricError"
            lines.append(f"| `{m.convention}` | {cell(source)} | {len(errors)} | {max_text} | {median_text} "
                         f"| {tol_text} | {within} |")
    if meta["quick"]:
        lines += ["", "_Quick mode: only a subset of the golden items was compared._"]
    return "\n".join(lines) + "\n"


def render_index(cards: dict, agreement: dict, tolerances: dict, meta: dict) -> str:
    lines = ["# Metric cards", "",
             "One page per registered metric name: its definition in every convention, how the conventions differ, "
             "and how closely each convention reproduces its lineage's golden reference outputs "
             "(`../shared/golden/README.md`).", "",
             f"- Generated by: `{meta['command']}`",
             f"- Toolkit: m3svd {meta['version']}",
             f"- Date (UTC): {meta['date']}",
             f"- Mode: {meta['mode']}",
             f"- Golden data: `{meta['golden']}`",
             f"- Run time: {meta['runtime']:.1f} s, {meta['values']} values compared", "",
             "| metric | conventions | reference comparison | golden comparisons | worst max rel error (where) "
             "| all within test tolerance | card |",
             "|---|---|---|---|---|---|---|"]
    unchecked = sorted(n for n, entries in cards.items() if not any(m.reference for m in entries))
    if unchecked:
        lines[-2:-2] = [f"{len(unchecked)} of {len(cards)} metric names have no reference comparison in any "
                        "convention: " + ", ".join(f"`{n}`" for n in unchecked) + ".", ""]
    for name, entries in sorted(cards.items()):
        worst, where, compared, ok = None, "", 0, True
        for (conv, n, column), res in sorted(agreement.items()):
            errors = [e for e in res if e is not None]
            if n != name or not res:
                continue
            compared += 1
            tol = tolerance_for(tolerances.get((conv, column)), name)
            ok = ok and len(errors) == len(res) and (tol is None or max(errors, default=0) <= tol)
            if errors and (worst is None or max(errors) > worst):
                worst, where = max(errors), SOURCES[conv][column][0]
        worst_text = f"{fmt_err(worst)} ({cell(where)})" if worst is not None else "—"
        convs = ", ".join(f"`{m.convention}`" for m in entries)
        verdict = ("yes" if ok else "**no**") if compared else "—"
        checked = sum(bool(m.reference) for m in entries)
        reference = f"{checked} of {len(entries)} conventions" if checked else "**none**"
        lines.append(f"| `{name}` | {convs} | {reference} | {compared} | {worst_text} | {verdict} "
                     f"| [{name}.md]({name}.md) |")
    if meta["quick"]:
        lines += ["", "_Quick mode: only a subset of the golden items was compared; run without `--quick` for the "
                      "full golden sets._"]
    return "\n".join(lines) + "\n"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------------------------------- main


def _display_path(path: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), REPO)
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--golden", type=Path, default=DEFAULT_GOLDEN,
                        help="golden data folder (default: ../shared/golden relative to the repository)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: metrics/cards)")
    parser.add_argument("--quick", action="store_true", help="compare a small subset of the golden items only")
    parser.add_argument("--metrics", nargs="+", metavar="NAME", help="only these metric names (default: all)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: all CPUs)")
    args = parser.parse_args(argv)

    from m3svd import __version__, metrics

    golden = args.golden
    if not (golden / "subset.csv").exists():
        parser.error(f"golden data not found: {golden}")
    cards: dict[str, list] = defaultdict(list)
    for m in metrics.list():
        cards[m.name].append(m)
    wanted = None
    if args.metrics:
        wanted = {n.lower() for n in args.metrics}
        unknown = wanted - set(cards)
        if unknown:
            parser.error(f"unknown metric(s): {', '.join(sorted(unknown))}")
        cards = {n: e for n, e in cards.items() if n in wanted}
    for entries in cards.values():
        entries.sort(key=lambda m: m.convention)

    start = time.perf_counter()
    jobs = build_jobs(golden, args.quick, wanted)
    agreement: dict[tuple[str, str, int], list] = defaultdict(list)
    if args.jobs > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(run_job, jobs))
    else:
        results = [run_job(job) for job in jobs]
    values = 0
    for result in results:
        for convention, name, column, _item, rel in result:
            agreement[convention, name, column].append(rel)
            values += 1
    runtime = time.perf_counter() - start

    command = "python metrics/build_cards.py" + (" --quick" if args.quick else "")
    if args.metrics:
        command += " --metrics " + " ".join(sorted(wanted))
    meta = {"command": command, "version": __version__, "quick": args.quick,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d"),
            "mode": "quick subset of the golden items" if args.quick else "full: every golden item",
            "golden": _display_path(golden), "runtime": runtime, "values": values}
    tolerances = test_tolerances()
    for name, entries in sorted(cards.items()):
        write_atomic(args.out / f"{name}.md", render_card(name, entries, agreement, tolerances, meta))
    write_atomic(args.out / "README.md", render_index(cards, agreement, tolerances, meta))
    print(f"wrote {len(cards)} cards + README.md to {args.out} in {runtime:.1f} s ({values} values compared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
