"""Show the leaderboard: ranked tables (terminal, Markdown, CSV, JSON); the static site is in ``site.py``.

Verified rankings and paper-reported numbers are never put in one table: the reported table is rendered on its own,
under a label that says the numbers were copied from papers and were not recomputed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from m3svd.leaderboard.schema import OVERALL, REPORTED, LeaderboardError

FORMATS = ("table", "markdown", "csv", "json")
REPORTED_LABEL = ("REPORTED — numbers copied from papers, not recomputed by m3svd; conventions and data differ "
                  "between sources, so they are not comparable with verified rows or with each other")
REFERENCE_MARK = "ref"  # the position column of a reference row (not ranked)


# -- the ranked wide view ----------------------------------------------------------------------------------------
def protocols_in(table, protocol: str | None = None) -> list[str]:
    """Protocol keys of the table, optionally only those matching an id (``sample``) or key (``sample@1``)."""
    keys = list(dict.fromkeys(table["protocol"]))
    if protocol is None:
        return keys
    chosen = [k for k in keys if protocol in (k, k.split("@")[0])]
    if not chosen:
        from m3svd.errors import did_you_mean

        raise LeaderboardError(f"no verified submissions for protocol {protocol!r}"
                               + (did_you_mean(protocol, keys) if keys else "")
                               + f"; protocols on the leaderboard: {', '.join(keys) or 'none'}")
    return chosen


def ranked(table, key: str):
    """One protocol: a row per submission (best score first, reference rows last) and, per metric,
    value/ci/rank/undefined columns.

    Metrics come ranking metrics first (in the protocol's [ranking] order), then the others in protocol order.
    """
    import pandas as pd

    overall = table[(table["protocol"] == key) & (table["clip"] == OVERALL)]
    primary = ranking_metrics(table, key)
    metrics = primary + [m for m in dict.fromkeys(overall["metric"]) if m not in primary]
    rows = []
    for submission, group in overall.groupby("submission", sort=False):
        first = group.iloc[0]
        row = {"submission": submission, "method": first["label"], "score": float(first["score"]),
               "position": first["position"], "reference": bool(first.get("reference", False))}
        by_metric = group.set_index("metric")
        for metric in metrics:
            for column in ("value", "ci_low", "ci_high", "rank", "undefined"):
                row[f"{metric}:{column}"] = float(by_metric.loc[metric, column]) if metric in by_metric.index \
                    else float("nan")
        rows.append(row)
    wide = pd.DataFrame(rows).sort_values(["reference", "score", "method"], kind="stable", na_position="last")
    wide["position"] = wide["position"].astype("Int64")
    wide = wide[["position"] + [c for c in wide.columns if c != "position"]]
    directions = overall.drop_duplicates("metric").set_index("metric")["higher_is_better"].to_dict()
    return wide.reset_index(drop=True), metrics, {m: bool(v) for m, v in directions.items()}


def ranking_groups(table, key: str) -> list:
    """``(group, its metric rows)`` of the protocol's ranking, heaviest group first (ties: protocol order)."""
    rows = table[(table["protocol"] == key) & (table["clip"] == OVERALL) & (table["weight"] > 0)]
    groups = list(rows.drop_duplicates("metric").groupby("group", sort=False))
    return sorted(groups, key=lambda item: -round(item[1]["weight"].sum(), 12))


def ranking_metrics(table, key: str) -> list[str]:
    """The metrics that order the protocol's table, group by group (as :func:`ranked` puts them first)."""
    return [m for _, members in ranking_groups(table, key) for m in members["metric"]]


def ranking_line(table, key: str) -> str:
    """What orders the table, as declared by the protocol: groups, their metrics and shares of the score."""
    parts = [f"{group} ({', '.join(members['metric'])}) {members['weight'].sum():.0%}"
             for group, members in ranking_groups(table, key)]
    return ("ranked by score = weighted mean of per-metric ranks (lower is better; an undefined value ranks last): "
            + " · ".join(parts))


def position_text(row) -> str:
    return REFERENCE_MARK if row["reference"] else str(row["position"])


def arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def _cell(row, metric: str) -> str:
    """A value as shown; ``undefined`` when it is undefined on any frame (it then ranks last)."""
    value, undefined = row[f"{metric}:value"], row[f"{metric}:undefined"]
    if not math.isfinite(value) or (undefined == undefined and undefined > 0):
        return "undefined"
    return _fmt(value)


def _fmt(value: float) -> str:
    """Four decimals; values too small for them (Nabf of a clean fusion) keep three significant digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.2e}" if 0 < abs(value) < 5e-4 else f"{value:.4f}"


def _fmt_score(score: float) -> str:
    return "—" if math.isnan(score) else f"{score:.2f}"


def _header(table, key: str) -> str:
    rows = table[table["protocol"] == key]
    sha = rows["protocol_sha256"].iloc[0]
    conventions = ", ".join(sorted(set(rows["convention"])))
    count = rows["submission"].nunique()
    clips = int(rows[rows["clip"] != OVERALL]["clip"].nunique())
    references = rows.loc[rows["reference"].astype(bool), "submission"].nunique() if "reference" in rows else 0
    count -= references
    refs = f" + {references} reference row(s) ({REFERENCE_MARK}, not ranked)" if references else ""
    return (f"protocol {key} · sha256 {sha[:12]} · convention {conventions} · {clips} clip(s) · {count} verified "
            f"submission(s){refs} · ↑ higher is better, ↓ lower is better · {ranking_line(table, key)}")


def render(table, fmt: str = "table", protocol: str | None = None) -> str:
    """The verified ranking(s) in ``fmt``; one section per protocol."""
    if fmt not in FORMATS:
        raise LeaderboardError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    if table.empty:
        if fmt == "json":
            return "[]"
        return "no verified submissions yet (add one with `m3svd submit DIR --name N --protocol P`)"
    keys = protocols_in(table, protocol)
    if fmt == "json":
        return json.dumps([_json_rows(table, key) for key in keys], indent=2)
    if fmt == "csv":
        return "\n".join(_csv(table, key, header=i == 0) for i, key in enumerate(keys))
    return "\n\n".join(_text(table, key, markdown=fmt == "markdown") for key in keys)


def _text(table, key: str, markdown: bool) -> str:
    wide, metrics, directions = ranked(table, key)
    head = ["#", "method", "score↓"] + [m + arrow(directions[m]) for m in metrics]
    body = [[position_text(r), r["method"], _fmt_score(r["score"])] + [_cell(r, m) for m in metrics]
            for _, r in wide.iterrows()]
    if markdown:
        lines = [f"**{_header(table, key)}**", "", "| " + " | ".join(head) + " |",
                 "|" + "|".join("---:" if i != 1 else "---" for i in range(len(head))) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(head)]
    def line(cells):
        return "  ".join(c.ljust(w) if i == 1 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                             strict=True)))
    return "\n".join([_header(table, key), line(head)] + [line(row) for row in body])


def _csv(table, key: str, header: bool) -> str:
    import csv
    import io

    wide, metrics, directions = ranked(table, key)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(["protocol", "position", "method", "submission", "score↓"]
                        + [m + arrow(directions[m]) for m in metrics])
    for _, r in wide.iterrows():
        writer.writerow([key, position_text(r), r["method"], r["submission"],
                         "" if math.isnan(r["score"]) else f"{r['score']:.4g}"]
                        + [repr(r[f"{m}:value"]) for m in metrics])
    return out.getvalue().rstrip("\n")


def _json_rows(table, key: str) -> dict:
    wide, metrics, directions = ranked(table, key)
    rows = table[table["protocol"] == key]
    ranking = rows[(rows["clip"] == OVERALL) & (rows["weight"] > 0)].drop_duplicates("metric")
    weights = dict(zip(ranking["metric"], ranking["weight"].astype(float), strict=True))
    def num(x):
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else x

    return {
        "protocol": key, "protocol_sha256": rows["protocol_sha256"].iloc[0], "verified": True,
        "ranking": ranking_line(table, key),
        "rows": [{"position": None if r["reference"] else int(r["position"]), "method": r["method"],
                  "submission": r["submission"], "reference": bool(r["reference"]), "score": num(r["score"]),
                  "metrics": {m: {"value": num(r[f"{m}:value"]), "ci_low": num(r[f"{m}:ci_low"]),
                                  "ci_high": num(r[f"{m}:ci_high"]), "rank": num(r[f"{m}:rank"]),
                                  "undefined_frames": int(r[f"{m}:undefined"]) if r[f"{m}:undefined"] ==
                                  r[f"{m}:undefined"] else None,
                                  "ranked": m in weights, "weight": weights.get(m, 0.0),
                                  "higher_is_better": directions[m]} for m in metrics}}
                 for _, r in wide.iterrows()],
    }


# -- the reported table ----------------------------------------------------------------------------------------
def packaged_reported() -> Path:
    """The papers' numbers shipped with m3svd (``m3svd/leaderboard/reported.csv`` in the repository, the one copy)."""
    from importlib.resources import files

    return Path(str(files("m3svd.leaderboard") / REPORTED))


def load_reported(leaderboard_dir: str | Path | None = "leaderboard"):
    """``reported.csv`` as printed in the papers (values kept as text: a paper's decimals are part of the record):
    a leaderboard folder's own file when it has one, else the table shipped with the package, so ``m3svd
    leaderboard --reported`` works anywhere."""
    import pandas as pd

    path = Path(leaderboard_dir) / REPORTED if leaderboard_dir is not None else None
    if path is None or not path.is_file():
        path = packaged_reported()
    if not path.is_file():
        return pd.DataFrame(columns=["source", "reference", "dataset", "setting", "method", "metric", "value",
                                     "higher_is_better", "convention", "note"])
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [r for r, source in enumerate(table.get("source", []), start=2) if not source]
    if "source" not in table.columns or missing:
        raise LeaderboardError(f"{path}: every reported row needs a source (line {missing[0] if missing else 1})")
    return table


def reported_groups(reported):
    """One table per source × dataset × setting: rows are methods, columns the metrics as printed."""
    groups = []
    for (source, dataset, setting), group in reported.groupby(["source", "dataset", "setting"], sort=False):
        metrics = list(dict.fromkeys(group["metric"]))
        wide = group.pivot_table(index="method", columns="metric", values="value", aggfunc="first", sort=False)
        wide = wide.reindex(index=list(dict.fromkeys(group["method"])), columns=metrics)
        directions = group.drop_duplicates("metric").set_index("metric")["higher_is_better"].map(
            lambda x: x.lower() == "true").to_dict()
        groups.append({"source": source, "dataset": dataset, "setting": setting, "metrics": metrics,
                       "directions": directions, "wide": wide.fillna("—"),
                       "reference": group["reference"].iloc[0], "convention": group["convention"].iloc[0],
                       "notes": sorted({n for n in group["note"] if n})})
    return groups


def render_reported(reported, fmt: str = "table") -> str:
    if fmt not in FORMATS:
        raise LeaderboardError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps({"label": REPORTED_LABEL, "verified": False, "rows": reported.to_dict("records")},
                          indent=2)
    if fmt == "csv":
        return reported.to_csv(index=False).rstrip("\n")
    sections = [REPORTED_LABEL]
    if reported.empty:
        sections.append("no reported numbers recorded (the table lives in <leaderboard>/reported.csv, else in "
                        "m3svd/leaderboard/reported.csv)")
    for g in reported_groups(reported):
        head = ["method"] + [m + arrow(g["directions"][m]) for m in g["metrics"]]
        body = [[method] + [str(v) for v in row] for method, row in g["wide"].iterrows()]
        title = f"{g['source']} — {g['dataset']}, {g['setting']} (source: {g['reference']}; convention: " \
                f"{g['convention']})"
        if fmt == "markdown":
            lines = [f"**{title}** *(reported, not verified)*", "", "| " + " | ".join(head) + " |",
                     "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in body]
        else:
            widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(head)]
            lines = [title] + ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                         for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                               for r in [head] + body]
        sections.append("\n".join(lines))
    return "\n\n".join(sections)
