"""Frame sources: where the pixels of one modality of one clip come from.

Every source yields ``uint8`` frames as stored (``H×W`` or ``H×W×3`` RGB); the :class:`~m3svd.data.clip.Clip`
turns them into grey IR and RGB VIS. Sources are lazy: listing files or opening a container decodes nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from m3svd.errors import DataError

_FRAME_NUMBER = re.compile(r"(\d+)\D*$")  # the frame number: the last digits of a name (0007, 7400i, frame_12)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")
LOSSLESS_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
# BT.601 luma weights, applied in float64 (every convention's grey reader and ``to_grey`` agree on this).
BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def natural_key(name: str):
    """Sort key that orders ``2.png`` before ``10.png`` (unpadded, 4- and 6-digit names alike)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: natural_key(p.name),
    )


def to_grey(frame: np.ndarray) -> np.ndarray:
    """Grey ``uint8`` from a stored frame: exact for 1 channel or 3 identical channels, BT.601 otherwise."""
    if frame.ndim == 2:
        return frame
    if (frame[..., 0] == frame[..., 1]).all() and (frame[..., 0] == frame[..., 2]).all():
        return np.ascontiguousarray(frame[..., 0])
    return np.rint(frame.astype(np.float64) @ BT601).astype(np.uint8)


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """``H×W×3`` RGB ``uint8``; grey frames are replicated to three channels."""
    if frame.ndim == 2:
        return np.repeat(frame[:, :, None], 3, axis=2)
    return frame


def read_image(path: Path) -> np.ndarray:
    """Decode one image file to ``uint8`` ``H×W`` or ``H×W×3`` (RGB); one clear error if it cannot."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise DataError(f"{path}: cannot decode image (expected PNG/JPEG/BMP, found {data.size} bytes)")
    if image.dtype != np.uint8:
        raise DataError(f"{path}: expected 8-bit pixels, found {image.dtype}")
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = image[..., :3]
        elif image.shape[2] == 1:
            image = image[..., 0]
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


class FrameSource:
    """One modality of one clip. Subclasses define ``__len__``, ``read(i)``, ``paths``, ``lossy``, ``fps``."""

    paths: tuple[Path, ...] = ()
    lossy: bool = False
    fps: float | None = None

    def __len__(self) -> int:
        raise NotImplementedError

    def read(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def _check_index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame {i} out of range for {self.describe()} ({n} frames)")
        return i % n

    def describe(self) -> str:
        return str(self.paths[0].parent if len(self.paths) > 1 else self.paths[0]) if self.paths else "<memory>"

    def identity(self) -> str:
        """Changes whenever the frames may have: every file's path, size and modification time."""
        return "\n".join(f"{p} {(st := p.stat()).st_size} {st.st_mtime_ns}" for p in self.paths)


class ImageFiles(FrameSource):
    """Frames stored one file each; ``keys`` are the names used to pair modalities (file name by default)."""

    def __init__(self, paths: Sequence[Path], keys: Sequence[str] | None = None, folder: Path | None = None):
        self.paths = tuple(Path(p) for p in paths)
        self.folder = Path(folder) if folder is not None else None
        self.keys = tuple(keys) if keys is not None else tuple(p.name for p in self.paths)
        self.lossy = any(p.suffix.lower() not in LOSSLESS_SUFFIXES for p in self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> np.ndarray:
        return read_image(self.paths[self._check_index(i)])

    def describe(self) -> str:
        return str(self.folder) if self.folder is not None else super().describe()

    def numbering_gaps(self) -> list[tuple[str, str]]:
        """``[(before, after)]`` file names around each jump in the frame numbering.

        Frames are paired and ordered by position, so a number missing from every stream would silently
        make frames 2 and 4 neighbours. A constant step (every 5th frame exported) is not a gap; names
        without a trailing number (single image pairs) have no numbering to check.
        """
        numbers = []
        for key in self.keys:
            match = _FRAME_NUMBER.search(Path(key).stem)
            if match is None:
                return []
            numbers.append(int(match.group(1)))
        steps = np.diff(numbers)
        if len(steps) == 0 or steps.min() <= 0:
            return []
        return [(self.paths[i].name, self.paths[i + 1].name) for i in np.flatnonzero(steps != steps.min())]


class ArrayFrames(FrameSource):
    """Frames already in memory (the built-in sample, tests): ``T×H×W`` or ``T×H×W×3`` ``uint8``."""

    def __init__(self, frames: np.ndarray, fps: float | None = None):
        if frames.dtype != np.uint8 or frames.ndim not in (3, 4):
            raise DataError(f"expected T×H×W(×3) uint8 frames, found {frames.dtype} {frames.shape}")
        self.frames = frames
        self.fps = fps

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, i: int) -> np.ndarray:
        return self.frames[self._check_index(i)]

    def identity(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.frames).data).hexdigest()


class VideoFile(FrameSource):
    """A video container decoded with PyAV.

    The frame count is exact: it is the number of video packets with a timestamp, found by demuxing
    (no decoding) when first needed, not the container's header estimate. Sequential reads continue the
    decoder; any other read seeks to the previous keyframe and decodes forward. Safe in DataLoader
    workers, pickled or forked: each process opens its own container on first read.
    """

    lossy = True

    def __init__(self, path: Path):
        self.path = Path(path)
        self.paths = (self.path,)
        self._pts: list[int] | None = None
        self._fps: float | None = None
        self._container = None
        self._frames = None  # decoder iterator
        self._next = None  # index of the frame the iterator yields next
        self._pid = os.getpid()  # a decoder inherited through fork is not used: reopen in the child
        self._lock = threading.Lock()

    def __getstate__(self):
        return {"path": self.path, "_pts": self._pts, "_fps": self._fps}

    def __setstate__(self, state):
        self.__init__(state["path"])
        self._pts, self._fps = state["_pts"], state["_fps"]

    def _open(self):
        import av

        try:
            return av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as error:
            raise DataError(f"{self.path}: cannot open video ({error})") from None

    def _index(self) -> list[int]:
        if self._pts is None:
            container = self._open()
            try:
                if not container.streams.video:
                    raise DataError(f"{self.path}: expected a video stream, found none")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.base_rate
                self._fps = float(rate) if rate else None
                self._pts = sorted(p.pts for p in container.demux(stream) if p.pts is not None and p.size)
            finally:
                container.close()
        return self._pts

    @property
    def fps(self) -> float | None:  # type: ignore[override]
        self._index()
        return self._fps

    def __len__(self) -> int:
        return len(self._index())

    def read(self, i: int) -> np.ndarray:
        i = self._check_index(i)
        if self._pid != os.getpid():
            self._inherited = (self._container, self._frames)  # never freed here: freeing a forked decoder hangs
            self.__setstate__(self.__getstate__())
        with self._lock:
            if self._container is None:
                self._container = self._open()
            stream = self._container.streams.video[0]
            if self._next != i:
                self._container.seek(self._pts[i], stream=stream, backward=True, any_frame=False)
                self._frames = self._container.decode(stream)
                self._next = None
            target = self._pts[i]
            for frame in self._frames:
                if frame.pts is None or frame.pts < target:
                    continue
                if frame.pts > target:
                    break
                self._next = i + 1
                return frame.to_ndarray(format="rgb24")
            self._next = None
            raise DataError(f"{self.path}: frame {i} could not be decoded (stream ended early)")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._frames = self._next = None
