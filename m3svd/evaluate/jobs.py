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

    def build_for(self, protocol):
        """:meth:`build`, refusing a method that needs infrared on a protocol that gives visible frames only."""
        built = self.build()
        if "ir" in built.inputs and "ir" not in protocol.inputs:
            raise EvaluationError(f"method {self.name!r} needs infrared input; protocol {protocol.id} gives "
                                  f"visible frames only")
        return built


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
class Subset:
    """A quick look at part of a protocol: some of its clips and/or frames ``[start, stop)`` (clip frame numbers,
    inside the protocol's range; ``stop`` None: to the end of that range).

    Its results are partial: ``run.json`` says ``"partial": true`` (and ``"complete": false``, so no leaderboard
    admits them), and the subset is part of every clip's run key, so a later full run redoes those clips instead of
    skipping them.
    """

    clips: tuple[str, ...] | None = None
    frames: tuple[int, int | None] | None = None

    def to_dict(self) -> dict:
        return {"clips": list(self.clips) if self.clips else None,
                "frames": list(self.frames) if self.frames else None}


@dataclass(frozen=True)
class Job:
    """Everything one clip's evaluation needs, picklable (for ``--workers``): the fused-frame sources (methods or
    predictions folders) and one output folder for each."""

    protocol: Protocol
    dataset: str  # a dataset folder or "sample"
    clip: str
    outs: tuple[str, ...]
    sources: tuple[Source, ...]
    progress: bool | str = False  # True or "bar": a tqdm bar; "lines": plain lines (not a terminal)
    flow_cache: str | None = None  # source-flow cache folder; None: flows kept in memory only
    metrics_device: str | None = None  # torch device for the image metrics that have a torch path; None: numpy
    threads: int = 1  # frames whose numpy image metrics are scored at once (metrics.score)
    subset: Subset | None = None  # a partial run: some clips (already chosen) and/or a frame range


@dataclass
class Run:
    out: Path
    results: object  # pandas.DataFrame, long format
    summary: object  # pandas.DataFrame
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    partial: bool = False  # run on a Subset: never submitted, never ranked
