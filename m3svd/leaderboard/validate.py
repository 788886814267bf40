"""`m3svd validate`: is a folder of fused frames a fair submission for a protocol?

Checked before anything is scored, every problem on its own line naming the file: each clip and frame present and
numbered, lossless, decodable, 8-bit, the clip's size; not a copy of an input stream (byte for byte, or up to one
grey level: such a "fusion" would rank on metrics that reward one source); not degenerate (a near-constant frame, a
frame that is one source up to a grey-level mapping, a frozen video on a video protocol: see
:mod:`m3svd.leaderboard.degenerate`); not the frames of a submission already in the leaderboard (a resubmission
under another name would count twice).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from m3svd.data.frames import BT601, IMAGE_SUFFIXES, LOSSLESS_SUFFIXES, list_images, read_image, to_rgb
from m3svd.errors import M3SVDError
from m3svd.leaderboard import degenerate
from m3svd.leaderboard.schema import read_manifest, record_dirs
from m3svd.protocols import Protocol

MAX_LINES_PER_KIND = 5  # per clip and kind of problem; a clip missing 10,000 frames gets 5 lines and a count
TRIVIAL_TOLERANCE = 1  # grey levels: a copy re-encoded or rounded differently is still a copy
GREY_SOURCES = ("IR", "VIS", "clean IR", "clean VIS")  # the streams a degenerate frame is tested against


@dataclass
class Inspection:
    """What validation found: the problems, and the hashes `submit` records (computed once, here)."""

    problems: list[str] = field(default_factory=list)
    clips: dict[str, dict] = field(default_factory=dict)  # clip -> {frames, fused_sha256, files_sha256}
    fused_sha256: str = ""
    dataset: str = ""
    lossy: bool = False  # some frames are lossy files, accepted because they are verified published outputs
    protocol: str = ""  # the protocol key: duplicates are looked for among its records only

    @property
    def frames(self) -> int:
        return sum(c["frames"] for c in self.clips.values())


def as_protocol(protocol: Protocol | str | Path) -> Protocol:
    from m3svd import protocols

    return protocol if isinstance(protocol, Protocol) else protocols.load(protocol)


def validate(directory: str | Path, protocol: Protocol | str | Path, root: str | Path | None = None,
             leaderboard_dir: str | Path | None = "leaderboard") -> list[str]:
    """Every problem of the submission in ``directory`` for ``protocol``, one line each; ``[]`` when it is valid."""
    return inspect(directory, protocol, root, leaderboard_dir).problems


def inspect(directory: str | Path, protocol: Protocol | str | Path, root: str | Path | None = None,
            leaderboard_dir: str | Path | None = "leaderboard", reference: bool = False,
            published: set[str] | frozenset = frozenset()) -> Inspection:
    """Every problem of a folder of fused frames for ``protocol``, and the hashes a record keeps.

    ``reference``: the folder is a reference row (a source, or a trivial baseline), so being a copy of a source or
    degenerate is expected and not a problem. ``published``: sha256 of files verified as a method's published
    outputs (:func:`m3svd.leaderboard.origin.published_origin`), accepted even when lossy.
    """
    from m3svd.evaluate import find_dataset, protocol_clips
    from m3svd.evaluate.inputs import frame_range

    protocol = as_protocol(protocol)
    directory = Path(directory)
    result = Inspection(protocol=protocol.key)
    if not directory.is_dir():
        result.problems.append(f"{directory}: no such folder (expected {directory}/<clip>/<frame>.png)")
        return result
    try:
        clipset = find_dataset(protocol, root)
        present, missing = protocol_clips(protocol, clipset)
    except M3SVDError as error:
        result.problems.append(str(error))
        return result
    result.dataset = "sample" if clipset.layout == "sample" else str(clipset.root)
    result.problems += _capped([f"{clipset.root}: protocol {protocol.key} needs clip {name}, which this dataset "
                                f"lacks; only a protocol's complete data can be submitted" for name in missing])
    expected = set(present) | set(missing)
    for folder in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name not in expected:
            result.problems.append(f"{folder}: unexpected folder; protocol {protocol.key} has no clip {folder.name!r}")
    clean, mapped = True, []
    for name in present:
        clip = clipset.clip(name, protocol.split, protocol.variant)
        try:
            frames = frame_range(protocol, clip)
        except M3SVDError as error:  # the protocol does not fit this dataset: nothing to check frames against
            result.problems.append(str(error))
            clean = False
            continue
        problems, summary = _inspect_clip(directory / name, clip, video=bool(protocol.temporal_metrics),
                                          reference=reference, published=published, frames=frames)
        result.problems += problems
        result.lossy = result.lossy or bool(summary and summary.pop("lossy"))
        mapped += summary.pop("mapped") if summary else []
        clean = clean and not problems
        if summary:
            result.clips[name] = summary
    if mapped and len(mapped) > degenerate.MAX_SOURCE_MAPPED_SHARE * result.frames:
        result.problems += mapped[:MAX_LINES_PER_KIND] + [
            f"{directory}: {len(mapped)} of {result.frames} frames are one source up to a grey-level mapping (more "
            f"than {degenerate.MAX_SOURCE_MAPPED_SHARE:.0%}); a copy of one source is not a fusion"]
        clean = False
    digest = hashlib.sha256()
    for name in present:
        if name in result.clips:
            digest.update(f"{name} {result.clips[name]['fused_sha256']}\n".encode())
    result.fused_sha256 = digest.hexdigest()
    if clean and leaderboard_dir is not None:
        result.problems += duplicate_problems(directory, result, leaderboard_dir)
    return result


def joined_sha256(digests) -> str:
    """A clip folder's digest: sha256 of its frames' hex digests joined in order (fused_sha256, files_sha256)."""
    return hashlib.sha256("".join(digests).encode()).hexdigest()


def _inspect_clip(folder: Path, clip, video: bool = False, reference: bool = False,
                  published: set[str] | frozenset = frozenset(),
                  frames: tuple[int, int] | None = None) -> tuple[list[str], dict | None]:
    """Problems of one clip's folder, and (when every frame was readable) its hashes.

    The folder holds every frame of the clip, or exactly the protocol's ``frames`` range ``(start, stop)``, checked
    against the clip (numbered as in the clip; None: all), as `m3svd evaluate --predictions` reads it.
    """
    n = len(clip)
    if not folder.is_dir():
        return [f"{folder}: missing; expected {n} fused frames for clip {clip.name}"], None
    files = list_images(folder)
    start, stop = frames or (0, n)
    first, n = (start, stop - start) if len(files) == stop - start < n else (0, n)
    problems = []
    others = [p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")
              and p.suffix.lower() not in IMAGE_SUFFIXES]
    problems += _capped([f"{p}: not an image (expected PNG fused frames)" for p in others])
    numbering, aligned = _numbering(folder, files, n, first)
    problems += numbering
    height, width = clip.size
    streams = _input_streams(clip)
    copies = {label: {"bytes": True, "pixels": True} for label in streams}
    frame_digests, file_digests, bad, degenerate_frames, mapped_frames = [], [], [], [], []
    fused_motion = source_motion = 0.0
    previous = None  # (fused grey, source greys) of the frame before
    lossy = False
    for i, path in enumerate(files):
        data = path.read_bytes()
        file_digests.append(hashlib.sha256(data).hexdigest())
        if path.suffix.lower() not in LOSSLESS_SUFFIXES:
            lossy = True
            if file_digests[-1] not in published:
                bad.append(f"{path}: lossy {path.suffix.lstrip('.').upper()} file; fused frames must be lossless "
                           f"(PNG)")
        try:
            frame = read_image(path)
        except M3SVDError as error:
            bad.append(str(error))
            continue
        if frame.shape[:2] != (height, width):
            bad.append(f"{path}: expected a {width}×{height} fused frame, found {frame.shape[1]}×{frame.shape[0]}")
            continue
        fused = to_rgb(frame)
        frame_digests.append(hashlib.sha256(np.ascontiguousarray(fused).data).hexdigest())
        if aligned:
            seen = {}
            for label, (read, sources) in streams.items():
                flags = copies[label]
                if flags["bytes"]:
                    flags["bytes"] = first + i < len(sources) and _file_sha(sources[first + i]) == file_digests[-1]
                if flags["pixels"] or label in GREY_SOURCES:
                    seen[label] = read(first + i)
                if flags["pixels"]:
                    flags["pixels"] = _near(fused, seen[label])
            fused_grey = degenerate.grey(fused)
            greys = {label: degenerate.grey(seen[label]) for label in GREY_SOURCES if label in seen}
            problem = degenerate.constant_problem(path, fused_grey, greys)
            if problem:
                degenerate_frames.append(problem)
            mapped = None if problem else degenerate.mapped_source(path, fused_grey, greys)
            if mapped:
                mapped_frames.append(mapped)
            if previous is not None:
                fused_motion = max(fused_motion, float(np.abs(fused_grey - previous[0]).mean()))
                source_motion = max([source_motion] + [float(np.abs(g - previous[1][k]).mean())
                                                       for k, g in greys.items() if k in previous[1]])
            previous = (fused_grey, greys)
    problems += _capped(bad)
    if aligned and len(files) == n and not bad and not reference:
        for label, flags in copies.items():
            if flags["bytes"]:
                problems.append(f"{folder}: every fused frame is byte-identical to the {label} input stream "
                                f"({streams[label][1][0].parent})")
            elif flags["pixels"]:
                problems.append(f"{folder}: every fused frame is identical to the {label} input stream (within "
                                f"{TRIVIAL_TOLERANCE} grey level); a copy of one source is not a fusion")
        if not problems:  # a copy is reported as a copy, not again as degenerate frames
            problems += _capped(degenerate_frames)
            frozen = degenerate.frozen_problem(folder, fused_motion, source_motion, n) if video else None
            if frozen:
                problems.append(frozen)
    if problems:
        return problems, None
    summary = {
        "frames": n,
        "fused_sha256": joined_sha256(frame_digests),
        "files_sha256": joined_sha256(file_digests),
        "lossy": lossy,
        "mapped": [] if reference else mapped_frames,
    }
    return problems, summary


def _numbering(folder: Path, files: list[Path], n: int, first: int = 0) -> tuple[list[str], bool]:
    """Frames are named by number (``0.png``, ``000001.png``; counted from 0 or from 1) and cover the clip, or the
    ``n`` frames from ``first`` on."""
    problems = []
    numbers: dict[int, Path] = {}
    for path in files:
        if not path.stem.isdigit():
            problems.append(f"{path}: frame name is not a frame number (expected e.g. {folder}/000000.png)")
            continue
        number = int(path.stem)
        if number in numbers:
            problems.append(f"{path}: frame {number} given twice (also {numbers[number].name})")
        numbers[number] = path
    base = first + 1 if numbers and first not in numbers and first + 1 in numbers else first
    wanted = set(range(base, base + n))
    missing = sorted(wanted - set(numbers))
    extra = sorted(set(numbers) - wanted)
    width = len(files[0].stem) if files else 6
    out = _capped([f"{folder}/{k:0{width}d}{files[0].suffix if files else '.png'}: missing (frame {k - base + first} "
                   f"of the clip's {n}; found {len(files)} frames)" for k in missing])
    out += _capped([f"{numbers[k]}: frame {k - base + first} is past the clip's last frame ({first + n - 1})"
                    for k in extra])
    problems = _capped(problems) + out
    return problems, not problems and len(files) == n


def _input_streams(clip) -> dict:
    """``label -> (read frame i as RGB, source files)`` for every input stream a submission could copy."""
    from m3svd.evaluate.inputs import read_frame  # checked as evaluate reads them: sizes, colour in the IR stream

    def grey_vi(c):
        return lambda i: _grey3(read_frame(c, "vi", i))

    streams = {"IR": (lambda i: to_rgb(read_frame(clip, "ir", i)), clip.ir_source.paths),
               "VIS": (lambda i: read_frame(clip, "vi", i), clip.vi_source.paths), "VIS grey": (grey_vi(clip), ())}
    reference = clip.reference
    if reference is not None:
        streams.update({"clean IR": (lambda i: to_rgb(read_frame(reference, "ir", i)), reference.ir_source.paths),
                        "clean VIS": (lambda i: read_frame(reference, "vi", i), reference.vi_source.paths),
                        "clean VIS grey": (grey_vi(reference), ())})
    return streams


def _grey3(rgb: np.ndarray) -> np.ndarray:
    return to_rgb(np.rint(rgb.astype(np.float64) @ BT601).astype(np.uint8))


def _near(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) <= TRIVIAL_TOLERANCE


_FILE_SHA: dict[tuple, str] = {}  # input files are hashed once per process, not once per submission


def _file_sha(path: Path) -> str:
    stat = Path(path).stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_SHA:
        _FILE_SHA[key] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return _FILE_SHA[key]


def duplicate_problems(directory: Path, inspection: Inspection, leaderboard_dir: str | Path) -> list[str]:
    """The submission, or any of its clips, already in the leaderboard on the same protocol (by decoded pixels, not
    file bytes). The same frames on another protocol are no duplicate: the blurred visible stream is the `vi`
    reference row of both the degraded and the visible-only protocols."""
    problems = []
    for record in record_dirs(leaderboard_dir):
        try:
            manifest = read_manifest(record)
        except M3SVDError:
            continue  # a damaged record is reported by `build`, not blamed on this submission
        if inspection.protocol and manifest.get("protocol", {}).get("key") != inspection.protocol:
            continue
        who = f"submission {manifest.get('id', record.name)} ({manifest.get('name', '?')})"
        if manifest.get("fused_sha256") == inspection.fused_sha256:
            problems.append(f"{directory}: duplicate of {who}: the same fused frames")
            continue
        theirs = {(c, v.get("fused_sha256")) for c, v in manifest.get("clips", {}).items()}
        for name, clip in inspection.clips.items():
            if (name, clip["fused_sha256"]) in theirs:
                problems.append(f"{directory / name}: the fused frames of clip {name} duplicate those of {who}")
    return problems


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_LINES_PER_KIND:
        return lines
    return lines[:MAX_LINES_PER_KIND] + [f"… and {len(lines) - MAX_LINES_PER_KIND} more like the line above"]
