"""The site's figures (matplotlib, Agg, small PNGs): rank stability, per-frame curves, a qualitative strip.

Each function draws one figure from data it is handed and writes it to ``path``; what goes in (the table, the
records' per-frame rows, the frames) is gathered by ``site.py``. Nothing here changes a ranking: the rank-stability
plot resamples clips with the same rule ``build.py`` ranks by, to show how much of the order the clips decide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from m3svd.leaderboard.schema import OVERALL

DRAWS = 1000  # bootstrap resamples of the clips
SEED = 0
TILE_WIDTH = 120  # px of one frame in the qualitative strip
TILES_PER_ROW = 8
DPI = 80


def short(label: str, width: int = 24) -> str:
    """A method's name as a figure shows it (the page's tables carry the full name)."""
    return label if len(label) <= width else label[:width - 1] + "…"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, palette: bool = False) -> None:
    """PNG at ``DPI``; ``palette`` stores 256 adaptive colours (a strip of photographs: about a third of the bytes)."""
    import io

    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png")
    _pyplot().close(fig)
    image = Image.open(buffer).convert("RGB")
    if palette:
        image = image.quantize(256, method=Image.Quantize.MEDIANCUT)
    image.save(path, optimize=True)


# -- rank stability ------------------------------------------------------------------------------------------------
def bootstrap_positions(table, key: str, draws: int = DRAWS, seed: int = SEED, resamples=None) -> tuple:
    """How often each entry lands at each position when the protocol's clips are drawn with replacement.

    Each draw re-ranks as ``build.py`` does: per ranking metric, the mean over the drawn clips; rank 1 = best, ties
    share the better rank, a value undefined on any drawn clip ranks last; score = weighted mean rank; position =
    1 + the number of entries with a lower score. Returns ``(submissions, labels, counts)`` with ``counts[i, p]`` the
    number of draws that put entry ``i`` at position ``p + 1``. ``resamples`` (draws × clips indices) replaces the
    random draws (a test passes the identity to get the table's own order back).
    """
    rows = table[(table["protocol"] == key) & ~table["reference"].astype(bool)]
    overall = rows[rows["clip"] == OVERALL]
    order = overall.drop_duplicates("submission").sort_values(["score", "label"], kind="stable")
    submissions, labels = list(order["submission"]), list(order["label"])
    ranking = overall[overall["weight"] > 0].drop_duplicates("metric")
    metrics, weights = list(ranking["metric"]), ranking["weight"].to_numpy(float)
    higher = ranking["higher_is_better"].to_numpy(bool)
    per_clip = rows[(rows["clip"] != OVERALL) & rows["metric"].isin(metrics)]
    clips = list(dict.fromkeys(per_clip["clip"]))
    n, c = len(submissions), len(clips)
    if not (n and c and metrics):
        return submissions, labels, np.zeros((n, n), int)
    index = {(s, k, m): i for i, (s, k, m) in enumerate(zip(per_clip["submission"], per_clip["clip"],
                                                               per_clip["metric"], strict=True))}
    values = np.full((n, c, len(metrics)), np.nan)
    for si, s in enumerate(submissions):
        for ci, k in enumerate(clips):
            for mi, m in enumerate(metrics):
                row = index.get((s, k, m))
                if row is not None:
                    values[si, ci, mi] = per_clip["value"].iloc[row]
                    if per_clip["undefined"].iloc[row] > 0:
                        values[si, ci, mi] = np.nan
    if resamples is None:
        resamples = np.random.default_rng(seed).integers(0, c, size=(draws, c))
    resamples = np.asarray(resamples)
    counts_per_clip = np.stack([np.bincount(r, minlength=c) for r in resamples]).astype(float)  # draws × clips
    undefined = ~np.isfinite(values)
    means = np.einsum("dc,scm->dsm", counts_per_clip, np.where(undefined, 0.0, values)) / resamples.shape[1]
    bad = np.einsum("dc,scm->dsm", counts_per_clip, undefined.astype(float)) > 0
    signed = np.where(higher, means, -means)  # larger is better on every metric now
    better = (signed[:, None, :, :] > signed[:, :, None, :]) & ~bad[:, None, :, :]  # d × s × other × m
    ranks = np.where(bad, float(n), 1.0 + better.sum(axis=2))
    score = (ranks * weights).sum(axis=2) / weights.sum()
    positions = 1 + (score[:, None, :] < score[:, :, None] - 1e-12).sum(axis=2)  # d × s
    counts = np.zeros((n, n), int)
    for si in range(n):
        counts[si] = np.bincount(positions[:, si] - 1, minlength=n)[:n]
    return submissions, labels, counts


def rank_stability(table, key: str, path: Path, draws: int = DRAWS, seed: int = SEED) -> bool:
    """A methods × positions heat map of the bootstrap; False (nothing written) with fewer than two entries."""
    _, labels, counts = bootstrap_positions(table, key, draws, seed)
    n = len(labels)
    if n < 2 or counts.sum() == 0:
        return False
    plt = _pyplot()
    share = counts / counts.sum(axis=1, keepdims=True)
    fig, ax = plt.subplots(figsize=(max(4.5, 2.6 + 0.32 * n), max(2.2, 1.1 + 0.28 * n)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(n), [str(p) for p in range(1, n + 1)], fontsize=8)
    ax.set_yticks(range(n), [short(label) for label in labels], fontsize=8)
    ax.set_xlabel(f"position (bootstrap over clips, {draws} draws)", fontsize=8)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                if share[i, j] >= 0.005:
                    ax.text(j, i, f"{share[i, j]:.0%}", ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.6 else "black")
    fig.tight_layout()
    _save(fig, path)
    return True


# -- per-frame curves ----------------------------------------------------------------------------------------------
def frame_curves(frames, series: list[tuple[str, str, bool]], metric: str, higher_is_better: bool,
                 path: Path, columns: int = 4) -> bool:
    """One panel per clip, one line per method: ``metric`` against the frame index.

    ``frames``: per-frame rows (submission, clip, frame, metric, value); ``series``: (submission, label, reference)
    in table order, references drawn dashed grey. False (nothing written) when no clip has two frames.
    """
    rows = frames[frames["metric"] == metric]
    clips = list(dict.fromkeys(rows["clip"]))
    if not clips or rows.groupby(["submission", "clip"])["frame"].nunique().max() < 2:
        return False
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    columns = min(columns, len(clips))
    lines = -(-len(clips) // columns)
    legend_rows = -(-len(series) // 5)
    fig, axes = plt.subplots(lines, columns, figsize=(max(3.1 * columns, 7.5), 1.7 * lines + 0.5 + 0.2 * legend_rows),
                             squeeze=False, sharex=True, layout="constrained")
    colours = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
    grouped = {name: group.sort_values("frame") for name, group in rows.groupby(["submission", "clip"])}
    for ax, clip in zip(axes.flat, clips, strict=False):
        for i, (submission, label, reference) in enumerate(series):
            group = grouped.get((submission, clip))
            if group is None:
                continue
            k = sum(ref for _, _, ref in series[:i])  # references: greys, each its own dash
            style = {"color": ("0.25", "0.5", "0.7")[k % 3], "linestyle": ("--", ":", "-.")[k % 3],
                     "linewidth": 1.1} if reference else \
                {"color": colours(i % colours.N), "linewidth": 1.2, "linestyle": ("-", ":", "-.")[i // 20 % 3]}
            ax.plot(group["frame"].to_numpy(), group["value"].to_numpy(float), label=short(label), **style)
        ax.set_title(clip, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(clips):]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(5, len(names)), fontsize=7, frameon=False)
    fig.suptitle(f"{metric} {'↑' if higher_is_better else '↓'} per frame (x: frame index)", fontsize=9)
    _save(fig, path)
    return True


# -- qualitative strip ---------------------------------------------------------------------------------------------
def thumbnail(frame: np.ndarray, width: int = TILE_WIDTH) -> np.ndarray:
    """An RGB uint8 thumbnail ``width`` pixels wide (grey frames become RGB)."""
    import cv2

    if frame.ndim == 2:
        frame = np.repeat(frame[..., None], 3, axis=2)
    height = max(1, round(frame.shape[0] * width / frame.shape[1]))
    return cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=cv2.INTER_AREA)


def strip(shots: list[tuple[str, list[tuple[str, np.ndarray | None]]]], path: Path,
          per_row: int = TILES_PER_ROW) -> bool:
    """For each chosen frame ``(title, [(label, thumbnail or None)])`` a block of tiles, IR and VIS first; a missing
    frame is a grey tile saying so. False (nothing written) without any shot."""
    if not shots:
        return False
    plt = _pyplot()
    tiles = max(len(t) for _, t in shots)
    columns = min(per_row, tiles)
    lines_per_shot = -(-tiles // columns)
    sample = next((im for _, t in shots for _, im in t if im is not None), np.zeros((90, TILE_WIDTH, 3), np.uint8))
    aspect = sample.shape[0] / sample.shape[1]
    tile_in = TILE_WIDTH / DPI
    fig, axes = plt.subplots(len(shots) * lines_per_shot, columns, squeeze=False,
                             figsize=(columns * tile_in * 1.04, len(shots) * lines_per_shot * (tile_in * aspect
                                                                                                + 0.42)))
    for s, (title, shot) in enumerate(shots):
        for t in range(lines_per_shot * columns):
            ax = axes[s * lines_per_shot + t // columns, t % columns]
            ax.set_xticks([])
            ax.set_yticks([])
            if t >= len(shot):
                ax.axis("off")
                continue
            label, image = shot[t]
            if image is None:
                ax.imshow(np.full_like(sample, 235))
                ax.text(0.5, 0.5, "frames not\navailable", ha="center", va="center", fontsize=6,
                        transform=ax.transAxes, color="0.35")
            else:
                ax.imshow(image)
            ax.set_title(short(label, 18), fontsize=7, pad=2)
            if t == 0:
                ax.set_ylabel(title, fontsize=6)
    fig.subplots_adjust(left=0.02, right=0.99, top=0.97, bottom=0.01, wspace=0.04, hspace=0.3)
    _save(fig, path, palette=True)
    return True
