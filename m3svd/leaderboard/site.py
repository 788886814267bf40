"""`m3svd leaderboard --html DIR`: the static site, rendered from the Jinja2 templates in ``templates/``.

Python gathers what each page shows (rows, cells, figures, notes); the templates only lay it out, and Jinja2
escapes every value. Pages are self-contained (styles and the sorting script are inlined) so the folder can be
opened from disk or served as is. The site is written to a temporary folder and renamed over ``DIR`` as a whole.

Metric headers link to the metric's card copied into the site (``cards/<metric>.html``, from ``metrics/cards/`` of
the source checkout or the folder given as ``cards``): a link inside the site keeps working wherever the folder is
moved or served, and does not depend on a URL this project may not keep.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from pathlib import Path

from m3svd.leaderboard import figures
from m3svd.leaderboard.render import (
    REFERENCE_MARK,
    REPORTED_LABEL,
    _fmt,
    _header,
    arrow,
    load_reported,
    protocols_in,
    ranked,
    ranking_groups,
    ranking_line,
    reported_groups,
)
from m3svd.leaderboard.schema import OVERALL, LeaderboardError, read_manifest, slug, submissions_dir

SITE_MARK = "<!-- m3svd leaderboard site -->"
STRIP_CLIPS = 2  # chosen frames of the qualitative strip: the first and the middle clip, each its middle scored frame


def default_cards() -> Path:
    """``metrics/cards/`` of the source checkout this package runs from (absent in an installed wheel)."""
    return Path(__file__).resolve().parents[2] / "metrics" / "cards"


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("m3svd.leaderboard", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals["SITE_MARK"] = SITE_MARK
    return env


def write_site(table, out: str | Path, leaderboard_dir: str | Path = "leaderboard", reported=None,
               cards: str | Path | None = None, root: str | Path | None = None,
               fused: str | Path | None = None) -> Path:
    """Write the static site to ``out`` (replaced as a whole; an unrelated existing folder is refused).

    ``root``/``fused``: the dataset and a folder of submitted frames (``fused/<submission id or name>/<clip>/``)
    for the qualitative strips; records store hashes, not frames, so without them the strips are left out with a
    note on the page.
    """
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        index = out / "index.html"
        if not (index.is_file() and SITE_MARK in index.read_text(errors="replace")[:200]):
            raise LeaderboardError(f"{out}: exists and is not an m3svd leaderboard site; give a new or empty folder")
    if reported is None:
        reported = load_reported(leaderboard_dir)
    if "reference" not in table:
        table = table.assign(reference=False)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir(parents=True)
    try:
        Site(table, tmp, Path(leaderboard_dir), Path(cards) if cards else default_cards(), root,
             Path(fused) if fused else None).write(reported)
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


class Site:
    def __init__(self, table, folder: Path, leaderboard_dir: Path, cards: Path, root, fused: Path | None):
        self.table, self.folder, self.leaderboard_dir = table, folder, leaderboard_dir
        self.cards, self.root, self.fused = cards, root, fused
        self.env = _environment()

    def _page(self, template: str, path: Path, depth: int = 0, **context) -> None:
        html = self.env.get_template(template).render(home="../" * depth, **context)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html)

    def write(self, reported) -> None:
        keys = protocols_in(self.table) if not self.table.empty else []
        sections = [self._section(key) for key in keys]
        self._page("index.html", self.folder / "index.html", title="m3svd leaderboard", sections=sections)
        submissions = dict.fromkeys(self.table["submission"]) if not self.table.empty else []
        for submission in submissions:
            rows = self.table[self.table["submission"] == submission]
            manifest = read_manifest(submissions_dir(self.leaderboard_dir) / submission)
            self._page("method.html", self.folder / "methods" / f"{submission}.html", depth=1,
                       **_method_context(rows, manifest))
        metrics = dict.fromkeys(self.table["metric"]) if not self.table.empty else []
        for metric in metrics:
            card = self.cards / f"{metric}.md"
            self._page("card.html", self.folder / "cards" / f"{slug(metric)}.html", depth=1, metric=metric,
                       title=f"metric card: {metric}", text=card.read_text() if card.is_file() else None,
                       source=f"metrics/cards/{metric}.md")
        groups = reported_groups(reported)
        self._page("reported.html", self.folder / "reported.html", title="Reported numbers (not verified) — m3svd",
                   label=REPORTED_LABEL, groups=[{**g, "rows": list(g["wide"].iterrows())} for g in groups])

    # -- one protocol ---------------------------------------------------------------------------------------------
    def _section(self, key: str) -> dict:
        wide, metrics, directions = ranked(self.table, key)
        anchor = slug(key)
        groups = [{"name": group, "span": len(members), "weight": float(members["weight"].sum())}
                  for group, members in ranking_groups(self.table, key)]  # ranked() puts their metrics first
        primary = metrics[:sum(g["span"] for g in groups)]
        others = metrics[len(primary):]

        def header(m):
            return {"name": m, "arrow": arrow(directions[m]), "best": "desc" if directions[m] else "asc",
                    "card": f"cards/{slug(m)}.html", "better": "higher" if directions[m] else "lower"}

        def row(r, chosen, score=True):
            out = {"submission": r["submission"], "method": r["method"], "reference": bool(r["reference"]),
                   "position": REFERENCE_MARK if r["reference"] else int(r["position"]),
                   "cells": [_metric_cell(r, m) for m in chosen]}
            if score:
                out["score"] = None if math.isnan(r["score"]) else r["score"]
            return out

        entries = [r for _, r in wide.iterrows() if not r["reference"]]
        references = [r for _, r in wide.iterrows() if r["reference"]]
        img = self.folder / "img" / anchor
        figs, notes = self._figures(key, wide, directions, primary, img)
        return {
            "key": key, "anchor": anchor, "header": _header(self.table, key), "ranking": ranking_line(self.table, key),
            "groups": groups, "primary": [header(m) for m in primary], "others": [header(m) for m in others],
            "entries": [row(r, primary) for r in entries], "references": [row(r, primary) for r in references],
            "entries_others": [row(r, others, False) for r in entries],
            "references_others": [row(r, others, False) for r in references],
            "figures": figs, "notes": notes,
        }

    def _figures(self, key: str, wide, directions: dict, primary: list[str], img: Path) -> tuple[list, list]:
        """Figures of one protocol as ``{src, alt, kind}``; ``notes`` say which were left out and why."""
        anchor = img.name
        made, notes = [], []
        if self._strip(key, wide, img / "strip.png", notes):
            made.append({"src": f"img/{anchor}/strip.png", "kind": "strip",
                         "alt": "qualitative strip: IR, VIS and each method's fused frame on the same chosen frames"})
        if figures.rank_stability(self.table, key, img / "rank-stability.png"):
            made.append({"src": f"img/{anchor}/rank-stability.png", "kind": "stability",
                         "alt": f"rank stability: share of {figures.DRAWS} bootstrap draws over clips that put each "
                                f"method at each position"})
        else:
            notes.append("rank stability: needs at least two ranked entries")
        frames = self._frame_rows(key, wide)
        series = [(r["submission"], r["method"], bool(r["reference"])) for _, r in wide.iterrows()]
        curves = 0
        for metric in primary:
            if frames is not None and figures.frame_curves(frames, series, metric, directions[metric],
                                                           img / f"frames-{slug(metric)}.png"):
                curves += 1
                made.append({"src": f"img/{anchor}/frames-{slug(metric)}.png", "kind": "curves",
                             "alt": f"{metric} per frame, one panel per clip, one line per method"})
        if not curves:
            notes.append("per-frame curves: an image protocol (one frame per clip), so there are none")
        return made, notes

    def _frame_rows(self, key: str, wide):
        """Per-frame rows of the protocol's ranking metrics, read from the records' ``results.parquet``."""
        import pandas as pd

        parts = []
        for submission in wide["submission"]:
            path = submissions_dir(self.leaderboard_dir) / submission / "results.parquet"
            if not path.is_file():
                return None
            rows = pd.read_parquet(path, columns=["clip", "frame", "metric", "value"])
            parts.append(rows.assign(submission=submission))
        return pd.concat(parts, ignore_index=True) if parts else None

    def _strip(self, key: str, wide, path: Path, notes: list[str]) -> bool:
        if self.root is None or self.fused is None:
            notes.append("qualitative strip: records keep hashes, not frames; build with --root (the dataset) and "
                         "--fused (a folder of the submitted frames, one sub-folder per submission id or name)")
            return False
        try:
            shots, missing = _strip_shots(self.table, key, wide, self.leaderboard_dir, self.root, self.fused)
        except LeaderboardError as error:
            notes.append(f"qualitative strip: {error}")
            return False
        if missing:
            notes.append("qualitative strip: frames not available for " + "; ".join(missing))
        return figures.strip(shots, path)


def _metric_cell(r, metric: str) -> dict:
    value, low, high = r[f"{metric}:value"], r[f"{metric}:ci_low"], r[f"{metric}:ci_high"]
    rank, undefined = r[f"{metric}:rank"], r[f"{metric}:undefined"]
    bad = not math.isfinite(value) or (undefined == undefined and undefined > 0)
    return {"text": "undefined" if bad else _fmt(value), "value": "" if bad else repr(float(value)),
            "ci": None if bad or math.isnan(low) or math.isnan(high) else f"[{_fmt(low)}, {_fmt(high)}]",
            "rank": None if math.isnan(rank) else int(rank),
            "title": (f"undefined on {int(undefined)} frame(s); ranks last" if bad and undefined == undefined
                      and undefined > 0 else "95% bootstrap CI over clips")}


def _strip_shots(table, key: str, wide, leaderboard_dir: Path, root, fused: Path):
    """The chosen frames' thumbnails: IR, VIS, then each method in table order (``ir``/``vi`` references are the
    first two tiles already). A method's frames are used only when its clip folder's file hashes equal the record's.
    """
    from m3svd.data.frames import list_images, read_image, to_rgb
    from m3svd.errors import M3SVDError
    from m3svd.files import sha256_file
    from m3svd.leaderboard.validate import joined_sha256

    rows = table[(table["protocol"] == key) & (table["clip"] != OVERALL)]
    clips = list(dict.fromkeys(rows["clip"]))
    chosen = list(dict.fromkeys([clips[0], clips[len(clips) // 2]]))[:STRIP_CLIPS] if clips else []
    manifests = {s: read_manifest(submissions_dir(leaderboard_dir) / s) for s in wide["submission"]}
    first = manifests[wide["submission"].iloc[0]]
    clipset = _dataset(first, root)
    scored = _scored(submissions_dir(leaderboard_dir) / wide["submission"].iloc[0] / "results.parquet")
    shots, missing = [], []
    for name in chosen:
        variant, frame = scored[name]
        try:
            clip = clipset.clip(name, variant=variant)
        except M3SVDError as error:  # names the folder and the clip
            raise LeaderboardError(f"--root {root}: {error}") from None
        ir, vi = clip.frames(frame, frame + 1)
        tiles = [("IR", figures.thumbnail(ir[0])), ("VIS", figures.thumbnail(vi[0]))]
        for _, r in wide.iterrows():
            manifest = manifests[r["submission"]]
            image = None
            method = (manifest.get("origin") or {}).get("method")  # frames the toolkit's own method made
            if r["reference"] and method in ("ir", "vi"):
                continue  # the IR and VIS tiles show them
            if method:  # a per-frame method of the toolkit is rerun on the chosen frame: the same pixels
                from m3svd import methods

                built = methods.create(method, **((manifest.get("origin") or {}).get("options") or {}))
                if built.temporal_window == 1:
                    image = figures.thumbnail(built.fuse(ir, vi).fused[0])
            for candidate in () if image is not None else (r["submission"], manifest["name"],
                                                             slug(manifest["name"])):
                folder = fused / candidate / name
                files = list_images(folder) if folder.is_dir() else []
                if not files:
                    continue
                expected = manifest.get("clips", {}).get(name, {}).get("files_sha256")
                if joined_sha256(sha256_file(p) for p in files) == expected and frame < len(files):
                    image = figures.thumbnail(to_rgb(read_image(files[frame])))
                    break
            if image is None:
                missing.append(f"{r['method']} (clip {name})")
            tiles.append((r["method"], image))
        shots.append((f"{name} · frame {frame}", tiles))
    return shots, missing


def _dataset(manifest: dict, root):
    """The dataset of a record's protocol under ``root`` (the bundled protocol's folders when its bytes match)."""
    from m3svd import protocols
    from m3svd.data import open_dataset
    from m3svd.errors import M3SVDError

    try:
        protocol = protocols.load(manifest["protocol"]["id"])
    except protocols.ProtocolError:
        protocol = None
    try:
        if protocol is not None and protocol.sha256 == manifest["protocol"]["sha256"]:
            from m3svd.evaluate import find_dataset

            return find_dataset(protocol, root)
        return open_dataset(root)
    except M3SVDError as error:
        raise LeaderboardError(f"--root {root}: {error}") from None


def _scored(path: Path) -> dict:
    """Per clip of a record: ``(variant, the middle frame it was scored on)``."""
    import pandas as pd

    rows = pd.read_parquet(path, columns=["clip", "variant", "frame"])
    return {clip: (group["variant"].iloc[0] or None, int(sorted(set(group["frame"]))[len(set(group["frame"])) // 2]))
            for clip, group in rows.groupby("clip", sort=False)}


def _method_context(rows, manifest: dict) -> dict:
    meta = manifest["metadata"]
    protocol = manifest["protocol"]
    trained = {True: "yes", False: "no"}.get(meta.get("trained_on_m3svd_train"), "unstated")
    facts = [
        ("submission", manifest["id"], None), ("method", manifest["name"], None),
        ("method (as stated)", meta.get("method") or "—", None), ("paper", meta.get("paper") or "—", "url"),
        ("code", meta.get("code") or "—", "url"), ("weights sha256", meta.get("weights_sha256") or "—", "code"),
        ("training data", meta.get("training_data") or "unstated", None),
        ("trained on the M3SVD train split", trained, None),
        ("protocol", f"{protocol['key']} (sha256 {protocol['sha256']})", None),
        ("complete protocol data", "yes" if manifest.get("complete") else "no", None),
        ("submitted", manifest["submitted_at"], None), ("evaluated by", manifest["evaluated_by"], None),
        ("fused frames sha256", manifest["fused_sha256"], "code"), ("frames", manifest["frames"], None),
        ("record files", [f"{f} {h}" for f, h in manifest["files"].items()], "lines"),
        ("versions", ", ".join(f"{k} {v}" for k, v in manifest["versions"].items()), None),
        ("metrics", ", ".join(f"{m} ({v['convention']} v{v['version']})" for m, v in manifest["metrics"].items()),
         None),
    ]
    overall = rows[rows["clip"] == OVERALL]
    first = overall.iloc[0]
    reference = bool(first.get("reference", False))
    results = [{"metric": r["metric"], "card": f"../cards/{slug(r['metric'])}.html",
                "arrow": arrow(r["higher_is_better"]), "value": _fmt(r["value"]),
                "ci": f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]",
                "rank": "" if math.isnan(r["rank"]) else int(r["rank"]),
                "convention": f"{r['convention']} v{r['metric_version']}"} for _, r in overall.iterrows()]
    metrics = list(dict.fromkeys(overall["metric"]))
    directions = overall.set_index("metric")["higher_is_better"].to_dict()
    per_clip = rows[rows["clip"] != OVERALL]
    grid = per_clip.pivot_table(index="clip", columns="metric", values="value").reindex(columns=metrics)
    return {
        "title": f"{manifest['name']} — m3svd leaderboard", "name": manifest["name"], "protocol": protocol["key"],
        "reference": reference,
        "position": REFERENCE_MARK if reference else int(first["position"]),
        "score": None if reference or math.isnan(first["score"]) else float(first["score"]),
        "facts": facts, "results": results,
        "clip_headers": [{"name": m, "arrow": arrow(directions[m]), "best": "desc" if directions[m] else "asc"}
                         for m in metrics],
        "clips": [(clip, [{"text": _fmt(float(v)), "value": "" if math.isnan(v) else repr(float(v))}
                          for v in values]) for clip, values in grid.iterrows()],
    }
