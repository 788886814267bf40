"""Per-clip means and the mean over clips with a seeded bootstrap confidence interval; the terminal table."""

from __future__ import annotations

import numpy as np

OVERALL = "__all__"  # the clip value of the rows that average over clips (older summary files: "")
BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


def summarise(results) -> object:
    """Per-clip means, and per metric the mean of clip means with a bootstrap CI over clips (seeded)."""
    import pandas as pd

    defined = results.assign(value=results["value"].where(np.isfinite(results["value"])))
    per_clip = (defined.groupby(["metric", "clip"], sort=True)["value"]
                .agg(mean="mean", frames="size", defined="count").reset_index())
    per_clip["undefined"] = per_clip["frames"] - per_clip.pop("defined")
    rows = []
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    for metric, group in per_clip.groupby("metric", sort=True):
        means = group["mean"].to_numpy()
        finite = means[np.isfinite(means)]
        if len(finite) > 1:
            draws = rng.choice(finite, size=(BOOTSTRAP_SAMPLES, len(finite)), replace=True).mean(axis=1)
            low, high = np.quantile(draws, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
        else:
            low = high = float(finite[0]) if len(finite) else float("nan")
        rows.append({"metric": metric, "clip": OVERALL, "mean": float(finite.mean()) if len(finite) else float("nan"),
                     "ci_low": float(low), "ci_high": float(high), "frames": int(group["frames"].sum()),
                     "undefined": int(group["undefined"].sum()), "clips": len(group)})
    overall = pd.DataFrame(rows)
    per_clip = per_clip.assign(ci_low=np.nan, ci_high=np.nan, clips=1)
    summary = pd.concat([overall, per_clip[overall.columns]], ignore_index=True)
    meta = results.iloc[0]
    for column in ("protocol", "protocol_version", "protocol_sha256", "method", "method_version", "weights_sha256"):
        summary[column] = meta[column]
    directions = results.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    summary["higher_is_better"] = summary["metric"].map(directions)
    return summary


def read_summary(path):
    """A ``summary.parquet``, old ones included: their overall rows (clip ``""``) get the :data:`OVERALL` marker."""
    import pandas as pd

    summary = pd.read_parquet(path)
    summary["clip"] = summary["clip"].replace("", OVERALL)
    return summary


def format_summary(summary, metrics_order: list[str] | None = None) -> str:
    """A terminal table: one row per clip and the overall mean with its confidence interval."""
    overall = summary[summary["clip"] == OVERALL].set_index("metric")
    names = [m for m in (metrics_order or list(overall.index)) if m in overall.index]
    names += [m for m in overall.index if m not in names]
    clips = [c for c in dict.fromkeys(summary["clip"]) if c != OVERALL]
    # a metric undefined on every frame of a clip has a NaN mean there: keep its column (pivot_table drops
    # all-NaN columns) and print it as undefined
    table = summary[summary["clip"] != OVERALL].set_index(["clip", "metric"])["mean"].unstack("metric").reindex(
        index=clips, columns=names)
    width = max(10, *(len(n) + 2 for n in names))
    arrows = {m: "↑" if overall.loc[m, "higher_is_better"] else "↓" for m in names}

    def cell(value) -> str:
        return f"{value:>{width}.4f}" if np.isfinite(value) else f"{'undefined':>{width}}"

    lines = [f"{'clip':<12}" + "".join(f"{n + arrows[n]:>{width}}" for n in names)]
    for clip in clips:
        lines.append(f"{clip:<12}" + "".join(cell(table.loc[clip, n]) for n in names))
    lines.append(f"{'mean':<12}" + "".join(cell(overall.loc[n, 'mean']) for n in names))
    half = {n: (overall.loc[n, "ci_high"] - overall.loc[n, "ci_low"]) / 2 for n in names}
    lines.append(f"{'±95% CI/2':<12}" + "".join(cell(half[n]) for n in names))
    return "\n".join(lines)
