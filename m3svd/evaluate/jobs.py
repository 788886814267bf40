"""What an evaluation runs: methods to rebuild in each worker or folders of saved predictions, one clip's job, and a
finished run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from m3svd.errors import M3SVDError
from m3svd.protocols import Protocol


class EvaluationError(M3SVDError, ValueError):
    """An evaluation cannot start or continue: no data, a method that does not fit the protocol, bad predictions."""


@dataclass(frozen=True)
class MethodSpec:
    """How to rebuild the method in a worker process (methods hold weights; they are not sent, they are rebuilt)."""

    name: str
    device: str = "cpu"
    weights: str | None = None
    options: tuple[tuple[str, object], ...] = ()

    def build(self):
        from m3svd import methods

        return methods.create(self.name, device=self.device, weights=self.weights, **dict(self.options))


@dataclass(frozen=True)
class Predictions:
    """Fused frames made elsewhere, read from ``folder/<clip>/*.png``; the results carry ``name``."""

    folder: str
    name: str

    def identity(self) -> dict:
        return {"method": self.name, "method_version": "predictions", "weights": None, "weights_sha256": None,
                "options": {}}


Source = MethodSpec | Predictions


@dataclass(frozen=True)
class Job:
    """Everything one clip's evaluation needs, picklable (for ``--workers``): the fused-frame sources (methods or
    predictions folders) and one output folder for each."""

    protocol: Protocol
    dataset: str  # a dataset folder or "sample"
    clip: str
    outs: tuple[str, ...]
    sources: tuple[Source, ...]
    progress: bool = False
    flow_cache: str | None = None  # source-flow cache folder; None: flows kept in memory only
    metrics_device: str | None = None  # torch device for the image metrics that have a torch path; None: numpy
    threads: int = 1  # frames whose numpy image metrics are scored at once (metrics.score)


@dataclass
class Run:
    out: Path
    results: object  # pandas.DataFrame, long format
    summary: object  # pandas.DataFrame
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
