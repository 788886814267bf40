"""`m3svd submit`: validate fused frames, recompute every metric, write one verified record.

Numbers are never accepted from the submitter: the record's rows come from `m3svd evaluate --predictions`. Several
processes may submit into one leaderboard folder at once. Each builds its record in ``.staging/<random>/`` on the
same file system, then, holding an exclusive lock on ``.lock``, checks again for duplicates (two submitters of the
same frames both pass validation; only the first may land), renames the finished folder into ``submissions/<id>/``
(a rename is atomic, so a record is either whole or absent) and rewrites ``index.json`` from the records on disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from m3svd import __version__
from m3svd.files import atomic_json, sha256_file, writable_folder
from m3svd.leaderboard.schema import (
    INDEX,
    LOCK,
    RECORD_SCHEMA,
    STAGING,
    Metadata,
    SubmissionError,
    name_problem,
    read_manifest,
    record_dirs,
    slug,
    submissions_dir,
)
from m3svd.leaderboard.validate import as_protocol, duplicate_problems, inspect
from m3svd.protocols import Protocol


@dataclass
class Submission:
    id: str
    path: Path
    manifest: dict


@contextlib.contextmanager
def locked(leaderboard_dir: str | Path):
    """An exclusive advisory lock over the leaderboard's shared files (``index.json``, ``leaderboard.parquet``)."""
    from filelock import FileLock

    folder = Path(leaderboard_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(folder / LOCK):
        yield


ALIVE = ".alive"  # in each staging folder: locked by the submit building it for as long as it runs
STALE_UNLOCKED_S = 60  # a staging folder without its lock file, older than this, belongs to no live submit


def clean_staging(leaderboard_dir: str | Path, log=lambda line: None) -> list[Path]:
    """Remove the staging folders of submits that are no longer running (killed: their ``finally`` never ran).

    A live submit holds an exclusive lock on ``<staging>/.alive``; a folder whose lock can be taken is a leftover.
    Concurrent submits are safe: one never removes another's folder while that one runs.
    """
    import fcntl
    import time

    removed = []
    folder = Path(leaderboard_dir) / STAGING
    if not folder.is_dir():
        return removed
    for staging in sorted(folder.iterdir()):
        alive = staging / ALIVE
        if not staging.is_dir():
            continue
        try:
            with open(alive, "rb") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a submit is running there
                shutil.rmtree(staging, ignore_errors=True)
        except FileNotFoundError:  # made, lock file not yet (a live submit) or never (killed at once)
            if time.time() - staging.stat().st_mtime < STALE_UNLOCKED_S:
                continue
            shutil.rmtree(staging, ignore_errors=True)
        removed.append(staging)
        log(f"{staging}: removed, left by an interrupted submit")
    return removed


@dataclass(frozen=True)
class Entry:
    """One folder to submit: its display name, what the submitter states, whether it is a reference row (a source or
    a trivial baseline shown apart and never ranked, so the copy and degenerate checks do not refuse it), and where
    its frames come from (:mod:`m3svd.leaderboard.origin`)."""

    directory: Path
    name: str
    metadata: Metadata = Metadata()
    reference: bool = False
    origin: dict | None = None


def submit(directory: str | Path, name: str, protocol: Protocol | str | Path, root: str | Path | None = None,
           metadata: Metadata | dict | None = None, leaderboard_dir: str | Path = "leaderboard",
           log=lambda line: None, reference: bool = False, origin: dict | None = None) -> Submission:
    """Validate ``directory``, score it on ``protocol``, and add it to ``leaderboard_dir``; returns the record.

    Raises :class:`SubmissionError` (with ``problems``) and writes nothing when the submission is refused.
    """
    entry = Entry(Path(directory), name, Metadata.coerce(metadata), reference, origin)
    return submit_many([entry], protocol, root, leaderboard_dir, log)[0]


def submit_many(entries: list[Entry], protocol: Protocol | str | Path, root: str | Path | None = None,
                leaderboard_dir: str | Path = "leaderboard", log=lambda line: None,
                progress: bool | str = False) -> list[Submission]:
    """Submit several folders on one protocol, scored in one pass (source statistics and flows computed once for
    all of them). Every entry is validated before any is scored; if one is refused, none is recorded.
    ``progress``: the scoring's, as :func:`m3svd.evaluate.evaluate_methods` shows it."""
    from m3svd.evaluate import Predictions, evaluate_methods

    protocol = as_protocol(protocol)
    if not protocol.ranking:
        raise SubmissionError(f"{protocol.path}: protocol {protocol.key} declares no [ranking] (primary metrics or "
                              f"weighted groups), so its leaderboard could not order methods; add one")
    inspections, problems = [], []
    for entry in entries:
        refusals = [p for p in (name_problem(entry.name), *entry.metadata.problems()) if p]
        if refusals:
            raise SubmissionError(refusals[0], refusals)
        published = set((entry.origin or {}).get("files", {}).values())
        inspection = inspect(entry.directory, protocol, root, leaderboard_dir, reference=entry.reference,
                             published=published)
        inspections.append(inspection)
        problems += inspection.problems
    seen: dict[str, Path] = {}
    for entry, inspection in zip(entries, inspections, strict=True):
        if inspection.fused_sha256 and inspection.fused_sha256 in seen:
            problems.append(f"{entry.directory}: the same fused frames as {seen[inspection.fused_sha256]}, "
                            f"submitted together under another name")
        seen.setdefault(inspection.fused_sha256, entry.directory)
    if problems:
        where = entries[0].directory if len(entries) == 1 else "the submission"
        message = (f"{problems[0]} (nothing was submitted)" if len(problems) == 1
                   else f"{where}: {len(problems)} problems (listed above); nothing was submitted")
        raise SubmissionError(message, problems)
    leaderboard_dir = writable_folder(leaderboard_dir, "the leaderboard folder (--dir)")
    clean_staging(leaderboard_dir, log)
    staging = leaderboard_dir / STAGING / uuid.uuid4().hex
    alive = None
    try:
        import fcntl

        staging.mkdir(parents=True)
        alive = open(staging / ALIVE, "wb")  # noqa: SIM115 - held, locked, for the whole submit
        fcntl.flock(alive, fcntl.LOCK_EX)
        frames = sum(i.frames for i in inspections)
        log(f"scoring {len(entries)} folder(s) on protocol {protocol.key} in one pass ({len(inspections[0].clips)} "
            f"clip(s), {frames} frames)")
        runs = evaluate_methods(protocol, [(Predictions(str(e.directory), e.name), staging / str(i) / "run")
                                           for i, e in enumerate(entries)], root=root, progress=progress)
        submitted_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        made = []
        for i, (entry, inspection, run) in enumerate(zip(entries, inspections, runs, strict=True)):
            run_info = json.loads((run.out / "run.json").read_text())
            if run.partial:  # a --clips/--frames preview is never a protocol's result
                raise SubmissionError(f"{entry.directory}: scored on part of protocol {protocol.key} only "
                                      f"({run_info.get('subset')}); only complete runs may enter the leaderboard")
            if not run_info.get("complete"):
                raise SubmissionError(f"{entry.directory}: the protocol's data is incomplete (missing clips "
                                      f"{', '.join(run_info.get('missing_clips', []))}); only complete runs may "
                                      f"enter the leaderboard")
            record = staging / str(i) / "record"
            record.mkdir()
            for file in ("results.parquet", "summary.parquet", "run.json"):
                os.replace(run.out / file, record / file)
            record_id = f"{submitted_at[:10]}-{slug(entry.name)}-{_record_hash(protocol, inspection)}"
            manifest = _manifest(record_id, entry, protocol, inspection, run.results, run_info, record, submitted_at)
            _write_json(record / "manifest.json", manifest)
            made.append((entry, inspection, record, record_id, manifest))
        with locked(leaderboard_dir):
            for entry, inspection, _, record_id, _ in made:
                late = duplicate_problems(entry.directory, inspection, leaderboard_dir)
                if late:
                    raise SubmissionError(f"{late[0]} (nothing was submitted)", late)
                if (submissions_dir(leaderboard_dir) / record_id).exists():
                    raise SubmissionError(f"{submissions_dir(leaderboard_dir) / record_id}: a record with this id "
                                          f"exists already")
            out = []
            for _, _, record, record_id, manifest in made:
                target = submissions_dir(leaderboard_dir) / record_id
                target.parent.mkdir(parents=True, exist_ok=True)
                os.rename(record, target)
                out.append(Submission(record_id, target, manifest))
                log(f"recorded {target}")
            write_index(leaderboard_dir)
        return out
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if alive is not None:
            alive.close()


def _record_hash(protocol: Protocol, inspection) -> str:
    """12 hex digits naming the fused frames on this protocol: the same frames may be recorded on two protocols (the
    blurred visible stream is the `vi` reference row of the degraded and the visible-only ones)."""
    return hashlib.sha256(f"{protocol.key} {inspection.fused_sha256}".encode()).hexdigest()[:12]


def _manifest(record_id: str, entry: Entry, protocol: Protocol, inspection, results, run_info: dict, record: Path,
              submitted_at: str) -> dict:
    metrics = (results.drop_duplicates("metric").set_index("metric")[["convention", "metric_version", "kind",
                                                                       "higher_is_better"]])
    inputs = results.drop_duplicates("clip").set_index("clip")["input_sha256"].to_dict()
    clips = {clip: {**summary, "input_sha256": inputs.get(clip, "")} for clip, summary in inspection.clips.items()}
    return {
        "schema": RECORD_SCHEMA,
        "id": record_id,
        "name": entry.name,
        "submitted_at": submitted_at,
        "evaluated_by": f"m3svd submit {__version__} (recomputed from fused frames)",
        "protocol": {"id": protocol.id, "version": protocol.version, "key": protocol.key, "sha256": protocol.sha256,
                     "ranking": protocol.ranking.to_dict()},
        "complete": bool(run_info.get("complete")),
        "dataset": {"layout": run_info.get("dataset_layout"), "lossy_inputs": bool(results["lossy"].any())},
        "lossy_predictions": inspection.lossy,
        "metadata": entry.metadata.to_dict(),
        "reference": entry.reference,
        "origin": entry.origin,
        "fused_sha256": inspection.fused_sha256,
        "frames": inspection.frames,
        "clips": clips,
        "metrics": {m: {"convention": row["convention"], "version": str(row["metric_version"]), "kind": row["kind"],
                        "higher_is_better": bool(row["higher_is_better"])} for m, row in metrics.iterrows()},
        "files": {f: sha256_file(record / f) for f in ("results.parquet", "summary.parquet", "run.json")},
        "versions": _versions(),
    }


def _versions() -> dict:
    import cv2
    import numpy
    import pandas
    import pyarrow

    return {"m3svd": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "pandas": pandas.__version__, "pyarrow": pyarrow.__version__, "opencv": cv2.__version__,
            "platform": platform.platform()}


def write_index(leaderboard_dir: str | Path) -> Path:
    """Rewrite ``index.json`` (one entry per record) from the records on disk; call it holding :func:`locked`."""
    entries = []
    for record in record_dirs(leaderboard_dir):
        manifest = read_manifest(record)
        entries.append({"id": manifest["id"], "name": manifest["name"], "protocol": manifest["protocol"]["key"],
                        "protocol_sha256": manifest["protocol"]["sha256"], "fused_sha256": manifest["fused_sha256"],
                        "submitted_at": manifest["submitted_at"]})
    path = Path(leaderboard_dir) / INDEX
    _write_json(path, {"schema": RECORD_SCHEMA, "submissions": entries})
    return path


def _write_json(path: Path, value) -> None:
    atomic_json(path, value, fsync=True)


