"""The weights registry: every file a method, metric or flow estimator can use (``m3svd weights ...``).

``registry.toml`` says, per file, where it is published (pinned revisions), its size and hashes, the terms and who
uses it. Files live in the weights cache, :func:`cache_dir` (``<M3SVD_ROOT or the user cache>/weights``):

- a file missing there is downloaded on first use through :mod:`m3svd.data.download` (temporary file, resume,
  mirrors, hash check, atomic rename), mirrors from ``$M3SVD_WEIGHTS_MIRROR`` tried first;
- a file already there (or in torch's hub cache, for torchvision's files) is re-hashed against the registry and
  refused in one line when it differs: never replaced, never loaded. A verified file is stamped (size, mtime,
  sha256) so later runs skip the re-hash; ``m3svd weights verify`` re-hashes everything;
- files with no published hash (Baidu Netdisk) are held to the sha256 recorded the first time they were used;
- ``M3SVD_OFFLINE=1`` never opens a connection: a missing file is one line naming it and where to put it.

Files the user names (``--weights PATH``, ``$M3SVD_RESNET18``, the ``$M3SVD_WEIGHTS`` folder) are the user's own and
are used as given; results record their sha256 either way.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from m3svd.errors import M3SVDError, did_you_mean
from m3svd.files import atomic_json
from m3svd.paths import default_root

__all__ = ["WeightsFile", "WeightsMissing", "WeightsRefused", "Located", "registry", "get", "cache_dir", "offline",
           "mirrors", "locate", "ensure", "ensure_all", "verify"]

OFFLINE_ENV = "M3SVD_OFFLINE"
MIRROR_ENV = "M3SVD_WEIGHTS_MIRROR"
STAMPS = ".m3svd/weights.json"


class WeightsMissing(M3SVDError, FileNotFoundError):
    """Weights a method, metric or flow estimator needs are not on this machine (the message names the file)."""


class WeightsRefused(M3SVDError):
    """A weights file on disk does not have the registry's size or hash: it is neither loaded nor replaced."""


@dataclass(frozen=True)
class WeightsFile:
    """One registry entry (see ``registry.toml`` for the meaning of each field)."""

    name: str
    file: str
    description: str
    terms: str
    users: tuple[str, ...]
    hash_source: str
    urls: tuple[str, ...] = ()
    size: int | None = None
    sha256: str | None = None
    git_blob_sha1: str | None = None
    sha256_prefix: str | None = None
    manual: str | None = None
    torch_hub: bool = False
    env: str | None = None
    hint: str | None = None

    @property
    def published_hash(self) -> bool:
        return bool(self.sha256 or self.git_blob_sha1)

    @property
    def entry(self):
        """The downloader's view of this file (path inside the cache, URLs, size, hashes)."""
        from m3svd.data.subsets import FileEntry

        return FileEntry(self.file, self.urls, self.size, self.sha256, self.git_blob_sha1)

    def hash_line(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.git_blob_sha1:
            return f"git blob {self.git_blob_sha1}"
        return "sha256 recorded on first use"


@dataclass(frozen=True)
class Located:
    """A verified weights file: where it is, its sha256, and how it got there (cache, torch-hub, downloaded)."""

    path: Path
    sha256: str
    how: str
    requests: int = 0
    bytes: int = 0


_REGISTRY: dict[str, WeightsFile] | None = None


def registry() -> dict[str, WeightsFile]:
    """Every registered file, by name (read once from ``registry.toml``)."""
    global _REGISTRY
    if _REGISTRY is None:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python < 3.11
            import tomli as tomllib

        doc = tomllib.loads(resources.files("m3svd.weights").joinpath("registry.toml").read_text())
        out = {}
        for name, spec in doc.items():
            item = WeightsFile(name=name, **{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
            if item.sha256 and item.sha256_prefix and not item.sha256.startswith(item.sha256_prefix):
                raise M3SVDError(f"weights registry: {name}: sha256 {item.sha256[:12]}… does not start with the "
                                 f"published prefix {item.sha256_prefix}")
            out[name] = item
        _REGISTRY = out
    return _REGISTRY


def get(name: str) -> WeightsFile:
    known = registry()
    if name not in known:
        raise M3SVDError(f"no weights named {name!r}; see `m3svd weights ls`" + did_you_mean(name, known))
    return known[name]


def cache_dir() -> Path:
    return default_root() / "weights"


def offline() -> bool:
    """``$M3SVD_OFFLINE`` set to anything but ``""``, ``0``, ``false`` or ``no`` (the CLI's ``--offline`` sets it)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def mirrors() -> list[str]:
    """Base URLs from ``$M3SVD_WEIGHTS_MIRROR`` (space or comma separated), tried before the registry's URLs."""
    return [m for m in os.environ.get(MIRROR_ENV, "").replace(",", " ").split() if m]


def _torch_hub_dir() -> Path:
    torch_home = os.environ.get("TORCH_HOME") or str(Path.home() / ".cache" / "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def locate(name: str) -> Path | None:
    """Where ``name`` is on disk (cache first, then torch's hub cache for torchvision's files), unverified."""
    item = get(name)
    candidates = [cache_dir() / item.file]
    if item.torch_hub:
        candidates.append(_torch_hub_dir() / Path(item.file).name)
    return next((p for p in candidates if p.is_file()), None)


# -- stamps: recorded hashes of files with none published, and verified (size, mtime) -------------------------------
def _stamps_path() -> Path:
    return cache_dir() / STAMPS


def _read_stamps() -> dict:
    path = _stamps_path()
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return {}  # an unreadable stamp file only costs a re-hash; files with no published hash are re-recorded


def _write_stamp(key: str, value: dict | None) -> None:
    path = _stamps_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path.parent / "stamps.lock"):
        stamps = _read_stamps()
        if value is None:
            stamps.pop(key, None)
        else:
            stamps[key] = value
        atomic_json(path, stamps, indent=1, sort_keys=True, newline=False)


STATE_DICT_WRAPPERS = ("model", "params", "params_ema", "state_dict")


def load_state_dict(path: str | Path, what: str, error: type[Exception] = WeightsMissing) -> dict:
    """A state dict of tensors from a ``.pth`` (plain, or wrapped in the keys of :data:`STATE_DICT_WRAPPERS`, the
    first present taken, as often as they nest) or a ``.safetensors`` file, for every network in the package.

    ``module.`` prefixes (DataParallel) are dropped; int8 tensors stored with a ``scale::<key>`` companion (the
    conformance goldens) are dequantised. An unreadable file or one that holds something else is one line, raised
    as ``error`` (each caller's own error class).
    """
    import torch

    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as failure:  # noqa: BLE001 - any unreadable file gets the same one line
        raise error(f"{path}: cannot read {what} weights as a torch state dict or safetensors "
                    f"({type(failure).__name__}: {failure})") from None
    while isinstance(state, dict):
        inner = next((state[key] for key in STATE_DICT_WRAPPERS if isinstance(state.get(key), dict)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise error(f"{path}: expected a state dict of {what} tensors, found {type(state).__name__}")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    scales = {k for k in state if k.startswith("scale::")}
    if scales:
        state = {k: v.float() * state[f"scale::{k}"] if f"scale::{k}" in state else v
                 for k, v in state.items() if k not in scales}
    return state


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive advisory lock, so two processes never append to the same partial download."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path):
        yield


def _expected_key(item: WeightsFile) -> str:
    """What a stamp was verified against: a stamp from another registry version counts for nothing."""
    return f"{item.size}:{item.sha256}:{item.git_blob_sha1}"


def _check(item: WeightsFile, path: Path, rehash: bool = False) -> str:
    """The sha256 of ``path`` once it is shown to be ``item``; :class:`WeightsRefused` in one line otherwise."""
    from m3svd.data.subsets import file_hashes

    st = path.stat()
    key = str(path)
    stamp = _read_stamps().get(key)
    if (not rehash and stamp and stamp.get("size") == st.st_size and stamp.get("mtime_ns") == st.st_mtime_ns
            and stamp.get("expected") == _expected_key(item)):
        return stamp["sha256"]
    refuse = ("; refusing to load it and leaving it in place: delete it to download it again, or pass its path "
              "explicitly to use it anyway")
    if item.size is not None and st.st_size != item.size:
        raise WeightsRefused(f"{path}: {item.name} weights should be {item.size} bytes, found {st.st_size}{refuse}")
    found = file_hashes(path, item.entry)
    expected = {"sha256": item.sha256, "git_blob_sha1": item.git_blob_sha1}
    if not item.published_hash and stamp and stamp.get("recorded"):
        expected["sha256"] = stamp["sha256"]  # held to the hash recorded when it was first used
    for kind, want in expected.items():
        if want and found[kind] != want.lower():
            origin = "as recorded on first use" if kind == "sha256" and not item.sha256 else "from the registry"
            raise WeightsRefused(f"{path}: {item.name} weights {kind} mismatch (expected {want[:12]}… {origin}, "
                                 f"found {found[kind][:12]}…){refuse}")
    _write_stamp(key, {"sha256": found["sha256"], "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                       "expected": _expected_key(item), "recorded": not item.published_hash,
                       "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return found["sha256"]


# -- first use ---------------------------------------------------------------------------------------------------------
def _missing(item: WeightsFile, dest: Path, reason: str) -> WeightsMissing:
    where = f"download {item.urls[0]} to {dest}" if item.urls else f"put it at {dest}"
    extra = f", or set ${item.env} to its path" if item.env else ""
    extra += f", {item.hint}" if item.hint else ""
    return WeightsMissing(f"{item.description}: {Path(item.file).name} is not in the weights cache and {reason}; "
                          f"{where}{extra}")


def ensure(name: str, *, mirror: list[str] | None = None, options=None, progress: bool | None = None) -> Located:
    """The verified file for registry entry ``name``, downloading it on first use.

    Raises :class:`WeightsMissing` (offline, manual-only file not placed, download failed) or
    :class:`WeightsRefused` (the file on disk is not the registry's), each in one line.
    """
    item = get(name)
    dest = cache_dir() / item.file
    found = locate(name)
    if found is not None:
        return Located(found, _check(item, found), "cache" if found == dest else "torch-hub")
    if item.manual or not item.urls:
        raise _missing(item, dest, f"is published only on {item.manual}: download it by hand; its sha256 is "
                                   "recorded the first time it is used")
    if offline():
        raise _missing(item, dest, f"{OFFLINE_ENV}=1 forbids downloading")
    return _download(item, dest, (mirror if mirror is not None else mirrors()), options, progress)


def _download(item: WeightsFile, dest: Path, bases: list[str], options, progress: bool | None) -> Located:
    from tqdm.auto import tqdm

    from m3svd.data import download as dl

    options = options or dl.Options(workers=1)
    partial = cache_dir() / ".partial"
    with _lock(partial / f"{item.name}.lock"):
        if dest.is_file():  # another process finished it while this one waited
            return Located(dest, _check(item, dest), "cache")
        (entry,) = dl.with_mirrors([item.entry], bases)
        show = sys.stderr.isatty() if progress is None else progress
        with tqdm(total=item.size, unit="B", unit_scale=True, desc=Path(item.file).name, disable=not show) as bar:
            result = dl.Fetcher(cache_dir(), partial, options, bar.update).fetch(entry)
    if result.status == "failed":
        raise _missing(item, dest, f"could not be downloaded ({result.error})")
    sha256 = _check(item, dest, rehash=True)
    return Located(dest, sha256, "downloaded", requests=result.attempts, bytes=result.bytes)


def ensure_all(names, **kwargs) -> dict[str, Located]:
    """:func:`ensure` for several files; every missing one named in a single line (a refused file stops at once)."""
    found, problems = {}, []
    for name in names:
        try:
            found[name] = ensure(name, **kwargs)
        except WeightsMissing as missing:
            problems.append(str(missing))
    if problems:
        raise WeightsMissing("; ".join(problems))
    return found


def verify(names=None) -> list[tuple[str, str, str]]:
    """Re-hash every registry file on disk: ``(name, status, line)`` with status ``ok``, ``missing`` or ``refused``."""
    out = []
    for name in names or registry():
        item = get(name)
        path = locate(name)
        if path is None:
            out.append((name, "missing", f"{name}: not in {cache_dir()}"))
            continue
        try:
            sha256 = _check(item, path, rehash=True)
        except WeightsRefused as refused:
            out.append((name, "refused", str(refused)))
            continue
        out.append((name, "ok", f"{name}: {path} sha256 {sha256[:12]}… verified"))
    return out
