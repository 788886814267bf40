"""Small file helpers every part of the package shares."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (weights and videos can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def writable_folder(path: str | Path, what: str) -> Path:
    """``path`` as a folder this process can write into, made if missing; otherwise one line naming it.

    Checked before any work starts, so a read-only or wrong-type output path fails at once, not after hours of
    fusion or at the first file written. ``what`` names the flag or role (``--out``, ``--html``).
    """
    import os
    import uuid

    from m3svd.errors import M3SVDError

    folder = Path(path).expanduser()
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                found = "is a regular file" if parent == folder else f"lies under {parent}, a regular file"
                raise M3SVDError(f"{folder}: {what} must be a folder, but it {found}")
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".m3svd-write-test-{uuid.uuid4().hex}"
        probe.touch()
        os.unlink(probe)
    except OSError as error:
        raise M3SVDError(f"{folder}: {what} is not writable ({error.strerror or error})") from None
    return folder


def os_error_line(error: OSError) -> str:
    """One line for a file-system error the user can fix: the path(s), then the reason."""
    reason = error.strerror or str(error)
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    return f"{' → '.join(paths)}: {reason}" if paths else reason
