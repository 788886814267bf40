"""The run: protocol × methods (or predictions) → every clip through an executor → results, summary, run.json."""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

from m3svd import __version__
from m3svd.errors import M3SVDError
from m3svd.evaluate.executors import EXECUTORS, run_jobs, run_ray, threads_per_worker
from m3svd.evaluate.inputs import find_dataset, prediction_notes, protocol_clips
from m3svd.evaluate.jobs import EvaluationError, Job, MethodSpec, Predictions, Run, Source, Subset
from m3svd.evaluate.scoring import check_device
from m3svd.evaluate.summary import OVERALL, summarise
from m3svd.files import atomic_json, atomic_parquet, writable_folder
from m3svd.protocols import Protocol


def evaluate(
    protocol: Protocol,
    out: str | Path,
    *,
    method: MethodSpec | None = None,
    predictions: str | Path | None = None,
    name: str | None = None,
    **options,
) -> Run:
    """Evaluate a method (or saved predictions) on every clip of a protocol present under ``root``.

    ``options`` are :func:`evaluate_methods`'s: ``root``, ``workers``, ``executor``, ``ray_address``,
    ``flow_cache``, ``metrics_device``, ``progress``, ``log``, ``subset``. With ``predictions=DIR`` the fused
    frames are read from ``DIR/<clip>/*.png`` and the results carry ``name``.
    """
    if (method is None) == (predictions is None):
        raise EvaluationError("give a method or a predictions folder, not both or neither")
    source = method if predictions is None else Predictions(str(predictions), name or Path(predictions).name)
    return evaluate_methods(protocol, [(source, out)], **options)[0]


def evaluate_methods(
    protocol: Protocol,
    runs: list[tuple[Source, str | Path]],
    *,
    root: str | Path | None = None,
    workers: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    flow_cache: str | Path | bool | None = None,
    metrics_device: str | None = None,
    progress: bool | str = False,
    log: Callable[[str], None] = lambda line: None,
    subset: Subset | None = None,
) -> list[Run]:
    """Evaluate several methods (:class:`MethodSpec`) or folders of saved fused frames (:class:`Predictions`) in one
    pass over the protocol's clips, each into its own ``out`` folder.

    The results are those of separate :func:`evaluate` runs (same rows, run keys and files), but each chunk of
    source frames is decoded, and its source statistics and flows computed, once for all of them.

    ``executor="local"`` runs clips in this process (``workers=1``) or in ``workers`` processes; ``"ray"`` runs
    each clip as a Ray task on the cluster at ``ray_address`` (default: a local Ray instance with ``workers``
    CPUs). Every executor writes the same files; the ``out`` folders must be on storage the workers share. A local
    process scores a chunk's frames on its share of the cores (one thread per core with ``workers=1``); the
    values do not depend on it.

    ``flow_cache``: the folder where source-video flows are kept for temporal metrics (default: ``cache/flow``
    under the dataset root, shared by every method and run); ``False`` keeps them in memory only.

    ``metrics_device`` (e.g. ``"cuda"``): score the ``m3svd`` convention's image metrics that have a torch path
    (:mod:`m3svd.metrics.torch_backend`) on that device in float64 — the same values as numpy to 1e-9, so results
    do not depend on the device; the rest stay on numpy.

    ``progress``: True (or ``"bar"``) shows tqdm bars, ``"lines"`` plain lines with an ETA (for logs, where a bar
    is not seen). ``subset`` (:class:`Subset`): only some clips and/or frames, for a quick look; such runs are
    marked partial and never enter a leaderboard.
    """
    if not runs:
        raise EvaluationError("no method or predictions to evaluate")
    outs = [Path(out).resolve() for _, out in runs]
    if len(set(outs)) < len(outs):
        raise EvaluationError("each method or predictions folder needs its own output folder")
    for source, _ in runs:
        if isinstance(source, MethodSpec):
            check_device(source.device, "--device")
        _check_source(source, protocol)
    if executor not in EXECUTORS:
        raise EvaluationError(f"unknown executor {executor!r}; choose {', '.join(EXECUTORS)}")
    if metrics_device is not None:
        check_device(metrics_device)
    clipset = find_dataset(protocol, root)
    present, missing = protocol_clips(protocol, clipset)
    if subset is not None and subset.clips:
        present, missing = _subset_clips(protocol, clipset, subset.clips, present, missing)
    if not present:
        listed = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise EvaluationError(f"{clipset.root}: none of the clips of protocol {protocol.id} is there (it asks for "
                              f"{listed}; the dataset has {', '.join(clipset.names[:5]) or 'none'}"
                              f"{' …' if len(clipset.names) > 5 else ''})")
    if missing:
        log(f"{len(present)} of {len(present) + len(missing)} protocol clips present; the summary covers those "
            f"only (missing: {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''})")
    notes = [prediction_notes(source.folder, protocol, clipset, present) if isinstance(source, Predictions) else None
             for source, _ in runs]
    for found in notes:
        for line in found or ():
            log(f"{line}: scored, but not submittable")
    outs = [writable_folder(out, "the output folder (--out)") for _, out in runs]
    dataset = "sample" if clipset.layout == "sample" else str(clipset.root)
    if flow_cache is None and protocol.temporal_metrics:
        from m3svd.flow import default_cache_dir

        flow_cache = default_cache_dir()
        try:
            writable_folder(flow_cache, "the flow cache")
        except M3SVDError as error:  # the default place only: fall back to memory, say so
            log(f"{error}; source flows are kept in memory only")
            flow_cache = False
    elif flow_cache and protocol.temporal_metrics:
        writable_folder(flow_cache, "the flow cache (--flow-cache)")
    cache = str(flow_cache) if flow_cache and protocol.temporal_metrics else None
    sources = tuple(source for source, _ in runs)
    threads = 1 if executor == "ray" else threads_per_worker(workers)  # a Ray task holds one CPU
    jobs = [Job(protocol, dataset, clip, tuple(str(out) for out in outs), sources, progress if workers == 1 else False,
                cache, metrics_device, threads, subset) for clip in present]
    outcomes = run_ray(jobs, workers, ray_address) if executor == "ray" else run_jobs(jobs, workers, progress)
    return [_finish(protocol, out, [o[i] for o in outcomes], jobs, clipset, dataset, missing, metrics_device, log,
                    notes[i], subset) for i, out in enumerate(outs)]


def _subset_clips(protocol: Protocol, clipset, wanted: tuple[str, ...], present: list[str],
                  missing: list[str]) -> tuple[list[str], list[str]]:
    """``--clips``: the named protocol clips, in protocol order; a name the protocol lacks or the dataset misses
    fails here, before anything runs."""
    from m3svd.errors import did_you_mean

    for name in wanted:
        if name in missing:
            raise EvaluationError(f"--clips {name}: protocol {protocol.id} lists it but {clipset.root} lacks it")
        if name not in present:
            raise EvaluationError(f"--clips {name}: not a clip of protocol {protocol.id} (it has {len(present)}: "
                                  f"{', '.join(present[:5])}{' …' if len(present) > 5 else ''})"
                                  + did_you_mean(name, present))
    return [name for name in present if name in wanted], []


def fuse(protocol: Protocol, spec: MethodSpec, out: str | Path, *, root: str | Path | None = None,
         progress: bool = False) -> Path:
    """Fuse every clip of the protocol with one method into ``out/<clip>/<frame>.png``, scoring nothing: a
    predictions folder, as ``evaluate --predictions`` and ``submit`` read it. Returns ``out``."""
    from m3svd.evaluate.clips import fused_windows
    from m3svd.evaluate.inputs import frame_range
    from m3svd.progress import progress_bar

    method = _check_source(spec, protocol)
    clipset = find_dataset(protocol, root)
    present, missing = protocol_clips(protocol, clipset)
    if missing:
        raise EvaluationError(f"{clipset.root}: protocol {protocol.key} needs clip {missing[0]}, which this dataset "
                              f"lacks")
    out = Path(out)
    bar = progress_bar(progress, len(present), f"{spec.name} fusing", unit="clip")
    for name in present:
        clip = clipset.clip(name, protocol.split, protocol.variant)
        start, stop = frame_range(protocol, clip)
        for _ in fused_windows(method, clip, start, stop, protocol.inputs, out / name):
            pass
        bar.update(1)
    bar.close()
    return out


def _check_source(source: Source, protocol: Protocol):
    """Fail fast, before any clip runs: a missing predictions folder; an unknown method, bad options, missing
    weights, or a method needing infrared on a visible-only protocol. Returns the built method (None for
    predictions)."""
    if isinstance(source, Predictions):
        if not Path(source.folder).is_dir():
            raise EvaluationError(f"{source.folder}: no such predictions folder")
        return None
    return source.build_for(protocol)


def _finish(protocol, out: Path, outcomes: list[str], jobs: list[Job], clipset, dataset: str, missing: list[str],
            metrics_device: str | None, log, not_submittable: list[str] | None = None,
            subset: Subset | None = None) -> Run:
    """One output's results, summary and run.json from its clip files."""
    import pandas as pd

    present = [job.clip for job in jobs]
    skipped = [clip for clip, outcome in zip(present, outcomes, strict=True) if outcome == "skipped"]
    for clip in skipped:
        log(f"{clip}: results for these inputs, method and weights exist already in {out}; skipped")
    for clip, outcome in zip(present, outcomes, strict=True):
        if outcome.startswith("redone: "):
            log(f"{out / 'clips' / clip}.parquet: {outcome.removeprefix('redone: ')}; recomputed")
    results = pd.concat([pd.read_parquet(out / "clips" / f"{clip}.parquet") for clip in present], ignore_index=True)
    summary = summarise(results)
    for row in summary[(summary["clip"] == OVERALL) & (summary["undefined"] > 0)].itertuples():
        log(f"{row.metric}: undefined on {row.undefined} of {row.frames} frames (e.g. constant or identical images); "
            f"stored as non-finite values and left out of the means")
    atomic_parquet(out / "results.parquet", results)
    atomic_parquet(out / "summary.parquet", summary)
    run_info = {
        "toolkit_version": __version__, "protocol": protocol.key, "protocol_sha256": protocol.sha256,
        "dataset": dataset, "dataset_layout": clipset.layout, "clips": present, "missing_clips": missing,
        "complete": not missing and subset is None, "partial": subset is not None,
        "subset": subset.to_dict() if subset is not None else None,
        "method": results.iloc[0]["method"], "source": results.iloc[0]["source"],
        "python": platform.python_version(), "platform": platform.platform(), "metrics_device": metrics_device,
    }
    if not_submittable is not None:  # predictions: what keeps these rows off the leaderboard, as far as seen here
        run_info["submittable"] = not not_submittable and not missing
        run_info["not_submittable"] = not_submittable
    atomic_json(out / "run.json", run_info)
    return Run(out, results, summary, skipped, missing, partial=subset is not None)
