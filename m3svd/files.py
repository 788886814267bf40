"""Small file helpers every part of the package shares: hashing, sizes, and writes that are never half done.

Every write here goes to a hidden temporary file in the target's own folder (same filesystem, so the rename is
atomic) and is moved into place with :func:`os.replace`: a crash or a full disk leaves the old file or the new
one, never a truncated mix. The temporary file is removed when the write fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (weights and videos can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def human(n: float | None, digits: int = 2) -> str:
    """A byte count for people, in powers of 1000 (``"1.25 MB"``); ``None`` is ``"unknown size"``."""
    if n is None:
        return "unknown size"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.{digits}f} {unit}"
        n /= 1000
    return f"{n:.{digits}f} GB"  # not reached: GB is the last unit


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on a clean exit it replaces ``path``, on an error it is removed.

    For writers that want a file name (``DataFrame.to_parquet``, ``torch.save``); the temporary name ends in
    ``.tmp``, so writers that add their own suffix to a bare name (``np.savez``) should be given an open handle.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_bytes(path: str | Path, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically; ``fsync=True`` also flushes it to the disk before the rename."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        if fsync:
            handle.flush()
            os.fsync(handle.fileno())


def atomic_text(path: str | Path, text: str, fsync: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_bytes(path, text.encode(), fsync=fsync)


def atomic_json(path: str | Path, value, indent: int | None = 2, sort_keys: bool = False, newline: bool = True,
                fsync: bool = False) -> None:
    """Write ``value`` as JSON to ``path`` atomically (with a final newline unless ``newline=False``)."""
    text = json.dumps(value, indent=indent, sort_keys=sort_keys)
    atomic_text(path, text + "\n" if newline else text, fsync=fsync)


def atomic_parquet(path: str | Path, table) -> None:
    """Write a pandas DataFrame to ``path`` as Parquet (no index) atomically, making the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def png_bytes(path: str | Path, frame, rgb: bool = True, compression: int | None = None,
              error: type[Exception] = ValueError) -> bytes:
    """A frame (``H×W`` grey, ``H×W×3`` RGB, or BGR with ``rgb=False``) encoded as PNG; ``path`` only names the
    file in the one-line ``error`` when OpenCV cannot encode it. ``compression``: zlib level 0–9 (OpenCV's
    default when None)."""
    import cv2

    image = frame if frame.ndim == 2 or not rgb else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    params = [] if compression is None else [cv2.IMWRITE_PNG_COMPRESSION, compression]
    ok, data = cv2.imencode(".png", image, params)
    if not ok:
        raise error(f"{path}: cannot encode PNG for a frame of shape {frame.shape}")
    return data.tobytes()


def write_png(path: str | Path, frame, rgb: bool = True, compression: int | None = None,
              error: type[Exception] = ValueError) -> bytes:
    """Encode ``frame`` with :func:`png_bytes` and write it to ``path`` atomically; returns the PNG bytes."""
    data = png_bytes(path, frame, rgb=rgb, compression=compression, error=error)
    atomic_bytes(path, data)
    return data
