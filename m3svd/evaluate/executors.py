"""Where clips run: in this process, in a pool of local processes, or as Ray tasks; all write the same files."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from m3svd.evaluate.clips import evaluate_clip
from m3svd.evaluate.jobs import EvaluationError, Job
from m3svd.progress import progress_bar


def threads_per_worker(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def run_jobs(jobs: list[Job], workers: int, progress: bool | str) -> list[str]:
    if workers <= 1 or len(jobs) == 1:
        if progress != "lines":  # a terminal shows each clip's own bar
            return [evaluate_clip(job) for job in jobs]
        return _counted(map(evaluate_clip, jobs), len(jobs), progress)
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=get_context("spawn"),
                             initializer=_limit_threads, initargs=(threads_per_worker(workers),)) as pool:
        futures = [pool.submit(evaluate_clip, job) for job in jobs]
        return _counted((future.result() for future in futures), len(jobs), progress)


def _counted(outcomes, n: int, progress: bool | str) -> list[str]:
    """The clips' outcomes in order, counted on a progress bar (or lines) as each arrives."""
    bar = progress_bar(progress, n, "evaluate", unit="clip")
    done = []
    for outcome in outcomes:
        done.append(outcome)
        bar.update(1)
    bar.close()
    return done


EXECUTORS = ("local", "ray")


def run_ray(jobs: list[Job], workers: int, address: str | None) -> list[str]:
    """One Ray task per clip (one CPU each); a local instance is started, and stopped, when none is running."""
    try:
        import ray
    except ImportError:
        raise EvaluationError("--executor ray needs Ray: pip install 'm3svd[distributed]'") from None
    started = not ray.is_initialized()
    if started:
        kwargs = {"address": address} if address else {"num_cpus": workers, "object_store_memory": 100 * 2**20}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False, **kwargs)
    try:
        task = ray.remote(num_cpus=1)(evaluate_clip)
        return ray.get([task.remote(job) for job in jobs])
    finally:
        if started:
            ray.shutdown()


def _limit_threads(threads: int) -> None:
    """Workers share the cores: without this each would start one thread per core in torch and OpenCV. They also
    keep freed memory, as the CLI process does (:func:`m3svd.memory.keep_freed_memory`)."""
    import cv2
    import torch

    from m3svd.memory import keep_freed_memory

    keep_freed_memory()

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
