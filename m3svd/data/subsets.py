"""The downloadable subsets, as versioned data shipped with the package (``manifests/``).

A subset is either a list of files with hashes (``*.csv``: path in the canonical layout, size, sha256
and/or git blob SHA-1, mirror URLs in order), or a remote listing resolved at download time: a Google
Drive archive (no published hash: sha256 recorded on first download) or a figshare article (md5 from its
API, sha256 recorded on download).
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from m3svd.errors import DataError, did_you_mean


@dataclass(frozen=True)
class FileEntry:
    """One file: where it goes (relative to the subset's folder), where to get it, how to verify it."""

    path: str
    urls: tuple[str, ...]
    size: int | None = None
    sha256: str | None = None
    git_blob_sha1: str | None = None
    md5: str | None = None

    @property
    def verifiable(self) -> bool:
        return bool(self.sha256 or self.git_blob_sha1 or self.md5)


@dataclass(frozen=True)
class Subset:
    name: str
    version: str
    description: str
    source: str
    terms: str
    files_csv: str | None = None
    google_drive_id: str | None = None
    figshare_api: str | None = None
    size_hint: int | None = None
    files: tuple[FileEntry, ...] = field(default=(), repr=False)
    unverified: tuple[str, ...] = ()  # paths whose bytes the mirror snapshot lacked when the manifest was made
    excluded: str | None = None  # files of the source left out on purpose, and why

    @property
    def kind(self) -> str:
        return "files" if self.files_csv else "google-drive" if self.google_drive_id else "figshare"


def _read_csv(name: str) -> tuple[FileEntry, ...]:
    text = resources.files("m3svd.data").joinpath("manifests", name).read_text()
    return tuple(
        FileEntry(
            path=row["path"], urls=tuple(row["urls"].split()), size=int(row["size"]) if row["size"] else None,
            sha256=row["sha256"] or None, git_blob_sha1=row["git_blob_sha1"] or None,
        )
        for row in csv.DictReader(text.splitlines())
    )


def subsets() -> dict[str, Subset]:
    """Every subset ``m3svd download --subset`` knows, by name."""
    index = json.loads(resources.files("m3svd.data").joinpath("manifests", "subsets.json").read_text())
    out = {}
    for name, spec in index.items():
        files = _read_csv(spec["files"]) if "files" in spec else ()
        out[name] = Subset(
            name=name, version=spec["version"], description=spec["description"], source=spec["source"],
            terms=spec["terms"], files_csv=spec.get("files"), google_drive_id=spec.get("google_drive_id"),
            figshare_api=spec.get("figshare_api"), size_hint=spec.get("size_hint"), files=files,
            unverified=tuple(spec.get("unverified", ())), excluded=spec.get("excluded"),
        )
    return out


def get_subset(name: str) -> Subset:
    known = subsets()
    if name not in known:
        raise DataError(f"no subset {name!r}; choose from {', '.join(known)}" + did_you_mean(name, known))
    return known[name]


# -- hashing --------------------------------------------------------------------------------------------
CHUNK = 1 << 20


def file_hashes(path: Path, entry: FileEntry | None = None) -> dict[str, str]:
    """sha256 always, plus whichever other digests ``entry`` is verified by, in one read of the file."""
    size = path.stat().st_size
    digests = {"sha256": hashlib.sha256()}
    if entry is not None and entry.git_blob_sha1:
        digests["git_blob_sha1"] = hashlib.sha1(b"blob %d\0" % size)
    if entry is not None and entry.md5:
        digests["md5"] = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for d in digests.values():
                d.update(chunk)
    return {k: d.hexdigest() for k, d in digests.items()}


def mismatch(path: Path, entry: FileEntry) -> str | None:
    """Why ``path`` is not ``entry`` (one line), or ``None`` when size and every known digest agree."""
    size = path.stat().st_size
    if entry.size is not None and size != entry.size:
        return f"{entry.path}: expected {entry.size} bytes, found {size}"
    found = file_hashes(path, entry)
    for key in ("sha256", "git_blob_sha1", "md5"):
        expected = getattr(entry, key)
        if expected and found[key] != expected.lower():
            return f"{entry.path}: {key} mismatch (expected {expected[:12]}…, found {found[key][:12]}…)"
    return None
