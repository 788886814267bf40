"""``m3svd import PATH``: a release downloaded by hand, arranged in the canonical layout, hashed and checked.

The full M3SVD release publishes no checksums (``docs/dataset-m3svd.md``), so the hashes recorded
here at import time (``.m3svd/files.csv``) are the only reference :func:`verify_import` can later compare
against. Sources: a folder, a ``.zip``, a multi-part ``x.zip.001``/``.002``/… (read in place as one
stream, never joined on disk), or a ``.tar``/``.tar.gz``/``.tgz``. The result is built in a hidden folder
beside the target and renamed into place at the end, so an interrupted import leaves nothing behind.
"""

from __future__ import annotations

import bisect
import csv
import glob
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import cv2

from m3svd import __version__
from m3svd.data.frames import FrameSource, ImageFiles, VideoFile, natural_key, to_grey
from m3svd.data.layouts import LOOKED_FOR, M3SVD_FOLDERS, ClipSet, open_dataset
from m3svd.data.splits import N_TEST, N_TRAIN, SPLIT_VERSION, TEST_CLIPS, split_of
from m3svd.errors import DataError
from m3svd.files import human, sha256_file, write_png

RECORD_DIR = ".m3svd"
M3SVD_LAYOUTS = ("m3svd", "m3svd-video")
SEARCH_DEPTH = 3  # archives wrap the release in a folder or two (``M3SVD/``, ``Video/``)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
JUNK_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini")  # left by file managers; never data
GITHUB_FOLDERS = {"ir": "infrared", "vi": "visible"}
CHUNK = 1 << 20

Hashed = tuple[int, str]  # (size in bytes, sha256 hex)

# Import names that claim the whole release: checked for all 30 test and 190 train clips.
FULL_RELEASE_NAMES = ("full", "full-videos")


# -- the report ------------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    """What landed where, and every line a user should act on (``missing``); ``notes`` are informational."""

    target: Path
    layout: str
    storage: str
    clips: dict[str, dict[str, int]]
    files: int
    bytes: int
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extracted_frames: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing

    def format(self) -> str:
        lines = [f"imported {self.layout} ({self.storage}) into {self.target}"]
        for split, variants in self.clips.items():
            lines.append(f"  {split}: " + ", ".join(f"{n} {variant} clip(s)" for variant, n in variants.items()))
        lines.append(f"  {self.files} files, {human(self.bytes, digits=1)}; sha256 of each in "
                     f"{self.target / RECORD_DIR / 'files.csv'}")
        if self.extracted_frames:
            lines.append(f"  {self.extracted_frames} PNG frames decoded from the videos (lossy-derived, not originals)")
        lines += [f"  note: {line}" for line in self.notes]
        if self.missing:
            lines.append(f"missing ({len(self.missing)}):")
            lines += [f"  - {line}" for line in self.missing]
        return "\n".join(lines)


# -- sources -----------------------------------------------------------------------------------------------
def _archive_kind(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(".zip"):
        return "zip"
    return "tar" if lower.endswith(TAR_SUFFIXES) else None


def _reject_zip_split(source: Path) -> None:
    """``zip -s`` archives (``x.z01`` … ``x.zip``) keep their directory in the last part: not streamable."""
    stem = re.sub(r"\.(zip|z\d\d)$", "", source.name, flags=re.IGNORECASE)
    if re.search(r"\.z\d\d$", source.name, re.IGNORECASE) or (source.parent / f"{stem}.z01").exists():
        zip_path = source.parent / f"{stem}.zip"
        raise DataError(f"{source}: a split zip ({stem}.z01 … {stem}.zip) cannot be read in place; join it with "
                        f"`zip -s 0 {zip_path} --out joined.zip` and import joined.zip")


def _numbered_parts(source: Path) -> list[Path]:
    """``x.zip.001``, ``x.zip.002``, … in order, from any one of them; a gap in the numbers is an error."""
    base = source.name[: -len(source.suffix)]
    numbers = sorted(int(p.suffix[1:]) for p in source.parent.glob(f"{glob.escape(base)}.*")
                     if re.fullmatch(r"\.\d{3}", p.suffix))
    gaps = sorted(set(range(1, numbers[-1] + 1)) - set(numbers))
    if gaps:
        raise DataError(f"{source}: multi-part archive lacks part {base}.{gaps[0]:03d}; expected "
                        f"{base}.001 … {base}.{numbers[-1]:03d}, found {len(numbers)} part(s)")
    return [source.parent / f"{base}.{n:03d}" for n in numbers]


def _resolve_source(source: Path) -> tuple[str, list[Path]]:
    """``(kind, parts)``: ``"folder"`` with no parts, or ``"zip"``/``"tar"`` with the archive's part files."""
    if not source.exists():
        raise DataError(f"{source}: no such file or directory")
    if source.is_dir():
        return "folder", []
    _reject_zip_split(source)
    numbered = re.fullmatch(r"\.\d{3}", source.suffix) is not None
    kind = _archive_kind(source.name[: -len(source.suffix)] if numbered else source.name)
    if kind is None:
        raise DataError(f"{source}: expected a folder, .zip, .zip.001 (multi-part), .tar, .tar.gz or .tgz; "
                        f"found {''.join(source.suffixes[-2:]) or 'a file without a suffix'}")
    return kind, _numbered_parts(source) if numbered else [source]


class _Joined(io.RawIOBase):
    """The parts of a multi-part archive read as one seekable file, without joining them on disk."""

    def __init__(self, parts: list[Path]):
        self._files = []
        try:
            for part in parts:
                self._files.append(open(part, "rb"))  # noqa: SIM115 - closed in close()
        except OSError:
            self.close()
            raise
        sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._sizes, self._size, self._pos = sizes, sum(sizes), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise OSError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer) -> int:
        if self._pos >= self._size:
            return 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        inside = self._pos - self._starts[i]
        self._files[i].seek(inside)
        n = self._files[i].readinto(memoryview(buffer)[: self._sizes[i] - inside])
        self._pos += n
        return n

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def _open_parts(parts: list[Path]) -> io.BufferedIOBase:
    if len(parts) == 1:
        return open(parts[0], "rb")  # noqa: SIM115 - the caller closes it
    return io.BufferedReader(_Joined(parts), buffer_size=CHUNK)


def _hash_parts(parts: list[Path]) -> dict:
    """sha256 of the archive as one stream, and of each part when there are several."""
    whole, listed = hashlib.sha256(), []
    for part in parts:
        one = hashlib.sha256()
        with open(part, "rb") as f:
            while chunk := f.read(CHUNK):
                whole.update(chunk)
                one.update(chunk)
        listed.append({"path": str(part), "size": part.stat().st_size, "sha256": one.hexdigest()})
    out = {"source_sha256": whole.hexdigest(), "source_size": sum(p["size"] for p in listed)}
    if len(parts) > 1:
        out["source_parts"] = listed
    return out


# -- safe extraction -----------------------------------------------------------------------------------------
def _member_path(label: Path, name: str) -> PurePosixPath | None:
    """Where a member may land under the extraction folder; ``None`` for junk. Escaping paths are refused."""
    norm = name.replace("\\", "/")
    path = PurePosixPath(norm)
    if norm.startswith("/") or re.match(r"[A-Za-z]:", norm) or ".." in path.parts:
        raise DataError(f"{label}: unsafe member path {name!r}; expected paths inside the archive (no leading /, "
                        "no drive, no '..')")
    if not path.parts or "__MACOSX" in path.parts or path.name.startswith("._") or path.name in JUNK_NAMES:
        return None
    return path


def _copy_stream(src, dst: Path) -> Hashed:
    digest, size = hashlib.sha256(), 0
    with open(dst, "wb") as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _zip_members(label: Path, archive: zipfile.ZipFile) -> list[tuple[PurePosixPath, zipfile.ZipInfo]]:
    members = []
    for info in archive.infolist():
        path = _member_path(label, info.filename)
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise DataError(f"{label}: member {info.filename!r} is a symbolic link; expected files and folders")
        if info.flag_bits & 0x1:
            raise DataError(f"{label}: member {info.filename!r} is encrypted; expected an unencrypted archive")
        if path is not None and not info.is_dir():
            members.append((path, info))
    return members


def _tar_members(label: Path, archive: tarfile.TarFile) -> list[tuple[PurePosixPath, tarfile.TarInfo]]:
    members = []
    for info in archive.getmembers():
        path = _member_path(label, info.name)
        if not (info.isfile() or info.isdir()):
            raise DataError(f"{label}: member {info.name!r} is a link or device; expected files and folders")
        if path is not None and info.isfile():
            members.append((path, info))
    return members


def _extract(label: Path, kind: str, parts: list[Path], dest: Path, progress: bool) -> dict[Path, Hashed]:
    """Every member written under ``dest``, hashed on the way; all member paths are checked first."""
    extracted = {}
    with _open_parts(parts) as stream:
        try:
            archive = zipfile.ZipFile(stream) if kind == "zip" else tarfile.open(fileobj=stream, mode="r:*")
            with archive:
                members = _zip_members(label, archive) if kind == "zip" else _tar_members(label, archive)
                total = sum(i.file_size if kind == "zip" else i.size for _, i in members)
                with _bar(total, "extract", progress) as bar:
                    for path, info in members:
                        out = dest / path
                        out.parent.mkdir(parents=True, exist_ok=True)
                        with archive.open(info) if kind == "zip" else archive.extractfile(info) as src:
                            extracted[out] = _copy_stream(src, out)
                        bar.update(extracted[out][0])
        except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, NotImplementedError) as error:
            raise DataError(f"{label}: cannot read the {kind} archive ({error})") from None
    return extracted


def _bar(total: int, desc: str, enabled: bool, unit: str = "B"):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", disable=not enabled, leave=False)


# -- finding the release inside the source --------------------------------------------------------------------
def _children(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))),
                  key=lambda p: natural_key(p.name))


def _find_dataset(tree: Path, label: Path) -> ClipSet:
    """The shallowest folder (depth ≤ 3) that opens as an M3SVD layout; two at one depth is ambiguous."""
    level, other = [tree], None
    for _ in range(SEARCH_DEPTH + 1):
        found = []
        for folder in level:
            try:
                clipset = open_dataset(folder, strict=False)
            except DataError:
                continue
            if clipset.layout in M3SVD_LAYOUTS:
                found.append(clipset)
            else:
                other = other or clipset
        if len(found) > 1:
            where = ", ".join(str(c.root.relative_to(tree)) for c in found)
            raise DataError(f"{label}: expected one M3SVD release, found {len(found)} ({where}); import one of them")
        if found:
            return found[0]
        level = [child for folder in level for child in _children(folder)]
    if other is not None:
        raise DataError(f"{label}: found a {other.layout} layout at {other.root}, not an M3SVD release; "
                        f"`m3svd info` reads it in place, `m3svd import` takes M3SVD releases")
    raise DataError(f"{label}: no M3SVD release within {SEARCH_DEPTH} folder levels; looked for {LOOKED_FOR[0]}; "
                    f"{LOOKED_FOR[1]}")


# -- arranging -------------------------------------------------------------------------------------------------
@dataclass
class _Stream:
    """One modality of one variant of one clip, and the release folder it belongs in."""

    split: str
    clip: str
    variant: str
    modality: str
    folder: str
    source: FrameSource

    def targets(self) -> list[tuple[str, Path]]:
        """``(path under the target, source file)`` for every file of this stream; frame names kept."""
        base = f"{self.split}/{self.folder}"
        if isinstance(self.source, VideoFile):
            return [(f"{base}/{self.clip}{self.source.path.suffix}", self.source.path)]
        return [(f"{base}/{self.clip}/{p.name}", p) for p in self.source.paths]


def _release_folder(layout: str, variant: str, modality: str) -> str:
    """TemCoCo names (``IR_en``, ``VI_blur`` …) become the release's; the GitHub layout keeps its two folders."""
    if layout == "m3svd-video":
        return GITHUB_FOLDERS[modality]
    return M3SVD_FOLDERS[f"{modality}_{variant}"][0]


def _streams(clipset: ClipSet) -> list[_Stream]:
    """Every non-empty stream; a clip outside split folders gets its split v1 split (``split_of``)."""
    streams = []
    for clip in clipset.clips:
        for modality, source in (("ir", clip.ir_source), ("vi", clip.vi_source)):
            if source.paths:
                split = clip.split or split_of(clip.name)
                folder = _release_folder(clipset.layout, clip.variant, modality)
                streams.append(_Stream(split, clip.name, clip.variant, modality, folder, source))
    return streams


def _plan(streams: list[_Stream]) -> dict[str, Path]:
    plan: dict[str, Path] = {}
    for stream in streams:
        for rel, src in stream.targets():
            if plan.setdefault(rel, src) != src:
                raise DataError(f"{src}: would land on {rel} like {plan[rel]}; expected one source file per place")
    return plan


def _copy_file(src: Path, dst: Path) -> Hashed:
    with open(src, "rb") as f:
        return _copy_stream(f, dst)


def _link_file(src: Path, dst: Path) -> Hashed:
    """Hard link (no second copy on disk); a copy where linking is impossible (another file system)."""
    try:
        os.link(src, dst)
    except OSError:
        return _copy_file(src, dst)
    return src.stat().st_size, sha256_file(dst)


def _mover(extracted: dict[Path, Hashed]) -> Callable[[Path, Path], Hashed]:
    """Extracted files are renamed into place (same file system): no second copy, hash already known."""
    def move(src: Path, dst: Path) -> Hashed:
        os.replace(src, dst)
        return extracted[src]
    return move


def _place(plan: dict[str, Path], tmp: Path, place: Callable[[Path, Path], Hashed], progress: bool) -> dict:
    records = {}
    total = sum(src.stat().st_size for src in plan.values()) if progress else 0
    with _bar(total, "import", progress) as bar:
        for rel, src in sorted(plan.items()):
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            records[rel] = place(src, dst)
            bar.update(records[rel][0])
    return records


# -- frames from videos ----------------------------------------------------------------------------------------
def _frames_dir(stream: _Stream) -> str:
    """The image-release folder for a video stream (the GitHub videos are the clean variant)."""
    return f"{stream.split}/{M3SVD_FOLDERS[f'{stream.modality}_{stream.variant}'][0]}/{stream.clip}"


def _write_png(path: Path, image) -> Hashed:
    """A decoded (BGR or grey) video frame as PNG, with its size and SHA-256 for the import record."""
    payload = write_png(path, image, rgb=False, error=DataError)
    return len(payload), hashlib.sha256(payload).hexdigest()


def _extract_frames(streams: list[_Stream], tmp: Path, records: dict, progress: bool) -> dict:
    """Decode each placed video to ``{i:04d}.png`` (0-based, like the image release): IR grey, VIS colour."""
    videos = [(s, VideoFile(tmp / s.targets()[0][0])) for s in streams if isinstance(s.source, VideoFile)]
    listed = []
    with _bar(sum(len(v) for _, v in videos), "frames", progress, unit="frame") as bar:
        for stream, video in videos:
            out = _frames_dir(stream)
            (tmp / out).mkdir(parents=True)
            try:
                for i in range(len(video)):
                    frame = video.read(i)
                    image = to_grey(frame) if stream.modality == "ir" else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                    records[f"{out}/{i:04d}.png"] = _write_png(tmp / out / f"{i:04d}.png", image)
                    bar.update()
            finally:
                video.close()
            listed.append({"frames": out, "source": stream.targets()[0][0], "count": len(video)})
    import av

    return {"lossy_derived": True, "decoder": f"PyAV {av.__version__}", "naming": "{i:04d}.png, 0-based",
            "ir": "1-channel grey (BT.601 of the decoded RGB)", "vi": "RGB", "frames": sum(v["count"] for v in listed),
            "streams": listed}


# -- checks on the result ------------------------------------------------------------------------------------
def _naming(names: list[str]) -> str:
    """A frame-name convention in words, e.g. ``4-digit 0-based`` or ``6-digit 1-based``."""
    stems = [n.rsplit(".", 1)[0] for n in names]
    if not all(s.isdigit() for s in stems):
        return "non-numeric"
    widths = {len(s) for s in stems}
    first = min(int(s) for s in stems)
    return f"{widths.pop()}-digit {first}-based" if len(widths) == 1 else f"unpadded {first}-based"


def _stream_problems(where: str, sources: dict[str, FrameSource]) -> list[str]:
    """Frame counts equal across a clip's streams, and one naming convention with identical names."""
    counts = {folder: len(s) for folder, s in sources.items()}
    if len(set(counts.values())) > 1:
        return [f"{where}: frame counts differ ({', '.join(f'{f} {n}' for f, n in counts.items())})"]
    images = {folder: s for folder, s in sources.items() if isinstance(s, ImageFiles)}
    conventions = {folder: _naming(list(s.keys)) for folder, s in images.items()}
    if len(set(conventions.values())) > 1:
        listed = ", ".join(f"{f} {c}" for f, c in conventions.items())
        return [f"{where}: frame names mix conventions ({listed}); expected one convention in every stream"]
    every = set().union(*(s.keys for s in images.values())) if images else set()
    for folder, source in images.items():
        lacking = sorted(every - set(source.keys), key=natural_key)
        if lacking:
            return [f"{where}: {folder} lacks {len(lacking)} frame(s) other streams have, first {lacking[0]!r}"]
    return []


def _by_clip(result: ClipSet) -> dict[tuple[str, str], dict[str, FrameSource]]:
    """``{(split, clip): {release folder: source}}`` over both variants; missing streams are left out."""
    grouped: dict[tuple[str, str], dict[str, FrameSource]] = {}
    for stream in _streams(result):
        grouped.setdefault((stream.split, stream.clip), {})[stream.folder] = stream.source
    return grouped


def _missing(result: ClipSet, name: str) -> list[str]:
    grouped = _by_clip(result)
    expected = sorted(set().union(*grouped.values()))
    lines = []
    for (split, clip), sources in grouped.items():
        where = f"clip {clip} ({split})"
        lines += [f"{where}: no {f} stream, which other clips have" for f in expected if f not in sources]
        lines += _stream_problems(where, sources)
    splits = {split for split, _ in grouped}
    if "test" in splits or name in FULL_RELEASE_NAMES:
        present = {clip for split, clip in grouped if split == "test"}
        absent = [c for c in TEST_CLIPS if c not in present]
        if absent:
            lines.append(f"test: {len(absent)} of {N_TEST} official test clips ({SPLIT_VERSION}) absent: "
                         + ", ".join(absent))
    n_train = len({clip for split, clip in grouped if split == "train"})
    if name in FULL_RELEASE_NAMES and n_train < N_TRAIN:
        lines.append(f"train: {n_train} clip(s); the full release has {N_TRAIN}")
    return lines


def _notes(result: ClipSet) -> list[str]:
    """Split folders that disagree with split v1: worth knowing before comparing numbers with papers."""
    return [f"clip {clip} is under {split}/ but {SPLIT_VERSION} puts it in {split_of(clip)}"
            for split, clip in _by_clip(result) if split in ("train", "test") and split_of(clip) != split]


def _strict_problem(tmp: Path, target: Path) -> list[str]:
    try:
        open_dataset(tmp, strict=True)
    except DataError as error:
        return [str(error).replace(str(tmp), str(target))]
    return []


def _counts(result: ClipSet) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for clip in result.clips:
        variants = counts.setdefault(clip.split or "-", {})
        variants[clip.variant or "-"] = variants.get(clip.variant or "-", 0) + 1
    return dict(sorted(counts.items()))


# -- records ---------------------------------------------------------------------------------------------------
def _data_files(folder: Path) -> Iterator[str]:
    """Paths (POSIX, relative) of every file except the import's own records."""
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if rel.parts[0] != RECORD_DIR and (path.is_file() or path.is_symlink()):
            yield rel.as_posix()


def _write_records(tmp: Path, records: dict[str, Hashed], meta: dict) -> None:
    on_disk = set(_data_files(tmp))
    if on_disk != set(records):
        stray = sorted(on_disk ^ set(records))
        raise DataError(f"{tmp}: {len(stray)} file(s) not hashed as placed, first {stray[0]}; expected none (bug)")
    (tmp / RECORD_DIR).mkdir()
    with open(tmp / RECORD_DIR / "files.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("path", "size", "sha256"))
        writer.writerows((rel, *records[rel]) for rel in sorted(records))
    (tmp / RECORD_DIR / "import.json").write_text(json.dumps(meta, indent=2) + "\n")


def _read_listing(path: Path) -> dict[str, Hashed]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["path", "size", "sha256"]:
        found = ",".join(rows[0]) if rows else "nothing"
        raise DataError(f"{path}: expected the header path,size,sha256, found {found}")
    listing = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 3 or not row[1].isdigit() or not re.fullmatch(r"[0-9a-f]{64}", row[2]):
            raise DataError(f"{path}: line {number}: expected path,size,sha256, found {','.join(row)}")
        listing[row[0]] = (int(row[1]), row[2])
    return listing


def verify_import(target: str | Path) -> list[str]:
    """Re-hash an imported dataset against its ``files.csv``: every file missing, changed or unexpected."""
    target = Path(target).expanduser()
    listing = target / RECORD_DIR / "files.csv"
    if not listing.is_file():
        raise DataError(f"{listing}: no such file; expected a folder made by `m3svd import`")
    expected = _read_listing(listing)
    problems = []
    for rel, (size, sha) in expected.items():
        path = target / rel
        if not path.is_file():
            problems.append(f"{path}: missing (listed in files.csv)")
        elif (found := path.stat().st_size) != size:
            problems.append(f"{path}: {found} bytes, files.csv says {size}")
        elif (digest := sha256_file(path)) != sha:
            problems.append(f"{path}: sha256 {digest[:16]}…, files.csv says {sha[:16]}…")
    problems += [f"{target / rel}: not in files.csv (unexpected file)" for rel in sorted(set(_data_files(target))
                                                                                        - set(expected))]
    return problems


# -- the import --------------------------------------------------------------------------------------------------
def _check_name(name: str) -> None:
    if not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name:
        raise DataError(f"import name {name!r}: expected one folder name (no '/', not starting with '.')")


def _check_target(target: Path) -> None:
    if target.is_file():
        raise DataError(f"{target}: expected a new or empty folder for the import, found a file")
    if target.is_dir() and any(target.iterdir()):
        raise DataError(f"{target}: already holds files; refusing to import over them (choose another name "
                        "with --name, or remove it)")


def _open_source(source: Path, kind: str, parts: list[Path], staging: Path, link: bool, progress: bool):
    """``(tree to search, how to place a file, what to record about the source)``."""
    meta: dict = {"source": str(source), "source_kind": kind if len(parts) < 2 else f"multi-part {kind}"}
    if kind == "folder":
        meta["linked"] = link
        return source, _link_file if link else _copy_file, meta
    meta.update(_hash_parts(parts))
    staging.mkdir()
    return staging, _mover(_extract(source, kind, parts, staging, progress)), meta


def _report(target: Path, found: ClipSet, result: ClipSet, records: dict, name: str, meta: dict) -> ImportReport:
    videos = any(isinstance(s.source, VideoFile) for s in _streams(found))
    extracted = meta.get("extracted_frames", {}).get("frames", 0)
    return ImportReport(
        target=target, layout=found.layout, storage=("video" if videos else "images")
        + (" + PNG frames" if extracted else ""), clips=_counts(result), files=len(records),
        bytes=sum(size for size, _ in records.values()), missing=_missing(result, name), notes=_notes(result),
        extracted_frames=extracted,
    )


def _build(source: Path, kind: str, parts: list[Path], tmp: Path, staging: Path, target: Path, name: str,
           extract_frames: bool, link: bool, progress: bool) -> ImportReport:
    tree, place, meta = _open_source(source, kind, parts, staging, link, progress)
    found = _find_dataset(tree, source)
    streams = _streams(found)
    if extract_frames and not any(isinstance(s.source, VideoFile) for s in streams):
        raise DataError(f"{source}: --extract-frames needs a video release; found image frames (already frames)")
    records = _place(_plan(streams), tmp, place, progress)
    if extract_frames:
        meta["extracted_frames"] = _extract_frames(streams, tmp, records, progress)
    result = open_dataset(tmp, strict=False)
    report = _report(target, found, result, records, name, meta)
    report.missing = report.missing or _strict_problem(tmp, target)
    meta.update({
        "found_at": found.root.relative_to(tree).as_posix(), "toolkit_version": __version__,
        "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "layout": found.layout,
        "storage": report.storage, "opens_as": result.layout, "split_version": SPLIT_VERSION,
        "splits_from": "folders" if all(c.split for c in found.clips) else "split_of (no split folders)",
        "counts": report.clips, "files": report.files, "bytes": report.bytes, "missing": report.missing,
        "notes": report.notes,
    })
    _write_records(tmp, records, meta)
    return report


def _move_into_place(tmp: Path, target: Path) -> None:
    _check_target(target)  # again: another import may have finished meanwhile
    if target.is_dir():
        target.rmdir()
    os.replace(tmp, target)


def import_dataset(source: str | Path, root: str | Path, name: str = "full", extract_frames: bool = False,
                   progress: bool = True, link: bool = False) -> ImportReport:
    """Import ``source`` into ``root/name`` in the canonical layout, with hashes; all or nothing.

    ``link=True`` hard-links files of a folder source instead of copying them (archives are extracted
    anyway). ``extract_frames=True`` also decodes every video into lossless PNG frames beside it, marked
    ``lossy_derived`` in ``import.json`` since they carry the codec's loss.
    """
    source, root = Path(source).expanduser().absolute(), Path(root).expanduser()
    _check_name(name)
    target = root / name
    _check_target(target)
    kind, parts = _resolve_source(source)
    token = uuid.uuid4().hex[:12]
    tmp, staging = root / f".{name}.{token}.tmp", root / f".{name}.{token}.extract"
    try:
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            report = _build(source, kind, parts, tmp, staging, target, name, extract_frames, link, progress)
            _move_into_place(tmp, target)
        except OSError as error:  # disk full, no permission: the user's to fix, so one line, not a traceback
            raise DataError(f"{error.filename or root}: {error.strerror or error} (importing into {target})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report
