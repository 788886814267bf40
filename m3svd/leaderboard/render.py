"""Show the leaderboard: ranked tables (terminal, Markdown, CSV, JSON) and a self-contained static site.

Verified rankings and paper-reported numbers are never put in one table: the reported table is rendered on its own,
under a label that says the numbers were copied from papers and were not recomputed.
"""

from __future__ import annotations

import html
import json
import math
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from m3svd.leaderboard.schema import OVERALL, REPORTED, LeaderboardError, read_manifest, slug, submissions_dir

FORMATS = ("table", "markdown", "csv", "json")
REPORTED_LABEL = ("REPORTED — numbers copied from papers, not recomputed by m3svd; conventions and data differ "
                  "between sources, so they are not comparable with verified rows or with each other")
SITE_MARK = "<!-- m3svd leaderboard site -->"


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
    """One protocol: a row per submission (best score first) and, per metric, value/ci/rank columns.

    Metrics come ranking metrics first (in the protocol's [ranking] order), then the others in protocol order.
    """
    import pandas as pd

    overall = table[(table["protocol"] == key) & (table["clip"] == OVERALL)]
    primary = [m for _, members in _ranking_groups(table, key) for m in members["metric"]]
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
    wide = pd.DataFrame(rows).sort_values(["score", "method"], kind="stable", na_position="last")
    wide["position"] = wide["position"].astype("Int64")
    wide = wide[["position"] + [c for c in wide.columns if c != "position"]]
    directions = overall.drop_duplicates("metric").set_index("metric")["higher_is_better"].to_dict()
    return wide.reset_index(drop=True), metrics, {m: bool(v) for m, v in directions.items()}


def _ranking_groups(table, key: str) -> list:
    """``(group, its metric rows)`` of the protocol's ranking, heaviest group first (ties: protocol order)."""
    rows = table[(table["protocol"] == key) & (table["clip"] == OVERALL) & (table["weight"] > 0)]
    groups = list(rows.drop_duplicates("metric").groupby("group", sort=False))
    return sorted(groups, key=lambda item: -round(item[1]["weight"].sum(), 12))


def ranking_line(table, key: str) -> str:
    """What orders the table, as declared by the protocol: groups, their metrics and shares of the score."""
    parts = [f"{group} ({', '.join(members['metric'])}) {members['weight'].sum():.0%}"
             for group, members in _ranking_groups(table, key)]
    return ("ranked by score = weighted mean of per-metric ranks (lower is better; an undefined value ranks last): "
            + " · ".join(parts))


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
    return (f"protocol {key} · sha256 {sha[:12]} · convention {conventions} · {clips} clip(s) · {count} verified "
            f"submission(s) · ↑ higher is better, ↓ lower is better · {ranking_line(table, key)}")


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
    body = [["ref" if r["reference"] else str(r["position"]), r["method"], _fmt_score(r["score"])]
            + [_cell(r, m) for m in metrics] for _, r in wide.iterrows()]
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
        writer.writerow([key, r["position"], r["method"], r["submission"], f"{r['score']:.4g}"]
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
        "rows": [{"position": int(r["position"]), "method": r["method"], "submission": r["submission"],
                  "score": num(r["score"]),
                  "metrics": {m: {"value": num(r[f"{m}:value"]), "ci_low": num(r[f"{m}:ci_low"]),
                                  "ci_high": num(r[f"{m}:ci_high"]), "rank": num(r[f"{m}:rank"]),
                                  "undefined_frames": int(r[f"{m}:undefined"]) if r[f"{m}:undefined"] ==
                                  r[f"{m}:undefined"] else None,
                                  "ranked": m in weights, "weight": weights.get(m, 0.0),
                                  "higher_is_better": directions[m]} for m in metrics}}
                 for _, r in wide.iterrows()],
    }


# -- the reported table ----------------------------------------------------------------------------------------
def load_reported(leaderboard_dir: str | Path = "leaderboard"):
    """``reported.csv`` as printed in the papers (values kept as text: a paper's decimals are part of the record)."""
    import pandas as pd

    path = Path(leaderboard_dir) / REPORTED
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
        sections.append("no reported numbers recorded (the table lives in <leaderboard>/reported.csv)")
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


# -- the static site -----------------------------------------------------------------------------------------------
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1b1b}
table{border-collapse:collapse;margin:1rem 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right;white-space:nowrap}
th.text,td.text{text-align:left}
table.sortable th{cursor:pointer;user-select:none;background:#f3f3f3}
th[aria-sort=ascending]::after{content:" \\25B4"}th[aria-sort=descending]::after{content:" \\25BE"}
.banner{background:#fff4d6;border:1px solid #e0b84d;padding:.6rem 1rem}
.verified{background:#e6f4ea;border:1px solid #7cbf8e;padding:.6rem 1rem}
figure{display:inline-block;margin:.5rem}figure img{max-width:22rem}
code{font-size:90%}dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}
"""

SCRIPT = """
(function () {
  "use strict";
  function cellKey(cell, numeric) {
    var raw = cell.getAttribute("data-value");
    if (raw === null) { raw = cell.textContent; }
    if (!numeric) { return raw.trim().toLowerCase(); }
    var value = parseFloat(raw);
    return isNaN(value) ? null : value;
  }
  function sortBy(table, th, index) {
    var numeric = th.getAttribute("data-type") === "num";
    var current = th.getAttribute("aria-sort");
    var ascending = current ? current !== "ascending" : th.getAttribute("data-best") !== "desc";
    var headers = table.tHead.rows[0].cells;
    for (var h = 0; h < headers.length; h++) { headers[h].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellKey(a.cells[index], numeric), y = cellKey(b.cells[index], numeric);
      if (x === y) { return 0; }
      if (x === null) { return 1; }
      if (y === null) { return -1; }
      return (x < y ? -1 : 1) * (ascending ? 1 : -1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (th, index) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortBy(table, th, index); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, th, index); }
      });
    });
  });
}());
"""


def _page(title: str, body: str, depth: int = 0) -> str:
    home = "../" * depth + "index.html"
    return (f"<!DOCTYPE html>\n{SITE_MARK}\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<link rel=\"icon\" href=\"data:,\"><title>{html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body><nav><a href=\"{home}\">leaderboard</a> · <a href=\"{'../' * depth}reported.html\">reported "
            f"numbers (not verified)</a></nav>\n{body}\n<script>{SCRIPT}</script></body></html>\n")


def _e(value) -> str:
    return html.escape(str(value))


def _num_cell(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<td data-value=\"\">—</td>"
    text = _fmt(value) if digits == 4 else f"{value:.{digits}f}"
    return f"<td data-value=\"{value!r}\">{text}</td>"


def _link(url: str) -> str:
    return f"<a href=\"{_e(url)}\">{_e(url)}</a>" if url.startswith(("http://", "https://")) else _e(url or "—")


def write_site(table, out: str | Path, leaderboard_dir: str | Path = "leaderboard", reported=None) -> Path:
    """Write the static site to ``out`` (replaced as a whole; an unrelated existing folder is refused)."""
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        index = out / "index.html"
        if not (index.is_file() and SITE_MARK in index.read_text(errors="replace")[:200]):
            raise LeaderboardError(f"{out}: exists and is not an m3svd leaderboard site; give a new or empty folder")
    if reported is None:
        reported = load_reported(leaderboard_dir)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir(parents=True)
    try:
        _write_pages(table, tmp, Path(leaderboard_dir), reported)
        if out.exists():
            old = out.with_name(f".{out.name}.{uuid.uuid4().hex}.old")
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _write_pages(table, site: Path, leaderboard_dir: Path, reported) -> None:
    (site / "methods").mkdir()
    sections = []
    keys = protocols_in(table) if not table.empty else []
    for key in keys:
        sections.append(_protocol_section(table, key, site))
    verified = ("<p class=\"verified\">Verified: every number below was recomputed by <code>m3svd submit</code> from "
                "the submitted fused frames, with the protocol, metric conventions and versions named in each row. "
                "Numbers reported in papers are on a <a href=\"reported.html\">separate page</a> and never ranked "
                "here.</p>")
    empty = "<p id=\"empty\">No verified submissions yet.</p>" if not keys else ""
    (site / "index.html").write_text(_page("m3svd leaderboard", "<h1>m3svd leaderboard</h1>" + verified + empty
                                           + "\n".join(sections)))
    for submission in dict.fromkeys(table["submission"]) if not table.empty else []:
        rows = table[table["submission"] == submission]
        manifest = read_manifest(submissions_dir(leaderboard_dir) / submission)
        (site / "methods" / f"{submission}.html").write_text(_method_page(rows, manifest))
    (site / "reported.html").write_text(_reported_page(reported))


def _protocol_section(table, key: str, site: Path) -> str:
    wide, metrics, directions = ranked(table, key)
    anchor = slug(key)
    head = ("<th data-type=\"num\" title=\"position by score\">#</th>"
            "<th data-type=\"text\" class=\"text\">method</th>"
            f"<th data-type=\"num\" data-best=\"asc\" title=\"{_e(ranking_line(table, key))}\">"
            "score ↓</th>")
    head += "".join(f"<th data-type=\"num\" data-best=\"{'desc' if directions[m] else 'asc'}\" data-metric=\"{_e(m)}\" "
                    f"title=\"{'higher' if directions[m] else 'lower'} is better\">{_e(m)} {arrow(directions[m])}</th>"
                    for m in metrics)
    body = []
    for _, r in wide.iterrows():
        cells = [f"<td data-value=\"{int(r['position'])}\">{int(r['position'])}</td>",
                 f"<td class=\"text\"><a href=\"methods/{_e(r['submission'])}.html\">{_e(r['method'])}</a></td>",
                 _num_cell(r["score"], 2)]
        for m in metrics:
            low, high = r[f"{m}:ci_low"], r[f"{m}:ci_high"]
            cell = _num_cell(r[f"{m}:value"])
            if not (math.isnan(low) or math.isnan(high)):
                cell = cell.replace("<td ", f"<td title=\"95% CI [{low:.4f}, {high:.4f}]\" ", 1)
            cells.append(cell)
        body.append(f"<tr data-submission=\"{_e(r['submission'])}\">" + "".join(cells) + "</tr>")
    figures = _charts(table, key, metrics, directions, site / "img" / anchor)
    bars = "".join(f"<figure><img src=\"img/{anchor}/{_e(name)}\" alt=\"{_e(alt)}\"><figcaption>{_e(alt)}"
                   f"</figcaption></figure>" for name, alt, kind in figures if kind == "bar")
    clips = "".join(f"<figure><img src=\"img/{anchor}/{_e(name)}\" alt=\"{_e(alt)}\"><figcaption>{_e(alt)}"
                    f"</figcaption></figure>" for name, alt, kind in figures if kind == "clips")
    return (f"<section id=\"{anchor}\" data-protocol=\"{_e(key)}\"><h2>protocol {_e(key)}</h2>"
            f"<p>{_e(_header(table, key))}</p><table class=\"sortable\" data-protocol=\"{_e(key)}\">"
            f"<thead><tr>{head}</tr></thead><tbody>"
            + "".join(body) + f"</tbody></table><h3>per metric (mean over clips, 95% bootstrap CI)</h3>{bars}"
            f"<h3>per clip</h3>{clips}</section>")


def _charts(table, key: str, metrics: list[str], directions: dict, folder: Path) -> list[tuple[str, str, str]]:
    """Per metric: a bar chart over methods (with CIs) and a per-clip grouped bar chart; PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    folder.mkdir(parents=True, exist_ok=True)
    rows = table[table["protocol"] == key]
    wide, _, _ = ranked(table, key)
    labels = list(wide["method"])
    order = list(wide["submission"])
    clips = [c for c in dict.fromkeys(rows["clip"]) if c != OVERALL]
    made = []
    for metric in metrics:
        values = wide[f"{metric}:value"].to_numpy(float)
        low = values - wide[f"{metric}:ci_low"].to_numpy(float)
        high = wide[f"{metric}:ci_high"].to_numpy(float) - values
        fig, ax = plt.subplots(figsize=(5, 0.5 + 0.35 * len(labels)), dpi=90)
        ax.barh(range(len(labels)), values, xerr=np.nan_to_num(np.vstack([low, high])), color="#4c78a8",
                capsize=3)
        ax.set_yticks(range(len(labels)), labels)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(5))
        ax.invert_yaxis()
        ax.set_xlabel(f"{metric} {arrow(directions[metric])} ({'higher' if directions[metric] else 'lower'} is better)")
        fig.tight_layout()
        name = f"{slug(metric)}.png"
        fig.savefig(folder / name)
        plt.close(fig)
        made.append((name, f"{metric} by method", "bar"))
        per_clip = rows[(rows["metric"] == metric) & (rows["clip"] != OVERALL)]
        grid = per_clip.pivot_table(index="clip", columns="submission", values="value").reindex(index=clips,
                                                                                                 columns=order)
        fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(clips) * max(1, len(order)) / 2), 3), dpi=90)
        width = 0.8 / max(1, len(order))
        for j, (submission, label) in enumerate(zip(order, labels, strict=True)):
            ax.bar(np.arange(len(clips)) + j * width, grid[submission].to_numpy(float), width, label=label)
        ax.set_xticks(np.arange(len(clips)) + 0.4 - width / 2, clips, rotation=45, ha="right")
        ax.set_ylabel(f"{metric} {arrow(directions[metric])}")
        ax.legend(fontsize="small")
        fig.tight_layout()
        name = f"clips-{slug(metric)}.png"
        fig.savefig(folder / name)
        plt.close(fig)
        made.append((name, f"{metric} per clip", "clips"))
    return made


def _method_page(rows, manifest: dict) -> str:
    meta = manifest["metadata"]
    protocol = manifest["protocol"]
    facts = [
        ("submission", _e(manifest["id"])), ("method", _e(manifest["name"])),
        ("method (as stated)", _e(meta.get("method") or "—")), ("paper", _link(meta.get("paper") or "")),
        ("code", _link(meta.get("code") or "")),
        ("weights sha256", f"<code>{_e(meta.get('weights_sha256') or '—')}</code>"),
        ("training data", _e(meta.get("training_data") or "unstated")),
        ("trained on the M3SVD train split", _e({True: "yes", False: "no"}.get(meta.get("trained_on_m3svd_train"),
                                                                               "unstated"))),
        ("protocol", f"{_e(protocol['key'])} (sha256 <code>{_e(protocol['sha256'])}</code>)"),
        ("complete protocol data", "yes" if manifest.get("complete") else "no"),
        ("submitted", _e(manifest["submitted_at"])), ("evaluated by", _e(manifest["evaluated_by"])),
        ("fused frames sha256", f"<code>{_e(manifest['fused_sha256'])}</code>"),
        ("frames", _e(manifest["frames"])),
        ("record files", "<br>".join(f"{_e(f)} <code>{_e(h)}</code>" for f, h in manifest["files"].items())),
        ("versions", _e(", ".join(f"{k} {v}" for k, v in manifest["versions"].items()))),
        ("metrics", _e(", ".join(f"{m} ({v['convention']} v{v['version']})" for m, v in manifest["metrics"].items()))),
    ]
    provenance = "<dl id=\"provenance\">" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    overall = rows[rows["clip"] == OVERALL]
    head = "<tr><th class=\"text\">metric</th><th>value</th><th>95% CI</th><th>rank</th><th class=\"text\">" \
           "convention</th></tr>"
    body = "".join(f"<tr><td class=\"text\">{_e(r['metric'])} {arrow(r['higher_is_better'])}</td>"
                   f"<td>{_fmt(r['value'])}</td><td>[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]</td>"
                   f"<td>{'' if math.isnan(r['rank']) else int(r['rank'])}</td><td class=\"text\">"
                   f"{_e(r['convention'])} v{_e(r['metric_version'])}</td></tr>" for _, r in overall.iterrows())
    per_clip = rows[rows["clip"] != OVERALL]
    metrics = list(dict.fromkeys(overall["metric"]))
    directions = overall.set_index("metric")["higher_is_better"].to_dict()
    grid = per_clip.pivot_table(index="clip", columns="metric", values="value").reindex(columns=metrics)
    clip_head = "<tr><th data-type=\"text\" class=\"text\">clip</th>" + "".join(
        f"<th data-type=\"num\" data-best=\"{'desc' if directions[m] else 'asc'}\">{_e(m)} {arrow(directions[m])}"
        f"</th>" for m in metrics) + "</tr>"
    clip_body = "".join(f"<tr><td class=\"text\">{_e(clip)}</td>" + "".join(_num_cell(float(v)) for v in values)
                        + "</tr>" for clip, values in grid.iterrows())
    body_html = (f"<h1>{_e(manifest['name'])}</h1><p>protocol {_e(protocol['key'])}, position "
                 f"{int(overall['position'].iloc[0])}, score {float(overall['score'].iloc[0]):.2f}</p>"
                 f"<h2>provenance</h2>{provenance}<h2>results</h2>"
                 f"<table id=\"overall\"><thead>{head}</thead><tbody>{body}</tbody></table><h2>per clip</h2>"
                 f"<table class=\"sortable\" id=\"clips\"><thead>{clip_head}</thead><tbody>{clip_body}</tbody></table>")
    return _page(f"{manifest['name']} — m3svd leaderboard", body_html, depth=1)


def _reported_page(reported) -> str:
    parts = [f"<h1>Reported numbers</h1><p class=\"banner\" id=\"reported-label\">{_e(REPORTED_LABEL)}</p>"]
    if reported.empty:
        parts.append("<p>No reported numbers recorded.</p>")
    for i, g in enumerate(reported_groups(reported)):
        head = "<th data-type=\"text\" class=\"text\">method</th>" + "".join(
            f"<th data-type=\"num\" data-best=\"{'desc' if g['directions'][m] else 'asc'}\">{_e(m)} "
            f"{arrow(g['directions'][m])}</th>" for m in g["metrics"])
        body = "".join(f"<tr><td class=\"text\">{_e(method)}</td>" + "".join(
            f"<td data-value=\"{_e(v)}\">{_e(v)}</td>" for v in row) + "</tr>" for method, row in g["wide"].iterrows())
        notes = f"<p>{_e('; '.join(g['notes']))}</p>" if g["notes"] else ""
        parts.append(f"<section class=\"reported\" id=\"reported-{i}\"><h2>{_e(g['source'])}</h2><p>{_e(g['dataset'])}"
                     f", {_e(g['setting'])} · source: {_e(g['reference'])} · convention: {_e(g['convention'])}</p>"
                     f"{notes}<table class=\"sortable reported\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
                     f"</table></section>")
    return _page("Reported numbers (not verified) — m3svd", "".join(parts))
