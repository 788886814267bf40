"""What a submission record and the leaderboard table hold, and the errors around them.

A record is ``<leaderboard>/submissions/<id>/`` with ``results.parquet`` (the rows `m3svd evaluate` recomputed),
``summary.parquet``, ``run.json`` and ``manifest.json``. The manifest's field names are fixed here, so the submit and
build sides cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from m3svd.errors import M3SVDError
from m3svd.evaluate.summary import OVERALL  # noqa: F401 - the clip value of rows that average over clips

RECORD_SCHEMA = 1
SUBMISSIONS = "submissions"
STAGING = ".staging"  # half-made records live here until they are renamed into submissions/
LOCK = ".lock"
INDEX = "index.json"
TABLE = "leaderboard.parquet"
REPORTED = "reported.csv"
RECORD_FILES = ("results.parquet", "summary.parquet", "run.json", "manifest.json")
# leaderboard.parquet, long format: one row per protocol × submission × clip (or OVERALL) × metric.
# rank: 1 = best on that metric (an undefined value ranks last); group, weight: the metric's ranking group and share
# of the score (""/0 when the protocol's [ranking] leaves it out); group_score: the submission's mean rank over that
# group; score: the weighted mean rank over the ranking metrics (lower is better); position: the order by score.
# undefined: frames on which the metric was undefined. score, group_score and position are on OVERALL rows only.
# reference: a reference row (a source or a trivial baseline, `m3svd submit --reference`); it has no rank, score or
# position and shifts no entry's.
# origin: where the fused frames come from (repository@commit path, or the toolkit command that made them).
TABLE_COLUMNS = [
    "protocol", "protocol_id", "protocol_version", "protocol_sha256", "submission", "method", "label", "reference",
    "clip", "metric", "convention", "metric_version", "kind", "higher_is_better", "value", "ci_low", "ci_high",
    "frames", "undefined", "clips", "rank", "group", "weight", "group_score", "score", "position", "toolkit_version",
    "method_version", "weights_sha256", "training_data", "trained_on_m3svd_train", "paper", "code", "origin",
    "submitted_at", "evaluated_by", "results_sha256", "fused_sha256",
]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._+()-]{0,63}$")


class LeaderboardError(M3SVDError, ValueError):
    """A leaderboard folder, record or table request the toolkit cannot use; one line naming the file."""


class SubmissionError(LeaderboardError):
    """A submission that was refused; ``problems`` holds every reason, one line each, naming the file."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class MixError(LeaderboardError):
    """Records that cannot share one ranking: different protocol bytes, metric conventions or metric versions."""


@dataclass(frozen=True)
class Metadata:
    """What the submitter states about the method; shown with the numbers, never used to compute them."""

    method: str | None = None  # the method's own name, if the display name differs (e.g. "VideoFusion")
    paper: str | None = None
    code: str | None = None
    weights_sha256: str | None = None
    training_data: str | None = None
    trained_on_m3svd_train: bool | None = None

    @classmethod
    def coerce(cls, value: Metadata | dict | None) -> Metadata:
        if value is None:
            return cls()
        if isinstance(value, Metadata):
            return value
        unknown = sorted(set(value) - set(cls.__dataclass_fields__))
        if unknown:
            raise SubmissionError(f"unknown metadata field {unknown[0]!r}; expected "
                                  f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**value)

    def problems(self) -> list[str]:
        out = []
        for field in ("paper", "code"):
            url = getattr(self, field)
            if url and not re.match(r"^https?://\S+$", url):
                out.append(f"metadata {field}: expected an http(s) URL, found {url!r}")
        if self.weights_sha256 and not _SHA256.match(self.weights_sha256):
            out.append(f"metadata weights_sha256: expected 64 lower-case hex digits, found {self.weights_sha256!r}")
        if self.trained_on_m3svd_train not in (None, True, False):
            out.append(f"metadata trained_on_m3svd_train: expected true or false, found "
                       f"{self.trained_on_m3svd_train!r}")
        return out

    def to_dict(self) -> dict:
        return asdict(self)


def name_problem(name: str) -> str | None:
    """Names become table cells and parts of record ids: keep them short and printable."""
    if not isinstance(name, str) or not _NAME.match(name):
        return (f"submission name {name!r}: expected 1-64 characters, letters, digits, space and ._+()- , starting "
                f"with a letter or digit")
    return None


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "submission"


def submissions_dir(leaderboard_dir: str | Path) -> Path:
    return Path(leaderboard_dir) / SUBMISSIONS


def record_dirs(leaderboard_dir: str | Path) -> list[Path]:
    """Every finished record (staging folders and stray files are not records)."""
    folder = submissions_dir(leaderboard_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_manifest(record: Path) -> dict:
    import json

    path = record / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise LeaderboardError(f"{path}: missing; a record needs {', '.join(RECORD_FILES)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LeaderboardError(f"{path}: not valid JSON ({error})") from None
    if manifest.get("schema") != RECORD_SCHEMA:
        raise LeaderboardError(f"{path}: record schema {manifest.get('schema')!r}; this toolkit reads "
                               f"{RECORD_SCHEMA}")
    return manifest
