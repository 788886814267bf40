"""`m3svd submit`: validate fused frames, recompute every metric, write one verified record.

Numbers are never accepted from the submitter: the record's rows come from `m3svd evaluate --predictions`. Several
processes may submit into one leaderboard folder at once. Each builds its record in ``.staging/<random>/`` on the
same file system, then, holding an exclusive lock on ``.lock``, checks again for duplicates (two submitters of the
same frames both pass validation; only the first may land), renames the finished folder into ``submissions/<id>/``
(a rename is atomic, so a record is either whole or absent) and rewrites ``index.json`` from the records on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from m3svd import __version__
from m3svd.files import sha256_file
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
    import fcntl

    folder = Path(leaderboard_dir)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def submit(directory: str | Path, name: str, protocol: Protocol | str | Path, root: str | Path | None = None,
           metadata: Metadata | dict | None = None, leaderboard_dir: str | Path = "leaderboard",
           log=lambda line: None) -> Submission:
    """Validate ``directory``, score it on ``protocol``, and add it to ``leaderboard_dir``; returns the record.

    Raises :class:`SubmissionError` (with ``problems``) and writes nothing when the submission is refused.
    """
    from m3svd.evaluate import evaluate

    protocol = as_protocol(protocol)
    metadata = Metadata.coerce(metadata)
    unranked = None if protocol.ranking else (f"{protocol.path}: protocol {protocol.key} declares no [ranking] "
                                              f"(primary metrics or weighted groups), so its leaderboard could not "
                                              f"order methods; add one")
    refusals = [p for p in (name_problem(name), *metadata.problems(), unranked) if p]
    if refusals:
        raise SubmissionError(refusals[0], refusals)
    directory = Path(directory)
    inspection = inspect(directory, protocol, root, leaderboard_dir)
    if inspection.problems:
        problems = inspection.problems
        message = (f"{problems[0]} (nothing was submitted)" if len(problems) == 1
                   else f"{directory}: {len(problems)} problems (listed above); nothing was submitted")
        raise SubmissionError(message, problems)
    leaderboard_dir = Path(leaderboard_dir)
    staging = leaderboard_dir / STAGING / uuid.uuid4().hex
    try:
        staging.mkdir(parents=True)
        log(f"scoring {directory} on protocol {protocol.key} ({len(inspection.clips)} clip(s), "
            f"{inspection.frames} frames)")
        run = evaluate(protocol, staging / "run", predictions=directory, name=name, root=root)
        run_info = json.loads((staging / "run" / "run.json").read_text())
        if not run_info.get("complete"):
            raise SubmissionError(f"{directory}: the protocol's data is incomplete (missing clips "
                                  f"{', '.join(run_info.get('missing_clips', []))}); only complete runs may enter "
                                  f"the leaderboard")
        record = staging / "record"
        record.mkdir()
        for file in ("results.parquet", "summary.parquet", "run.json"):
            os.replace(staging / "run" / file, record / file)
        submitted_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        record_id = f"{submitted_at[:10]}-{slug(name)}-{inspection.fused_sha256[:12]}"
        manifest = _manifest(record_id, name, protocol, metadata, inspection, run.results, run_info, record,
                             submitted_at)
        _write_json(record / "manifest.json", manifest)
        target = submissions_dir(leaderboard_dir) / record_id
        with locked(leaderboard_dir):
            late = duplicate_problems(directory, inspection, leaderboard_dir)
            if late:
                raise SubmissionError(f"{late[0]} (nothing was submitted)", late)
            if target.exists():
                raise SubmissionError(f"{target}: a record with this id exists already")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(record, target)
            write_index(leaderboard_dir)
        log(f"recorded {target}")
        return Submission(record_id, target, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _manifest(record_id: str, name: str, protocol: Protocol, metadata: Metadata, inspection, results, run_info: dict,
              record: Path, submitted_at: str) -> dict:
    metrics = (results.drop_duplicates("metric").set_index("metric")[["convention", "metric_version", "kind",
                                                                       "higher_is_better"]])
    inputs = results.drop_duplicates("clip").set_index("clip")["input_sha256"].to_dict()
    clips = {clip: {**summary, "input_sha256": inputs.get(clip, "")} for clip, summary in inspection.clips.items()}
    return {
        "schema": RECORD_SCHEMA,
        "id": record_id,
        "name": name,
        "submitted_at": submitted_at,
        "evaluated_by": f"m3svd submit {__version__} (recomputed from fused frames)",
        "protocol": {"id": protocol.id, "version": protocol.version, "key": protocol.key, "sha256": protocol.sha256,
                     "ranking": protocol.ranking.to_dict()},
        "complete": bool(run_info.get("complete")),
        "dataset": {"layout": run_info.get("dataset_layout"), "lossy_inputs": bool(results["lossy"].any())},
        "metadata": metadata.to_dict(),
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
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as handle:
        handle.write(json.dumps(value, indent=2, sort_keys=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


