"""Several methods' results side by side: one table, mean ± half the 95% interval per metric, reference rows apart.

Each input is an ``evaluate`` output folder (``summary.parquet`` + ``run.json``) or a leaderboard record
(``summary.parquet`` + ``manifest.json``); all must be on the same protocol, or the numbers would not compare.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from m3svd.evaluate.jobs import EvaluationError
from m3svd.evaluate.summary import OVERALL, read_summary

REFERENCE_METHODS = ("ir", "vi", "average")  # sources and the trivial mix: context for a table, never contenders


@dataclass
class Compared:
    label: str
    summary: object  # pandas.DataFrame, as summary.parquet
    protocol: str
    reference: bool
    partial: bool


def load_result(folder: str | Path) -> Compared:
    """One folder's overall rows and what it is: protocol, reference row or not, partial (``--clips/--frames``)."""
    folder = Path(folder)
    path = folder / "summary.parquet"
    if not path.is_file():
        raise EvaluationError(f"{folder}: no summary.parquet; expected an `m3svd evaluate` output folder or a "
                              f"leaderboard record (submissions/<id>/)")
    summary = read_summary(path)
    info, manifest = folder / "run.json", folder / "manifest.json"
    run = json.loads(info.read_text()) if info.is_file() else {}
    record = json.loads(manifest.read_text()) if manifest.is_file() else {}
    label = record.get("name") or str(summary["method"].iloc[0])
    reference = bool(record["reference"]) if "reference" in record else label in REFERENCE_METHODS
    protocol = f"{summary['protocol'].iloc[0]}@{summary['protocol_version'].iloc[0]}"
    return Compared(label, summary[summary["clip"] == OVERALL], protocol, reference, bool(run.get("partial")))


def compare(folders: list[str | Path]) -> list[Compared]:
    results = [load_result(folder) for folder in folders]
    protocols = {r.protocol for r in results}
    if len(protocols) > 1:
        where = {r.protocol: folder for r, folder in zip(results, folders, strict=True)}
        raise EvaluationError("results on different protocols do not compare: " + ", ".join(
            f"{folder} is on {protocol}" for protocol, folder in where.items()))
    labels = [r.label for r in results]
    twice = [label for label in dict.fromkeys(labels) if labels.count(label) > 1]
    if twice:
        raise EvaluationError(f"results named {twice[0]!r} given more than once; compare each method once")
    return results


def protocol_order(protocol_key: str) -> list[str]:
    """The metrics in the order a built-in protocol lists them (image, then temporal), when that protocol is the
    one the results were made on; otherwise none (the table then keeps the summaries' order)."""
    from m3svd import protocols
    from m3svd.errors import M3SVDError

    name, _, version = protocol_key.rpartition("@")
    try:
        protocol = protocols.load(name)
    except M3SVDError:
        return []
    return list(protocol.image_metrics + protocol.temporal_metrics) if protocol.version == version else []


def format_comparison(results: list[Compared], metrics: list[str] | None = None,
                      order: list[str] | None = None) -> str:
    """Rows: methods in the order given, then the reference rows under their own heading; columns:
    metrics as ``mean±h`` (h: half the 95% bootstrap interval over clips); ``*`` marks each metric's best
    non-reference mean (when there are two or more). ``order``: the protocol's metric order (default: looked up for
    a built-in protocol)."""
    import math

    seen = list(dict.fromkeys(m for r in results for m in r.summary["metric"]))
    order = order or protocol_order(results[0].protocol)  # the protocol's order, else the summaries'
    seen = [m for m in order if m in seen] + [m for m in seen if m not in order]
    names = [m for m in (metrics or seen) if m in seen]
    unknown = [m for m in (metrics or []) if m not in seen]
    if unknown:
        raise EvaluationError(f"--metrics {','.join(unknown)}: not in these results (they have {', '.join(seen)})")
    cells, directions = {}, {}
    for r in results:
        rows = r.summary.set_index("metric")
        for m in names:
            if m in rows.index:
                row = rows.loc[m]
                directions.setdefault(m, bool(row["higher_is_better"]))
                cells[r.label, m] = (float(row["mean"]), (float(row["ci_high"]) - float(row["ci_low"])) / 2)
    best = {}
    for m in names:
        ranked = [cells[r.label, m][0] for r in results if not r.reference and (r.label, m) in cells
                  and math.isfinite(cells[r.label, m][0])]
        if len(ranked) > 1:
            best[m] = max(ranked) if directions[m] else min(ranked)

    def cell(label: str, m: str) -> str:
        if (label, m) not in cells:
            return "—"
        mean, half = cells[label, m]
        if not math.isfinite(mean):
            return "undefined"
        mark = "*" if best.get(m) == mean and not reference[label] else ""
        return f"{mean:.4f}±{half:.4f}{mark}"

    reference = {r.label: r.reference for r in results}
    labels = [r.label + (" (partial)" if r.partial else "") for r in results]
    head = ["method"] + [m + ("↑" if directions.get(m, True) else "↓") for m in names]
    body = [[label] + [cell(r.label, m) for m in names] for r, label in zip(results, labels, strict=True)]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

    def line(row):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                 strict=True)))

    ranked = [line(row) for r, row in zip(results, body, strict=True) if not r.reference]
    references = [line(row) for r, row in zip(results, body, strict=True) if r.reference]
    out = [f"{results[0].protocol}: mean±half 95% CI over clips; * best non-reference", line(head), *ranked]
    if references:
        out += ["reference rows (sources and the plain average; not ranked):"] + references
    return "\n".join(out)
