"""Export clips to a Hugging Face ``datasets.Dataset``: one row per frame pair, images stored as PNG."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from m3svd.data.layouts import ClipSet, open_dataset
from m3svd.files import atomic_path


def _features(with_references: bool):
    from datasets import Features, Image, Value

    columns = {
        "ir": Image(),
        "vi": Image(),
        "clip": Value("string"),
        "frame": Value("int32"),
        "split": Value("string"),
        "variant": Value("string"),
        "layout": Value("string"),
        "fps": Value("float32"),
        "lossy": Value("bool"),
    }
    if with_references:
        columns.update({"ir_ref": Image(), "vi_ref": Image()})
    return Features(columns)


def _rows(clips, with_references: bool):
    for clip in clips:
        for i in range(len(clip)):
            row = {
                "ir": clip.ir(i), "vi": clip.vi(i), "clip": clip.name, "frame": i, "split": clip.split,
                "variant": clip.variant, "layout": clip.layout, "fps": clip.fps, "lossy": clip.lossy,
            }
            if with_references:
                row.update({"ir_ref": clip.reference.ir(i), "vi_ref": clip.reference.vi(i)})
            yield row


def _fingerprint(clips, with_references: bool) -> str:
    """Cache key from what the rows are made of (each source's identity), not only the paths that
    ``datasets`` would key on: re-exporting after frames change on disk must not serve stale pixels."""
    from m3svd import __version__

    digest = hashlib.sha256(f"{__version__} {with_references}".encode())
    for clip in clips:
        digest.update(f"{clip.name} {clip.split} {clip.variant} {clip.layout}".encode())
        sources = [clip.ir_source, clip.vi_source]
        if with_references:
            sources += [clip.reference.ir_source, clip.reference.vi_source]
        for source in sources:
            digest.update(source.identity().encode())
    return digest.hexdigest()[:32]


def hf_split(split: str | None, clips) -> str:
    """The Hugging Face split name for an export (see :func:`to_hf_dataset`)."""
    found = {c.split for c in clips}
    name = split or (found.pop() if len(found) == 1 and None not in found else "train")
    return name if re.fullmatch(r"\w+(\.\w+)*", name) else "train"  # the names Hugging Face accepts


def to_hf_dataset(
    root: str | Path | ClipSet,
    split: str | None = None,
    variant: str | None = "clean",
    clips: list[str] | None = None,
    parquet_path: str | Path | None = None,
    cache_dir: str | Path | None = None,
):
    """A ``datasets.Dataset`` of frame pairs with clip metadata (and clean references for degraded clips).

    Frames are stored losslessly as PNG inside Arrow. With ``parquet_path`` the table is also written as
    one Parquet file (to a temporary name first, then renamed), loadable later with
    ``datasets.Dataset.from_parquet``. The dataset's ``split`` is the data's: ``split`` when given, else the one
    split every selected clip belongs to (``test`` data is not labelled ``train``), else ``train``, the Hugging
    Face default, for clips from several splits or none.
    """
    from datasets import Dataset, NamedSplit

    clipset = root if isinstance(root, ClipSet) else open_dataset(root)
    selected = clipset.select(split, variant)
    if clips is not None:
        selected = [clipset.clip(name, split, variant) for name in clips]
    with_references = bool(selected) and all(c.reference is not None for c in selected)
    label = hf_split(split, selected)
    dataset = Dataset.from_generator(
        _rows,
        gen_kwargs={"clips": selected, "with_references": with_references},
        features=_features(with_references),
        cache_dir=str(cache_dir) if cache_dir else None,
        fingerprint=_fingerprint(selected, with_references) + label,
        split=NamedSplit(label),
    )
    if parquet_path is not None:
        target = Path(parquet_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            dataset.to_parquet(str(tmp))
    return dataset
