"""What goes to disk: the run key that decides whether a clip is redone, fused PNGs, and result rows with their
provenance, each file written whole (temp file, then rename)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from m3svd import __version__, files
from m3svd.data.clip import Clip
from m3svd.data.frames import list_images
from m3svd.evaluate.jobs import EvaluationError, Job, Predictions, Source

RESULTS_SCHEMA = 1


def run_key(job: Job, source: Source, clip: Clip, reference: Clip, identity: dict) -> str:
    """Changes whenever the clip's rows could: toolkit version, protocol bytes, method identity, input files, every
    metric's version (image, temporal, restoration)."""
    from m3svd import metrics
    from m3svd.evaluate.scoring import restoration_metrics

    names = job.protocol.image_metrics + job.protocol.temporal_metrics
    parts = {
        "toolkit": __version__,  # an upgrade recomputes: code outside the metrics (readers, fusion) may change rows
        "protocol": job.protocol.sha256,
        "method": identity,
        "inputs": [s.identity() for s in (clip.ir_source, clip.vi_source, reference.ir_source, reference.vi_source)],
        "metrics": [f"{m.id}#{m.version}" for m in (metrics.get(n, job.protocol.convention) for n in names)],
        "restoration": [m.id + "#" + m.version for m in restoration_metrics(job.protocol)],
        "schema": RESULTS_SCHEMA,
    }
    if job.subset is not None:  # a partial run never stands in for a full one, nor the reverse
        parts["subset"] = job.subset.to_dict()
    if isinstance(source, Predictions):
        folder = Path(source.folder) / clip.name
        parts["predictions"] = [f"{p.name} {st.st_size} {st.st_mtime_ns}" for p in list_images(folder)
                                for st in (p.stat(),)]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def write_png(path: Path, frame: np.ndarray) -> None:
    """A fused RGB frame as PNG, written whole; zlib level 1: fused frames are many and read back once."""
    files.write_png(path, frame, compression=1, error=EvaluationError)


ROW_COLUMNS = [
    "schema", "toolkit_version", "protocol", "protocol_version", "protocol_sha256", "dataset_layout", "clip",
    "variant", "lossy", "input_sha256", "frame", "metric", "convention", "metric_version", "kind", "higher_is_better",
    "value", "method", "method_version", "weights_sha256", "method_options", "source", "flow_estimator", "device",
    "fused_sha256", "run_key",
]


def provenance(job: Job, source: Source, clip: Clip, identity: dict, key: str, input_sha256: str,
                flow_id: str) -> dict:
    return {
        "schema": RESULTS_SCHEMA,
        "toolkit_version": __version__,
        "protocol": job.protocol.id,
        "protocol_version": job.protocol.version,
        "protocol_sha256": job.protocol.sha256,
        "dataset_layout": clip.layout,
        "clip": clip.name,
        "variant": clip.variant or "clean",
        "lossy": bool(clip.lossy),
        "input_sha256": input_sha256,
        "method": identity["method"],
        "method_version": identity["method_version"],
        "weights_sha256": identity["weights_sha256"] or "",
        "method_options": json.dumps(identity["options"], sort_keys=True, default=str),
        "source": "predictions" if isinstance(source, Predictions) else "method",
        "flow_estimator": flow_id if job.protocol.temporal_metrics else "",
        "device": "" if isinstance(source, Predictions) else source.device,
        "run_key": key,
    }
