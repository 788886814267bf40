"""`m3svd leaderboard build`: submission records → ``leaderboard.parquet`` (long format, ranked per protocol).

Every value is derived from the per-frame rows of the records (means over clips of per-clip means, with the seeded
bootstrap interval of `m3svd evaluate`), never from a number a submitter typed. A ranking only compares like with
like: the records of one protocol must share the protocol file's hash and, per metric, its convention and version;
otherwise the build stops and says which records disagree. Records are checked against their manifests' hashes, and
only records of complete protocol runs are admitted.

What orders a protocol's table is the protocol's own ``[ranking]`` (stored in each record's manifest at submit):
per metric, rank 1 = best; a value undefined for a method (non-finite, or undefined on any frame) ranks it last on
that metric and still counts in its score; the score is the weighted mean rank over the declared ranking metrics.
Reference rows (the toolkit's ``ir``, ``vi`` and ``average`` methods) are shown beside the entries but take no rank.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from m3svd.files import atomic_parquet
from m3svd.leaderboard.origin import describe
from m3svd.leaderboard.schema import (
    OVERALL,
    TABLE,
    TABLE_COLUMNS,
    LeaderboardError,
    MixError,
    read_manifest,
    record_dirs,
    submissions_dir,
)
from m3svd.protocols import Ranking


def load_records(leaderboard_dir: str | Path, left_out: list[str] | None = None) -> list[tuple[dict, object]]:
    """``(manifest, results)`` of every record, each checked against its manifest's hashes.

    A damaged record (unreadable, altered, incomplete) raises :class:`LeaderboardError`; with a ``left_out`` list
    it is left out instead, its one-line reason appended, so one bad record does not keep the others off the board.
    """
    records = []
    for record in record_dirs(leaderboard_dir):
        try:
            records.append(_load_record(record))
        except LeaderboardError as error:
            if left_out is None:
                raise
            left_out.append(str(error))
    return records


def _load_record(record: Path) -> tuple[dict, object]:
    import pandas as pd

    from m3svd.files import sha256_file

    manifest = read_manifest(record)
    for key in ("id", "name", "protocol", "files", "metadata", "submitted_at", "evaluated_by", "fused_sha256"):
        if key not in manifest:
            raise LeaderboardError(f"{record / 'manifest.json'}: no {key!r}; not a record `m3svd submit` wrote")
    protocol, files = manifest["protocol"], manifest["files"]
    if not isinstance(protocol, dict) or not {"id", "key", "version", "sha256"} <= set(protocol):
        raise LeaderboardError(f"{record / 'manifest.json'}: 'protocol' lacks id, key, version or sha256")
    if not isinstance(files, dict) or "results.parquet" not in files:
        raise LeaderboardError(f"{record / 'manifest.json'}: 'files' lists no sha256 of results.parquet")
    for file, expected in files.items():
        path = record / file
        if not path.is_file():
            raise LeaderboardError(f"{path}: missing from the record")
        if sha256_file(path) != expected:
            raise LeaderboardError(f"{path}: sha256 differs from the record's manifest.json; the record was "
                                   f"altered or damaged after `m3svd submit` wrote it")
    if not manifest.get("complete"):
        raise LeaderboardError(f"{record}: not a complete protocol run; only records of a protocol's complete "
                               f"data may enter the leaderboard")
    try:
        results = pd.read_parquet(record / "results.parquet")
    except (OSError, ValueError) as error:
        raise LeaderboardError(f"{record / 'results.parquet'}: unreadable ({str(error).splitlines()[0]})") from None
    missing = [c for c in ("metric", "value", "clip", "frame", "convention", "metric_version", "kind",
                           "higher_is_better", "toolkit_version", "method_version", "protocol_sha256")
               if c not in results.columns]
    if missing or results.empty:
        raise LeaderboardError(f"{record / 'results.parquet'}: "
                               + (f"no {missing[0]!r} column" if missing else "no rows")
                               + "; not a results file `m3svd submit` wrote")
    shas = set(results["protocol_sha256"])
    if shas != {manifest["protocol"]["sha256"]}:
        raise LeaderboardError(f"{record / 'results.parquet'}: rows carry protocol sha256 "
                               f"{', '.join(sorted(s[:12] for s in shas))}, the manifest "
                               f"{manifest['protocol']['sha256'][:12]}")
    return manifest, results


def check_comparable(key: str, records: list[tuple[dict, object]]) -> None:
    """Refuse one ranking over records scored under different protocol bytes, metric conventions or versions."""
    def disagreement(what: str, by_value: dict[str, list[str]]) -> str:
        listed = "; ".join(f"{value}: {', '.join(ids)}" for value, ids in sorted(by_value.items()))
        return f"protocol {key}: submissions disagree on {what} ({listed}); they cannot share one ranking"

    shas: dict[str, list[str]] = {}
    for manifest, _ in records:
        shas.setdefault(manifest["protocol"]["sha256"][:12], []).append(manifest["id"])
    if len(shas) > 1:
        raise MixError(disagreement("the protocol file's sha256", shas)
                       + " — rescore them with the same protocol file")
    seen: dict[str, dict[str, dict[str, list[str]]]] = {"convention": {}, "metric_version": {}}
    for manifest, results in records:
        pairs = results.drop_duplicates(["metric", "convention", "metric_version"])
        for _, row in pairs.iterrows():
            for column in seen:
                seen[column].setdefault(row["metric"], {}).setdefault(str(row[column]), []).append(manifest["id"])
    for column, label in (("convention", "the convention of metric"), ("metric_version", "the version of metric")):
        for metric, by_value in seen[column].items():
            if len(by_value) > 1:
                raise MixError(disagreement(f"{label} {metric!r}", {k: sorted(set(v)) for k, v in by_value.items()})
                               + " — rescore the older ones with this toolkit")


def ranking_of(key: str, records: list[tuple[dict, object]]) -> Ranking:
    """The protocol's declared ranking, as the records stored it (records older than rankings: the bundled file's,
    when its bytes are the ones they were scored with)."""
    import json

    from m3svd import protocols

    found: dict[str, list[str]] = {}
    for manifest, _ in records:
        declared = manifest["protocol"].get("ranking")
        if declared is None:
            try:
                bundled = protocols.load(manifest["protocol"]["id"])
            except protocols.ProtocolError:
                bundled = None
            if bundled is not None and bundled.sha256 == manifest["protocol"]["sha256"] and bundled.ranking:
                declared = bundled.ranking.to_dict()
        if declared is None:
            raise LeaderboardError(f"submission {manifest['id']}: protocol {key} declares no [ranking], so nothing "
                                   f"says what orders its table; rescore it with a protocol file that has one")
        found.setdefault(json.dumps(declared, sort_keys=True), []).append(manifest["id"])
    if len(found) > 1:
        listed = "; ".join(", ".join(ids) for ids in found.values())
        raise MixError(f"protocol {key}: submissions disagree on the [ranking] they were scored under ({listed}); "
                       f"they cannot share one ranking")
    return Ranking.from_dict(json.loads(next(iter(found))))


def build(leaderboard_dir: str | Path = "leaderboard", write: bool = True, log=lambda line: None):
    """The ranked long-format table of every intact record in ``leaderboard_dir``; written to
    ``leaderboard.parquet``. A damaged record is left out and named (``log``, and ``table.attrs["left_out"]``);
    the others still build."""
    import pandas as pd

    from m3svd.evaluate import summarise

    leaderboard_dir = Path(leaderboard_dir)
    if write and not leaderboard_dir.is_dir():
        raise LeaderboardError(f"{leaderboard_dir}: no leaderboard folder (expected {submissions_dir(leaderboard_dir)}"
                               f"/<id>/ records from `m3svd submit`)")
    if write:
        from m3svd.files import writable_folder
        from m3svd.leaderboard.submit import clean_staging

        writable_folder(leaderboard_dir, "the leaderboard folder (--dir)")
        clean_staging(leaderboard_dir, log)
    left_out: list[str] = []
    by_protocol: dict[str, list] = {}
    records = load_records(leaderboard_dir, left_out)
    for line in left_out:
        log(f"left out: {line}")
    for manifest, results in records:
        by_protocol.setdefault(manifest["protocol"]["key"], []).append((manifest, results))
    frames = []
    rankings = {}
    for key, records in sorted(by_protocol.items()):
        check_comparable(key, records)
        rankings[key] = ranking_of(key, records)
        names = [m["name"] for m, _ in records]
        for manifest, results in records:
            frames.append(_rows(manifest, results, summarise(results), names.count(manifest["name"]) > 1))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TABLE_COLUMNS)
    table = _ranked(table, rankings)[TABLE_COLUMNS]
    table.attrs["left_out"] = left_out
    if write:
        from m3svd.leaderboard.submit import locked

        with locked(leaderboard_dir):
            atomic_parquet(leaderboard_dir / TABLE, table)
    return table


def _rows(manifest: dict, results, summary, ambiguous: bool):
    meta = manifest["metadata"]
    first = results.iloc[0]
    rows = summary.rename(columns={"mean": "value"}).copy()
    info = results.drop_duplicates("metric").set_index("metric")
    rows["convention"] = rows["metric"].map(info["convention"])
    rows["metric_version"] = rows["metric"].map(info["metric_version"]).astype(str)
    rows["kind"] = rows["metric"].map(info["kind"])
    protocol = manifest["protocol"]
    constant = {
        "protocol": protocol["key"], "protocol_id": protocol["id"], "protocol_version": protocol["version"],
        "protocol_sha256": protocol["sha256"], "submission": manifest["id"], "method": manifest["name"],
        "label": f"{manifest['name']} [{manifest['id'][-12:-4]}]" if ambiguous else manifest["name"],
        "reference": bool(manifest.get("reference", False)), "origin": describe(manifest.get("origin")),
        "toolkit_version": first["toolkit_version"], "method_version": first["method_version"],
        "weights_sha256": meta.get("weights_sha256") or "", "training_data": meta.get("training_data") or "",
        "trained_on_m3svd_train": _tristate(meta.get("trained_on_m3svd_train")), "paper": meta.get("paper") or "",
        "code": meta.get("code") or "", "submitted_at": manifest["submitted_at"],
        "evaluated_by": manifest["evaluated_by"], "results_sha256": manifest["files"]["results.parquet"],
        "fused_sha256": manifest["fused_sha256"],
    }
    for column, value in constant.items():
        rows[column] = value
    order = {m: i for i, m in enumerate(dict.fromkeys(results["metric"]))}  # the protocol's metric order
    overall_first = (rows["clip"] != OVERALL).astype(int)
    return rows.iloc[np.lexsort((rows["metric"].map(order), rows["clip"], overall_first))].reset_index(drop=True)


def _tristate(value) -> str:
    return {True: "yes", False: "no"}.get(value, "unstated")


def _ranked(table, rankings: dict[str, Ranking]):
    """Per protocol × clip × metric: rank 1 = best, ties share the better rank, undefined values rank last (below
    every defined one, all at the bottom rank). Per submission (overall rows): the protocol's weighted score.
    Reference rows take no part: no rank, score or position, and the entries' ranks are as if they were absent."""
    if "reference" not in table:
        table = table.assign(reference=False)
    if table.empty:
        return table.assign(group="", weight=0.0, group_score=np.nan, score=np.nan, position=np.nan)
    table = table.reset_index(drop=True)
    entry = ~table["reference"].astype(bool).to_numpy()
    defined = np.isfinite(table["value"].to_numpy(float)) & (table["undefined"].fillna(0).to_numpy() == 0)
    ranks = np.full(len(table), np.nan)
    for _, group in table[entry].groupby(["protocol", "clip", "metric"], sort=False):
        higher = bool(group["higher_is_better"].iloc[0])
        ok = defined[group.index]
        ranks[group.index[ok]] = group["value"][ok].rank(method="min", ascending=not higher).to_numpy()
        ranks[group.index[~ok]] = len(group)
    table = table.assign(rank=ranks, group="", weight=0.0, group_score=np.nan, score=np.nan, position=np.nan)
    for key, ranking in rankings.items():
        here = table["protocol"] == key
        table.loc[here, "group"] = table.loc[here, "metric"].map(ranking.group_of()).fillna("")
        table.loc[here, "weight"] = table.loc[here, "metric"].map(ranking.weights()).fillna(0.0)
        overall = table[here & (table["clip"] == OVERALL) & entry]
        submissions = list(dict.fromkeys(overall["submission"]))
        # a ranking metric a record lacks altogether counts as undefined: last
        grid = overall.pivot_table(index="submission", columns="metric", values="rank").reindex(
            index=submissions, columns=list(ranking.metrics)).fillna(float(len(submissions)))
        weights = ranking.weights()
        score = sum(grid[m] * w for m, w in weights.items())
        position = score.round(9).rank(method="min")  # equal scores tie, whatever the float summation order
        group_scores = {g.name: grid[list(g.metrics)].mean(axis=1) for g in ranking.groups}
        rows = overall.index
        table.loc[rows, "score"] = overall["submission"].map(score).to_numpy(float)
        table.loc[rows, "position"] = overall["submission"].map(position).to_numpy(float)
        table.loc[rows, "group_score"] = [group_scores[g][s] if g else np.nan
                                          for g, s in zip(table.loc[rows, "group"], overall["submission"],
                                                          strict=True)]
    return table


def read_table(leaderboard_dir: str | Path = "leaderboard"):
    """The table as built from the records now (always fresh; ``build`` is what writes it to disk)."""
    return build(leaderboard_dir, write=False)
