"""Where the frames come from: the protocol's dataset and clips, and saved predictions read back from disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from m3svd.data.clip import Clip
from m3svd.data.frames import list_images, read_image, to_grey, to_rgb
from m3svd.data.layouts import ClipSet, open_dataset
from m3svd.errors import DataError
from m3svd.evaluate.jobs import EvaluationError, Job
from m3svd.protocols import Protocol


def find_dataset(protocol: Protocol, root: str | Path | None) -> ClipSet:
    """The dataset a protocol runs on: ``root`` itself if it holds one of the protocol's layouts, else the first of
    the protocol's folders under ``root`` (default: ``$M3SVD_ROOT`` or the cache directory)."""
    if protocol.layouts == ("sample",):
        return open_dataset("sample")
    from m3svd.paths import default_root

    base = Path(root).expanduser() if root is not None else default_root()
    candidates = [base] + [base / folder for folder in protocol.folders]
    causes = []  # why a folder that exists was not taken: the real problem, when there is one
    for candidate in candidates:
        if candidate.is_dir():
            try:
                clipset = open_dataset(candidate)
            except DataError as error:
                causes.append((candidate, str(error)))
                continue
            if clipset.layout in protocol.layouts:
                return clipset
            causes.append((candidate, f"{candidate}: a {clipset.layout} dataset, but protocol {protocol.id} reads "
                                      f"{'/'.join(protocol.layouts)}"))
        elif candidate.exists():
            causes.append((candidate, f"{candidate}: a regular file, not a dataset folder"))
    # a folder meant for this protocol (the root itself or one of its folders) that holds something broken: that
    # is the problem to report, not "no dataset"
    broken = [message for candidate, message in causes
              if candidate != base or "no known IR/VIS layout" not in message
              or (root is not None and len(causes) == 1)]
    if broken:
        raise EvaluationError(broken[0])
    looked = ", ".join(str(c) for c in candidates)
    raise EvaluationError(
        f"no {'/'.join(protocol.layouts)} dataset for protocol {protocol.id} (looked in {looked}); get it with "
        f"`m3svd download --subset {protocol.folders[-1]}`, pass --root DIR, or try the built-in data with "
        f"--protocol sample"
    )


def protocol_clips(protocol: Protocol, clipset: ClipSet) -> tuple[list[str], list[str]]:
    """``(present, missing)`` clip names of the protocol, in protocol order."""
    available = [c.name for c in clipset.select(protocol.split, protocol.variant)]
    wanted = protocol.clip_names(available)
    return [n for n in wanted if n in available], [n for n in wanted if n not in available]


def open_clip(job: Job) -> tuple[Clip, Clip]:
    """``(input clip, reference clip)`` for one job."""
    clipset = open_dataset(job.dataset)
    clip = clipset.clip(job.clip, job.protocol.split, job.protocol.variant)
    if job.protocol.references == job.protocol.variant:
        return clip, clip
    if clip.reference is None or clip.reference.variant != job.protocol.references:
        raise EvaluationError(f"clip {clip.name}: protocol {job.protocol.id} needs its {job.protocol.references} "
                              f"reference, which this dataset does not have")
    return clip, clip.reference


def frame_range(protocol: Protocol, clip: Clip) -> tuple[int, int]:
    start, stop = protocol.frames
    stop = len(clip) if stop is None else stop
    if not 0 <= start < stop <= len(clip):
        raise EvaluationError(f"clip {clip.name}: protocol {protocol.id} asks for frames [{start}, {stop}) "
                              f"but the clip has {len(clip)}")
    return start, stop


def subset_range(protocol: Protocol, clip: Clip, subset) -> tuple[int, int]:
    """The frames a job scores: the protocol's range, or the part of it a :class:`~m3svd.evaluate.jobs.Subset`
    asks for."""
    start, stop = frame_range(protocol, clip)
    if subset is None or subset.frames is None:
        return start, stop
    a, b = subset.frames
    b = stop if b is None else b
    if not start <= a < b <= stop:
        raise EvaluationError(f"clip {clip.name}: --frames {a}:{b} lies outside the frames protocol {protocol.id} "
                              f"scores, [{start}, {stop}); expected START:STOP with {start} <= START < STOP <= {stop}")
    return a, b


def predicted_frames(predictions: str, clip: Clip, start: int, stop: int) -> Callable[[int, int], np.ndarray]:
    """A reader of frames ``[a, b)`` of a clip's saved fused frames (all the clip's frames, or the protocol's range)."""
    folder = Path(predictions) / clip.name
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: no fused frames for clip {clip.name} (expected one image per frame)")
    files = list_images(folder)
    if len(files) == len(clip):
        offset = 0
    elif len(files) == stop - start:  # only the protocol's frame range
        offset = start
    else:
        wanted = f"{len(clip)}" if stop - start == len(clip) else f"{len(clip)} (or the protocol's {stop - start})"
        raise EvaluationError(f"{folder}: expected {wanted} fused frames for clip {clip.name}, found {len(files)}")
    height, width = clip.size

    def read(a: int, b: int) -> np.ndarray:
        frames = []
        for path in files[a - offset:b - offset]:
            frame = to_rgb(read_image(path))
            if frame.shape[:2] != (height, width):
                raise EvaluationError(f"{path}: expected a {width}×{height} fused frame, found "
                                      f"{frame.shape[1]}×{frame.shape[0]}")
            frames.append(frame)
        return np.stack(frames)

    return read


def read_frames(clip: Clip, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """``(ir, vi)`` frames ``[a, b)`` of a clip, each checked by :func:`read_frame`."""
    return (np.stack([read_frame(clip, "ir", i) for i in range(a, b)]),
            np.stack([read_frame(clip, "vi", i) for i in range(a, b)]))


def read_frame(clip: Clip, stream: str, i: int) -> np.ndarray:
    """Frame ``i`` of a clip's ``"ir"`` (grey) or ``"vi"`` (RGB) stream, checked as `m3svd check`'s integrity checks
    it: the clip's size, and an infrared frame stored with three channels holds three equal ones (a colour frame in
    the grey stream is refused, not silently converted to grey), in lossless storage where that can be told."""
    height, width = clip.size
    label, source = ("IR", clip.ir_source) if stream == "ir" else ("VIS", clip.vi_source)
    raw = source.read(i)
    if raw.shape[:2] != (height, width):
        raise EvaluationError(f"{_where(source, i)}: {label} frame {i} of clip {clip.name} is {raw.shape[1]}×"
                              f"{raw.shape[0]}, the clip's frames {width}×{height}; `m3svd check` lists every such "
                              f"frame")
    if stream == "ir":
        if raw.ndim == 3 and not source.lossy and not (raw == raw[..., :1]).all():
            raise EvaluationError(f"{_where(source, i)}: IR frame {i} of clip {clip.name} has three channels that "
                                  f"differ (a colour image in the infrared stream); store IR as grey or three equal "
                                  f"channels")
        return to_grey(raw)
    return to_rgb(raw)


def _where(source, i: int) -> str:
    paths = source.paths
    return str(paths[i]) if len(paths) > i and len(paths) > 1 else f"{source.describe()} (frame {i})"


def prediction_notes(folder: str | Path, protocol: Protocol, clipset: ClipSet, present: list[str]) -> list[str]:
    """Check a predictions folder before anything is scored; returns why its rows could not be submitted (``[]``:
    nothing found here; `m3svd validate` also refuses copies of a source and degenerate frames).

    Refused (:class:`EvaluationError`), by the numbering rule `m3svd validate` applies: frame names that are not
    frame numbers, a frame given twice, numbering that skips or runs past the clip (or the protocol's frame range)
    — they would be scored against the wrong source frames. Scored but labelled: lossy files.
    """
    from m3svd.data.frames import LOSSLESS_SUFFIXES
    from m3svd.leaderboard.validate import _numbering

    notes = []
    for name in present:
        clip = clipset.clip(name, protocol.split, protocol.variant)
        path = Path(folder) / name
        if not path.is_dir():
            raise EvaluationError(f"{path}: no fused frames for clip {name} (expected one image per frame)")
        files = list_images(path)
        n = len(clip)
        start, stop = frame_range(protocol, clip)
        first, count = (start, stop - start) if len(files) == stop - start < n else (0, n)
        problems, _ = _numbering(path, files, count, first)
        if problems:
            raise EvaluationError(problems[0])
        lossy = [p for p in files if p.suffix.lower() not in LOSSLESS_SUFFIXES]
        if lossy:
            notes.append(f"{lossy[0]}: lossy {lossy[0].suffix.lstrip('.').upper()} fused frames "
                         f"({len(lossy)} in {path}); submissions must be lossless")
    return notes
