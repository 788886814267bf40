"""Layouts on disk, auto-detected: which folders hold which modality, variant and clip.

``open_dataset(path)`` tries each known layout in turn and returns a :class:`ClipSet`. The layouts and
their quirks are described in the docstrings below and in ``docs/dataset-m3svd.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from m3svd.data.clip import Clip
from m3svd.data.frames import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ImageFiles, VideoFile, list_images, natural_key
from m3svd.errors import DataError, did_you_mean

SPLITS = ("train", "test", "val")

# Folder names of the M3SVD release (§5.1) and TemCoCo's names for the same data (§5.5), by stream.
M3SVD_FOLDERS = {
    "ir_clean": ("infrared_Enhance", "IR_en"),
    "vi_clean": ("visible_Enhance", "VI_en"),
    "ir_degraded": ("infrared_noise", "IR_noise", "IR_noise2", "IR_deg"),
    "vi_degraded": ("visible_Blur", "VI_blur", "VI_blur_new", "VI_deg"),
}

# Residual IR↔VIS shift (px) still counted as registered, per layout (measured, ``docs/dataset-m3svd.md``).
REGISTRATION_TOLERANCE_PX = {"tno": 5.0, "roadscene": 3.0}
DEFAULT_REGISTRATION_TOLERANCE_PX = 2.0


@dataclass
class ClipSet:
    """Every clip found under ``root``, all splits and variants."""

    root: Path
    layout: str
    clips: list[Clip]

    def select(self, split: str | None = None, variant: str | None = None) -> list[Clip]:
        if split is not None and split not in self.splits:
            raise DataError(
                f"{self.root}: no split {split!r}; found {', '.join(map(str, self.splits)) or 'none'}"
                + did_you_mean(split, [s for s in self.splits if s])
            )
        if variant is not None and variant not in self.variants:
            raise DataError(
                f"{self.root}: no {variant!r} variant in this {self.layout} layout; "
                f"found {', '.join(map(str, self.variants))}"
            )
        return [
            c for c in self.clips if (split is None or c.split == split) and (variant is None or c.variant == variant)
        ]

    def clip(self, name: str, split: str | None = None, variant: str | None = None) -> Clip:
        matches = [c for c in self.select(split, variant) if c.name == name]
        if not matches:
            raise DataError(f"{self.root}: no clip {name!r}" + did_you_mean(name, self.names))
        return matches[0]

    @property
    def splits(self) -> list[str | None]:
        return list(dict.fromkeys(c.split for c in self.clips))

    @property
    def variants(self) -> list[str | None]:
        return list(dict.fromkeys(c.variant for c in self.clips))

    @property
    def names(self) -> list[str]:
        return list(dict.fromkeys(c.name for c in self.clips))

    @property
    def registration_tolerance_px(self) -> float:
        return REGISTRATION_TOLERANCE_PX.get(self.layout, DEFAULT_REGISTRATION_TOLERANCE_PX)


def open_dataset(path: str | Path, strict: bool = True) -> ClipSet:
    """Detect the layout under ``path`` and return its clips (lazy: nothing is decoded).

    ``path="sample"`` gives the built-in procedural sample. With ``strict=False`` unpaired streams are
    kept (for ``m3svd check`` to report) instead of raising.
    """
    if str(path) == "sample":
        from m3svd.data.sample import sample_clipset

        return sample_clipset()
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such file or directory")
    if root.is_file():
        raise DataError(f"{root}: expected a dataset folder, found a file")
    for name, detect in DETECTORS:
        clips = detect(root, strict)
        if clips is not None:
            if not clips:
                raise DataError(f"{root}: looks like the {name} layout but holds no clips")
            if _lossy_derived(root):
                for clip in clips:
                    for source in (clip.ir_source, clip.vi_source):
                        source.lossy = True
            return ClipSet(root, name, clips)
    raise DataError(f"{root}: no known IR/VIS layout found; looked for {'; '.join(LOOKED_FOR)}")


# -- helpers ------------------------------------------------------------------------------------------
def _lossy_derived(root: Path) -> bool:
    """Frames that ``m3svd import --extract-frames`` decoded from video are PNG but carry the codec's loss."""
    for folder in (root, root.parent):
        record = folder / ".m3svd" / "import.json"
        if record.is_file():
            return bool(json.loads(record.read_text()).get("extracted_frames", {}).get("lossy_derived"))
    return False


def _subdirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))


def _videos(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES),
        key=lambda p: natural_key(p.name),
    )


def _split_dirs(root: Path, has_layout: Callable[[Path], bool]) -> list[tuple[str | None, Path]]:
    """``[(split, folder)]``: ``root`` itself, or its split sub-folders, that carry the layout."""
    if has_layout(root):
        return [(root.name if root.name in SPLITS else None, root)]
    return [(d.name, d) for d in _subdirs(root) if has_layout(d)]


def _clip_streams(folder: Path) -> dict[str, ImageFiles | VideoFile]:
    """Clips inside one stream folder: sub-folders of images, or one video file per clip."""
    streams: dict[str, ImageFiles | VideoFile] = {}
    for sub in _subdirs(folder):
        streams[sub.name] = ImageFiles(list_images(sub), folder=sub)
    for video in _videos(folder):
        streams.setdefault(video.stem, VideoFile(video))
    return streams


def _missing(folder: Path) -> ImageFiles:
    return ImageFiles([], folder=folder)


def _pair(name, ir, vi, ir_dir, vi_dir, strict, **kwargs) -> Clip | None:
    """A clip from two optional streams; an unpaired stream is an error (strict) or an empty partner."""
    if ir is None or vi is None:
        have, lack = (ir_dir, vi_dir) if vi is None else (vi_dir, ir_dir)
        if strict:
            raise DataError(f"clip {name}: found in {have} but not in {lack} (expected {lack / name})")
        ir = ir if ir is not None else _missing(ir_dir / name)
        vi = vi if vi is not None else _missing(vi_dir / name)
    return Clip(name, ir, vi, strict=strict, **kwargs)


# -- M3SVD image and video releases (§5.1, §5.2, TemCoCo names §5.5) ------------------------------------
def _m3svd_folders(folder: Path) -> dict[str, Path]:
    found = {}
    for stream, names in M3SVD_FOLDERS.items():
        for name in names:
            if (folder / name).is_dir():
                found[stream] = folder / name
                break
    return found


def detect_m3svd(root: Path, strict: bool) -> list[Clip] | None:
    """``{split}/{infrared_Enhance,visible_Enhance,infrared_noise,visible_Blur}/<clip>/`` or ``/<clip>.mp4``.

    Clean clips pair the two ``_Enhance`` streams; degraded clips pair ``infrared_noise`` with
    ``visible_Blur`` and carry the clean clip as ``reference``. Streams pair by identical frame file name.
    """
    split_dirs = _split_dirs(root, lambda d: len(_m3svd_folders(d)) >= 2)
    if not split_dirs:
        return None
    clips: list[Clip] = []
    for split, folder in split_dirs:
        dirs = _m3svd_folders(folder)
        streams = {key: _clip_streams(path) for key, path in dirs.items()}
        names = sorted(set().union(*(s.keys() for s in streams.values())), key=natural_key)
        for name in names:
            clean = degraded = None
            for variant in ("clean", "degraded"):
                ir_key, vi_key = f"ir_{variant}", f"vi_{variant}"
                if ir_key not in dirs and vi_key not in dirs:
                    continue
                ir_dir = dirs.get(ir_key, folder / M3SVD_FOLDERS[ir_key][0])
                vi_dir = dirs.get(vi_key, folder / M3SVD_FOLDERS[vi_key][0])
                ir = streams.get(ir_key, {}).get(name)
                vi = streams.get(vi_key, {}).get(name)
                if ir is None and vi is None:
                    continue
                clip = _pair(
                    name, ir, vi, ir_dir, vi_dir, strict, split=split, variant=variant, layout="m3svd",
                    reference=clean if variant == "degraded" else None,
                )
                clean, degraded = (clip, degraded) if variant == "clean" else (clean, clip)
            clips.extend(c for c in (clean, degraded) if c is not None)
    return clips


# -- GitHub sample layout (§5.3) -------------------------------------------------------------------------
def detect_github(root: Path, strict: bool) -> list[Clip] | None:
    """``Video/{split}/{infrared,visible}/<clip>.mp4``: the clean variant only, lossy."""
    def has(d: Path) -> bool:
        return (d / "infrared").is_dir() and (d / "visible").is_dir() and bool(_videos(d / "infrared"))

    base = root / "Video" if (root / "Video").is_dir() else root
    split_dirs = _split_dirs(base, has)
    if not split_dirs:
        return None
    clips = []
    for split, folder in split_dirs:
        ir = {p.stem: VideoFile(p) for p in _videos(folder / "infrared")}
        vi = {p.stem: VideoFile(p) for p in _videos(folder / "visible")}
        for name in sorted(set(ir) | set(vi), key=natural_key):
            clips.append(
                _pair(
                    name, ir.get(name), vi.get(name), folder / "infrared", folder / "visible", strict,
                    split=split, variant="clean", layout="m3svd-video",
                )
            )
    return clips


# -- TNO sequences (§12.1) -------------------------------------------------------------------------------
def _tno_key(path: Path) -> str:
    """``7400i.bmp`` and ``7400v.bmp`` pair: the trailing letter names the modality."""
    return re.sub(r"[a-zA-Z]+$", "", path.stem) or path.stem


def detect_tno(root: Path, strict: bool) -> list[Clip] | None:
    """``*_sequence/{thermal,visual}/NNNN{i,v}.bmp``, paired by numeric stem."""
    def is_seq(d: Path) -> bool:
        return (d / "thermal").is_dir() and (d / "visual").is_dir()

    if is_seq(root):
        seqs = [root]
    else:
        base = root / "FEL_images" if (root / "FEL_images").is_dir() else root
        seqs = [d for d in _subdirs(base) if d.name.endswith("_sequence") and is_seq(d)]
    if not seqs:
        return None
    clips = []
    for seq in seqs:
        ir_files, vi_files = list_images(seq / "thermal"), list_images(seq / "visual")
        clips.append(
            Clip(
                seq.name.removesuffix("_sequence"),
                ImageFiles(ir_files, [_tno_key(p) for p in ir_files], folder=seq / "thermal"),
                ImageFiles(vi_files, [_tno_key(p) for p in vi_files], folder=seq / "visual"),
                variant="clean", layout="tno", strict=strict,
            )
        )
    return clips


# -- image-pair sets: RoadScene, VIFB (§12.2, §12.3) -------------------------------------------------------
PAIR_FOLDERS = {
    "roadscene": ("cropinfrared", "crop_LR_visible"),
    "vifb": ("input/IR", "input/VI"),
    "pairs": ("IR", "VI"),
}


def _detect_pairs(root: Path, strict: bool, layout: str) -> list[Clip] | None:
    ir_dir, vi_dir = (root / name for name in PAIR_FOLDERS[layout])
    if not (ir_dir.is_dir() and vi_dir.is_dir()):
        return None
    ir = {p.stem: p for p in list_images(ir_dir)}
    vi = {p.stem: p for p in list_images(vi_dir)}
    clips = []
    for name in sorted(set(ir) | set(vi), key=natural_key):
        clips.append(
            _pair(
                name,
                ImageFiles([ir[name]], keys=["0"]) if name in ir else None,
                ImageFiles([vi[name]], keys=["0"]) if name in vi else None,
                ir_dir, vi_dir, strict, variant="clean", layout=layout,
            )
        )
    return clips


def detect_roadscene(root, strict):
    """RoadScene: ``cropinfrared/`` with ``crop_LR_visible/`` (not ``crop_HR_visible``); clips of one frame."""
    return _detect_pairs(root, strict, "roadscene")


def detect_vifb(root, strict):
    """VIFB: ``input/IR/<name>.jpg`` with ``input/VI/<name>.jpg``; clips of one frame."""
    return _detect_pairs(root, strict, "vifb")


def detect_pairs(root, strict):
    """Registered image pairs ``IR/<name>.<ext>`` with ``VI/<name>.<ext>`` (e.g. ``m3svd download --subset tno42``):
    one clip of one frame per name, so pairs of different sizes can share a folder."""
    return _detect_pairs(root, strict, "pairs")


# -- generic ir/ + vi/ ---------------------------------------------------------------------------------------
def detect_generic(root: Path, strict: bool) -> list[Clip] | None:
    """``ir/`` + ``vi/`` holding frames of one clip, one sub-folder per clip, or one video per clip."""
    ir_dir, vi_dir = root / "ir", root / "vi"
    if not (ir_dir.is_dir() and vi_dir.is_dir()):
        return None
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in ir_dir.iterdir()):
        return [Clip(root.name, ImageFiles(list_images(ir_dir), folder=ir_dir),
                     ImageFiles(list_images(vi_dir), folder=vi_dir), variant="clean", layout="generic", strict=strict)]
    ir, vi = _clip_streams(ir_dir), _clip_streams(vi_dir)
    return [
        _pair(name, ir.get(name), vi.get(name), ir_dir, vi_dir, strict, variant="clean", layout="generic")
        for name in sorted(set(ir) | set(vi), key=natural_key)
    ]


DETECTORS = [
    ("m3svd", detect_m3svd),
    ("m3svd-video", detect_github),
    ("tno", detect_tno),
    ("roadscene", detect_roadscene),
    ("vifb", detect_vifb),
    ("pairs", detect_pairs),
    ("generic", detect_generic),
]
LOOKED_FOR = [
    "M3SVD release [{split}/]{infrared_Enhance,visible_Enhance,infrared_noise,visible_Blur}/<clip>/ or <clip>.mp4",
    "GitHub sample [Video/]{split}/{infrared,visible}/<clip>.mp4",
    "TNO *_sequence/{thermal,visual}/",
    "RoadScene cropinfrared/ + crop_LR_visible/",
    "VIFB input/IR/ + input/VI/",
    "image pairs IR/ + VI/",
    "generic ir/ + vi/",
]
