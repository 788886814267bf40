"""Benchmark protocols as versioned data: which clips, frames, inputs, references and metrics.

Each ``*.toml`` file in this folder is one protocol; ``load("m3svd-clean")`` reads it (or a path to a user's own
file). The sha256 of the file's bytes is the protocol's hash and goes into every result row, so two results are
comparable exactly when their protocol id and hash agree.

A protocol's ``[ranking]`` says what orders the leaderboard (``m3svd.leaderboard.build``): either
``primary = ["vif", "qabf"]`` (their ranks averaged with equal weight), or named groups of metrics with stated
weights, ``[ranking.groups] information = {metrics = ["mi", "vif"], weight = 1}`` (ranks averaged within a group,
groups averaged by weight, so correlated metrics put in one group count once). Every other metric is still shown
with its own rank; it does not move the order. The ranking is part of the file, hence of its hash.
"""

from __future__ import annotations

import builtins
import hashlib
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from m3svd.errors import M3SVDError, did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SCHEMA_KEYS = {"id", "version", "description", "data", "metrics", "ranking"}
DATA_KEYS = {"layouts", "folders", "split", "clips", "frames", "variant", "inputs", "references"}
METRIC_KEYS = {"convention", "image", "temporal", "restoration", "flow"}
RANKING_KEYS = {"primary", "groups"}
GROUP_KEYS = {"metrics", "weight"}


class ProtocolError(M3SVDError, ValueError):
    """A protocol file is missing, malformed or names something that does not exist."""


@dataclass(frozen=True)
class RankingGroup:
    name: str
    metrics: tuple[str, ...]
    weight: float


@dataclass(frozen=True)
class Ranking:
    """What orders a leaderboard: metric groups, each the mean of its metrics' ranks, averaged by weight."""

    groups: tuple[RankingGroup, ...]

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(m for g in self.groups for m in g.metrics)

    def weights(self) -> dict[str, float]:
        """Each ranking metric's share of the aggregate (they sum to 1): its group's weight split evenly."""
        total = sum(g.weight for g in self.groups)
        return {m: g.weight / total / len(g.metrics) for g in self.groups for m in g.metrics}

    def group_of(self) -> dict[str, str]:
        return {m: g.name for g in self.groups for m in g.metrics}

    def to_dict(self) -> dict:
        """The form a leaderboard record stores (JSON), read back by :meth:`from_dict`."""
        return {"groups": [{"name": g.name, "metrics": builtins.list(g.metrics), "weight": g.weight}
                           for g in self.groups]}

    @classmethod
    def from_dict(cls, value: dict) -> Ranking:
        return cls(tuple(RankingGroup(str(g["name"]), tuple(g["metrics"]), float(g["weight"]))
                         for g in value["groups"]))


@dataclass(frozen=True)
class Protocol:
    id: str
    version: str
    description: str
    layouts: tuple[str, ...]
    folders: tuple[str, ...]  # dataset folders looked for under the root, in order
    split: str | None
    clips: str | tuple[str, ...]  # "all", "official-test", or clip names
    frames: tuple[int, int | None]  # [start, stop) of every clip; stop None = to the end
    variant: str  # which variant is fed to the method
    inputs: tuple[str, ...]  # ("ir", "vi") or ("vi",)
    references: str  # the variant the metrics compare against
    convention: str
    image_metrics: tuple[str, ...]
    temporal_metrics: tuple[str, ...]
    restoration_metrics: tuple[str, ...]
    flow: str
    sha256: str
    path: str
    ranking: Ranking | None = None  # None: the file declares none (fine for `evaluate`; `submit` refuses it)

    @property
    def key(self) -> str:
        return f"{self.id}@{self.version}"

    def clip_names(self, available: builtins.list[str]) -> builtins.list[str]:
        """The clips this protocol asks for (in protocol order); ``available`` resolves ``"all"``."""
        if self.clips == "all":
            return builtins.list(available)
        if self.clips == "official-test":
            from m3svd.data.splits import TEST_CLIPS

            return builtins.list(TEST_CLIPS)
        return builtins.list(self.clips)


def _bundled() -> dict[str, Path]:
    folder = resources.files(__name__)
    return {p.name[:-5]: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def list() -> builtins.list[Protocol]:  # noqa: A001 - the registry's verb
    return [load(name) for name in sorted(_bundled())]


def load(name_or_path: str | Path) -> Protocol:
    """A bundled protocol by id, or a ``.toml`` file of the same schema."""
    bundled = _bundled()
    text = str(name_or_path)
    if text in bundled:
        path = bundled[text]
    elif text.endswith(".toml"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise ProtocolError(f"{path}: no such protocol file")
    else:
        raise ProtocolError(f"no protocol {text!r}" + did_you_mean(text, bundled) + "; see `m3svd ls protocols`")
    raw = path.read_bytes()
    try:
        doc = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ProtocolError(f"{path}: not valid TOML ({error})") from None
    return _parse(doc, path, hashlib.sha256(raw).hexdigest())


def _parse(doc: dict, path: Path, sha256: str) -> Protocol:
    def need(table: dict, keys: set, where: str, optional=frozenset()):
        missing = sorted(keys - set(table) - optional)
        unknown = sorted(set(table) - keys)
        if missing or unknown:
            what = f"missing {missing[0]!r}" if missing else f"unknown key {unknown[0]!r}"
            raise ProtocolError(f"{path}: {where}: {what}; expected keys {', '.join(sorted(keys))}")

    need(doc, SCHEMA_KEYS, "top level", optional={"ranking"})
    _check_types(doc, path)
    data, metrics = doc["data"], doc["metrics"]
    need(data, DATA_KEYS, "[data]", optional={"split"})
    need(metrics, METRIC_KEYS, "[metrics]", optional={"temporal", "restoration"})
    _check_types(data, path, "data")
    _check_types(metrics, path, "metrics")
    frames = data["frames"]
    if frames == "all":
        frames = (0, None)
    elif isinstance(frames, builtins.list) and len(frames) == 2 and all(isinstance(x, int) for x in frames):
        frames = (frames[0], frames[1])
    else:
        raise ProtocolError(f"{path}: [data] frames must be \"all\" or [start, stop], found {frames!r}")
    inputs = tuple(data["inputs"])
    if inputs not in (("ir", "vi"), ("vi",)):
        raise ProtocolError(f"{path}: [data] inputs must be [\"ir\", \"vi\"] or [\"vi\"], found {data['inputs']!r}")
    clips = data["clips"] if isinstance(data["clips"], str) else tuple(data["clips"])
    if isinstance(clips, str) and clips not in ("all", "official-test"):
        raise ProtocolError(f"{path}: [data] clips must be \"all\", \"official-test\" or a list, found {clips!r}")
    protocol = Protocol(
        id=str(doc["id"]), version=str(doc["version"]), description=str(doc["description"]),
        layouts=tuple(data["layouts"]), folders=tuple(data["folders"]), split=data.get("split"), clips=clips,
        frames=frames, variant=data["variant"], inputs=inputs, references=data["references"],
        convention=metrics["convention"], image_metrics=tuple(metrics["image"]),
        temporal_metrics=tuple(metrics.get("temporal", ())), restoration_metrics=tuple(metrics.get("restoration", ())),
        flow=metrics["flow"], sha256=sha256, path=str(path),
    )
    _check_metrics(protocol, path)
    if "ranking" in doc:
        from dataclasses import replace

        protocol = replace(protocol, ranking=_ranking(doc["ranking"], protocol, path))
    return protocol


# The TOML type of every key (checked before any value is used: `clips = 5` or `layouts = "m3svd"` is one line
# naming the key, not a TypeError or a protocol that silently iterates a string's letters). frames, inputs and
# clips' allowed values are checked where they are read.
_STR, _STRS, _NUM = "a string", "a list of strings", "a number or string"
TYPES = {
    "": {"id": _STR, "version": _NUM, "description": _STR, "data": "a table", "metrics": "a table",
         "ranking": "a table"},
    "data": {"layouts": _STRS, "folders": _STRS, "split": _STR, "clips": "a string or a list of strings",
             "frames": "\"all\" or [start, stop]", "variant": _STR, "inputs": _STRS, "references": _STR},
    "metrics": {"convention": _STR, "image": _STRS, "temporal": _STRS, "restoration": _STRS, "flow": _STR},
}


def _check_types(table: dict, path: Path, section: str = "") -> None:
    def fits(value, expected: str) -> bool:
        if expected == _STR:
            return isinstance(value, str)
        if expected == _STRS:
            return isinstance(value, builtins.list) and all(isinstance(v, str) for v in value)
        if expected == _NUM:
            return isinstance(value, str | int | float) and not isinstance(value, bool)
        if expected == "a table":
            return isinstance(value, dict)
        if expected.startswith("a string or"):
            return isinstance(value, str) or fits(value, _STRS)
        return True  # frames: checked with its values

    for key, expected in TYPES[section].items():
        if key in table and not fits(table[key], expected):
            where = f"[{section}] {key}" if section else key
            raise ProtocolError(f"{path}: {where} must be {expected}, found {table[key]!r} "
                                f"({type(table[key]).__name__})")


def _ranking(table, protocol: Protocol, path: Path) -> Ranking:
    """``[ranking]`` as :class:`Ranking`; every fault one line naming the key, what was expected and found."""
    where = f"{path}: [ranking]"
    if not isinstance(table, dict):
        raise ProtocolError(f"{where} must be a table, found {table!r}")
    unknown = sorted(set(table) - RANKING_KEYS)
    if unknown:
        raise ProtocolError(f"{where}: unknown key {unknown[0]!r}; expected primary (a list of metrics) or groups")
    if len(set(table) & RANKING_KEYS) != 1:
        raise ProtocolError(f"{where}: expected exactly one of primary (a list of metrics) or groups (named groups "
                            f"with weights), found {', '.join(sorted(table)) or 'neither'}")
    if "primary" in table:
        raw = {"primary": {"metrics": table["primary"], "weight": 1}}
        label = {"primary": f"{where} primary"}
    else:
        raw = table["groups"]
        if not isinstance(raw, dict) or not raw:
            raise ProtocolError(f"{where} groups: expected named groups, e.g. information = {{metrics = [\"mi\", "
                                f"\"vif\"], weight = 1}}, found {raw!r}")
        label = {name: f"{where} group {name!r}" for name in raw}
    rankable = set(protocol.image_metrics) | set(protocol.temporal_metrics)
    seen: dict[str, str] = {}
    groups = []
    for name, group in raw.items():
        at = label[name]
        if not isinstance(group, dict):
            raise ProtocolError(f"{at}: expected {{metrics = [...], weight = W}}, found {group!r}")
        missing, extra = sorted(GROUP_KEYS - set(group)), sorted(set(group) - GROUP_KEYS)
        if missing or extra:
            what = f"missing {missing[0]!r}" if missing else f"unknown key {extra[0]!r}"
            raise ProtocolError(f"{at}: {what}; expected keys metrics, weight")
        metrics, weight = group["metrics"], group["weight"]
        if not isinstance(metrics, builtins.list) or not metrics or not all(isinstance(m, str) for m in metrics):
            raise ProtocolError(f"{at}: expected a non-empty list of metric names, found {metrics!r}")
        for metric in metrics:
            if metric not in rankable:
                raise ProtocolError(f"{at} names {metric!r}, which is not one of this protocol's image or temporal "
                                    f"metrics ({', '.join(protocol.image_metrics + protocol.temporal_metrics)})"
                                    + did_you_mean(metric, rankable))
            if metric in seen:
                raise ProtocolError(f"{at} names {metric!r}, already in {seen[metric]}; a metric counts once")
            seen[metric] = at.removeprefix(f"{where} ")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
            raise ProtocolError(f"{at}: weight must be a positive number, found {weight!r}")
        groups.append(RankingGroup(str(name), tuple(metrics), float(weight)))
    return Ranking(tuple(groups))


def _check_metrics(protocol: Protocol, path: Path) -> None:
    """Every metric a protocol names must exist in its convention: fail at load, not after hours of fusion."""
    from m3svd import metrics
    from m3svd.metrics.temporal import FROZEN_REWARDED

    for field, kind in (("image", protocol.image_metrics), ("temporal", protocol.temporal_metrics)):
        for name in kind:
            try:
                metric = metrics.get(name, protocol.convention)
            except M3SVDError as error:
                raise ProtocolError(f"{path}: {error}") from None
            if metric.kind != field and (field, metric.kind) != ("image", "no-reference"):
                raise ProtocolError(f"{path}: [metrics] {field} lists {name!r}, "
                                    f"{'an' if metric.kind[0] in 'aeiou' else 'a'} {metric.kind} metric")
    if protocol.temporal_metrics and not protocol.flow.lower().startswith("raft"):
        from m3svd import flow

        try:
            flow.estimator(protocol.flow)  # DIS and Farneback are cheap to build; RAFT's name is checked below
        except M3SVDError as error:
            raise ProtocolError(f"{path}: [metrics] flow: {error}") from None
    elif protocol.temporal_metrics and protocol.flow.lower() not in ("raft", "raft-large", "raft-small"):
        raise ProtocolError(f"{path}: [metrics] flow {protocol.flow!r} unknown; choose dis, dis-fast, dis-ultrafast, "
                            f"farneback, raft-large, raft-small")
    rewarded = [name for name in protocol.temporal_metrics if name in FROZEN_REWARDED]
    if rewarded and not {"tgf", "feacd"} & set(protocol.temporal_metrics):
        raise ProtocolError(f"{path}: a frozen (static) output wins {', '.join(rewarded)}; a protocol naming them "
                            "must also name tgf or feacd, which penalise it (metrics/CONVENTIONS.md)")
    from m3svd.metrics.conventions.restoration import CONVENTION as RESTORATION

    offered = sorted(m.name for m in metrics.list(RESTORATION))
    unknown = sorted(set(protocol.restoration_metrics) - set(offered))
    if unknown:
        raise ProtocolError(f"{path}: restoration metric {unknown[0]!r} unknown; choose {', '.join(offered)}")
