"""Method × protocol → fused frames → per-frame metrics → results.

One run writes, under ``out/``:

- ``fused/<clip>/<frame>.png`` — the method's fused frames, lossless, each written once (temp file, then rename);
- ``clips/<clip>.parquet`` — that clip's long-format rows (one per frame × metric), written after its frames, so
  a clip with a results file is complete; a rerun with the same run key (protocol hash, method identity and
  weights, input files, metric versions) skips it;
- ``results.parquet`` — every clip's rows; ``summary.parquet`` — per-clip means and the overall mean of clip means
  with a bootstrap confidence interval over clips; ``run.json`` — provenance of the run.

With ``predictions=DIR`` the fused frames are read from ``DIR/<clip>/*.png`` instead of produced by a method.
:func:`evaluate_methods` runs several methods or predictions folders in one pass, each into its own ``out/``, sharing
every chunk's source statistics and flows.

The parts: :mod:`~m3svd.evaluate.jobs` (what to run), :mod:`~m3svd.evaluate.inputs` (dataset, clips,
predictions), :mod:`~m3svd.evaluate.clips` (one clip, every method in lockstep), :mod:`~m3svd.evaluate.scoring`
(image, restoration and temporal metrics), :mod:`~m3svd.evaluate.store` (run keys, PNGs, rows with provenance),
:mod:`~m3svd.evaluate.summary` (means and bootstrap intervals), :mod:`~m3svd.evaluate.executors` (processes, Ray)
and :mod:`~m3svd.evaluate.runner` (the whole run).
"""

from m3svd.evaluate.clips import evaluate_clip
from m3svd.evaluate.inputs import find_dataset, protocol_clips
from m3svd.evaluate.jobs import EvaluationError, Job, MethodSpec, Predictions, Run, Subset
from m3svd.evaluate.runner import evaluate, evaluate_methods, fuse
from m3svd.evaluate.store import RESULTS_SCHEMA, ROW_COLUMNS
from m3svd.evaluate.summary import OVERALL, format_summary, read_summary, summarise

__all__ = [
    "OVERALL", "RESULTS_SCHEMA", "ROW_COLUMNS", "EvaluationError", "Job", "MethodSpec", "Predictions", "Run", "Subset",
    "evaluate", "evaluate_clip", "evaluate_methods", "fuse", "find_dataset", "format_summary", "protocol_clips",
    "read_summary", "summarise",
]
