"""Verified, resumable downloads of the public M3SVD subsets (``m3svd download``).

Invariant: a file appears in the dataset tree only after its size and hashes were checked. Bytes arrive
in ``<root>/.partial/<subset>/<path>.part`` (kept across crashes and resumed with an HTTP Range request),
are verified, then renamed into place. Each file tries its mirrors in order; on each mirror transient
failures (dropped or stalled connections, 429/5xx, honouring ``Retry-After``) are retried with
exponential backoff, while 404 moves on to the next mirror at once.
"""

from __future__ import annotations

import email.utils
import html.parser
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from http.client import HTTPException
from pathlib import Path

from m3svd import __version__
from m3svd.data.subsets import CHUNK, FileEntry, Subset, file_hashes, mismatch
from m3svd.errors import M3SVDError
from m3svd.files import atomic_json, human

USER_AGENT = f"m3svd/{__version__} (+https://github.com/m3svd)"
DRIVE_URL = "https://drive.google.com/uc?export=download&id={id}"
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(M3SVDError):
    """A file could not be fetched and verified from any mirror."""


@dataclass
class Options:
    workers: int = 4
    timeout: float = 30.0  # seconds without a byte before a connection counts as stalled
    retries: int = 4  # attempts per mirror
    backoff: float = 1.0  # first wait (s), doubled per attempt
    max_wait: float = 120.0  # cap on any wait, Retry-After included
    sleep: Callable[[float], None] = time.sleep


@dataclass
class FileResult:
    path: str
    status: str  # "downloaded", "present", "failed"
    bytes: int = 0
    attempts: int = 0
    url: str | None = None
    error: str | None = None


@dataclass
class DownloadReport:
    subset: str
    target: Path
    files: list[FileResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.status != "failed" for f in self.files)

    def format(self) -> str:
        counts = {s: sum(f.status == s for f in self.files) for s in ("downloaded", "present", "failed")}
        total = sum(f.bytes for f in self.files if f.status == "downloaded")
        by_error: dict[str, list[str]] = {}
        for f in self.files:
            if f.status == "failed":
                by_error.setdefault(f.error or "", []).append(f.path)
        lines = [
            f"failed {paths[0]}" + (f" and {len(paths) - 1} more" if len(paths) > 1 else "") + f": {error}"
            for error, paths in by_error.items()
        ]
        lines.append(
            f"{self.subset} → {self.target}: {counts['downloaded']} downloaded ({human(total)}), "
            f"{counts['present']} already present, {counts['failed']} failed"
        )
        return "\n".join(lines)


# -- one HTTP transfer -------------------------------------------------------------------------------------
class _Retry(Exception):
    """A transient failure: try this mirror again after ``wait`` seconds (None: use the backoff)."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


class _NextMirror(Exception):
    """This mirror cannot serve the file (404, an HTML page, ...): go to the next one."""


def _retry_after(headers) -> float | None:
    value = headers.get("Retry-After") if headers else None
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    when = email.utils.parsedate_to_datetime(value)
    return max(0.0, when.timestamp() - time.time()) if when else None


def _open(url: str, timeout: float, offset: int = 0, opener=None):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return (opener or urllib.request.build_opener()).open(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416:
            return error  # the caller decides: the partial may already be complete
        if error.code in TRANSIENT_STATUS:
            raise _Retry(f"HTTP {error.code} from {_host(url)}", _retry_after(error.headers)) from None
        raise _NextMirror(f"HTTP {error.code} from {_host(url)}") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, socket.gaierror):
            raise _NextMirror(f"cannot resolve {_host(url)} (offline?)") from None
        raise _Retry(f"cannot connect to {_host(url)}: {reason}") from None
    except (TimeoutError, OSError, HTTPException) as error:
        raise _Retry(f"{_host(url)}: {error or type(error).__name__}") from None


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _content_range_start(value: str | None) -> int | None:
    found = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value or "")
    return int(found.group(1)) if found else None


def _transfer(url: str, part: Path, entry: FileEntry, options: Options, progress, opener=None) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its size); raises _Retry / _NextMirror."""
    offset = part.stat().st_size if part.exists() else 0
    if entry.size is not None and offset > entry.size:
        part.unlink()
        offset = 0
    response = _open(url, options.timeout, offset, opener)
    with response:
        status = response.status
        if status == 416:
            total = re.match(r"bytes \*/(\d+)", response.headers.get("Content-Range", ""))
            if total and int(total.group(1)) == offset:
                return  # already complete; verification decides
            part.unlink(missing_ok=True)
            raise _Retry(f"{_host(url)} refused the resume range; starting over", 0)
        if "text/html" in response.headers.get("Content-Type", "") and not entry.path.endswith((".html", ".htm")):
            raise _NextMirror(f"{_host(url)} answered with a web page instead of the file")
        mode = "ab"
        if offset and status == 200:  # the server ignored Range: start over
            progress(-offset)
            offset, mode = 0, "wb"
        elif status == 206 and _content_range_start(response.headers.get("Content-Range")) != offset:
            part.unlink(missing_ok=True)
            progress(-offset)
            raise _Retry(f"{_host(url)} resumed at the wrong offset; starting over", 0)
        length = response.headers.get("Content-Length")
        expected = offset + int(length) if length and length.isdigit() else None
        written = offset
        try:
            with open(part, mode) as out:
                while chunk := response.read1(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
                    progress(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        except (TimeoutError, OSError, HTTPException) as error:
            reason = error or type(error).__name__
            raise _Retry(f"{_host(url)}: connection lost after {written} bytes ({reason})") from None
        if expected is not None and written < expected:
            raise _Retry(f"{_host(url)}: connection closed after {written} of {expected} bytes")


# -- one file, all mirrors ----------------------------------------------------------------------------------
class Fetcher:
    """Fetch files into ``target`` via ``partial``, verified; thread-safe, one progress callback for all."""

    def __init__(self, target: Path, partial: Path, options: Options, progress: Callable[[int], None]):
        self.target, self.partial, self.options = target, partial, options
        self._progress_lock = threading.Lock()
        self._progress = progress

    def progress(self, n: int) -> None:
        with self._progress_lock:
            self._progress(n)

    def fetch(self, entry: FileEntry, opener=None) -> FileResult:
        dest = self.target / entry.path
        if dest.exists() and (entry.size is None or dest.stat().st_size == entry.size):
            return FileResult(entry.path, "present")
        part = self.partial / (entry.path + ".part")
        part.parent.mkdir(parents=True, exist_ok=True)
        if part.exists():
            self.progress(part.stat().st_size)  # resumed bytes count as done
        attempts, errors = 0, []
        for url in entry.urls:
            wait = self.options.backoff
            for attempt in range(self.options.retries):
                attempts += 1
                try:
                    _transfer(url, part, entry, self.options, self.progress, opener)
                except _NextMirror as error:
                    errors.append(str(error))
                    break
                except _Retry as error:
                    errors.append(str(error))
                    if attempt + 1 < self.options.retries:
                        self.options.sleep(min(self.options.max_wait, wait if error.wait is None else error.wait))
                        wait *= 2
                    continue
                problem = mismatch(part, entry)
                if problem is None:
                    size = part.stat().st_size
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(part, dest)
                    return FileResult(entry.path, "downloaded", size, attempts, url)
                errors.append(f"{_host(url)}: {problem}")
                self.progress(-part.stat().st_size)
                part.unlink()  # bytes that failed verification are never kept
        # A partial left by transient failures stays for the next run to resume.
        return FileResult(entry.path, "failed", 0, attempts, None, "; ".join(errors[-3:]) or "no URL to try")


# -- remote listings: figshare and Google Drive --------------------------------------------------------------
def _read_json(url: str, timeout: float):
    try:
        with _open(url, timeout) as response:
            return json.load(response)
    except (_Retry, _NextMirror) as error:
        raise DownloadError(f"cannot list files from {url}: {error}") from None


def figshare_files(subset: Subset, timeout: float = 30.0) -> tuple[FileEntry, ...]:
    """The article's files from the figshare API, each verified by the md5 figshare computed."""
    article = _read_json(subset.figshare_api, timeout)
    return tuple(
        FileEntry(path=f["name"], urls=(f["download_url"],), size=f.get("size"), md5=f.get("computed_md5") or None)
        for f in article.get("files", [])
    )


class _DriveForm(html.parser.HTMLParser):
    """The large-file warning page: ``<form id="download-form" action=...>`` with hidden inputs."""

    def __init__(self):
        super().__init__()
        self.action, self.fields, self._inside = None, {}, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == "download-form":
            self.action, self._inside = attrs.get("action"), True
        elif tag == "input" and self._inside and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._inside = False


def drive_download_url(file_id: str, timeout: float = 30.0, start_url: str | None = None) -> tuple[str, str | None]:
    """``(url, filename)`` that serves the file itself, through Drive's large-file confirmation if shown.

    Current flow: the warning page holds a form whose action and hidden fields (``confirm``, ``uuid``)
    make the real URL. Legacy flow: a ``download_warning_*`` cookie holds the token for ``&confirm=``.
    """
    import http.cookiejar

    url = start_url or DRIVE_URL.format(id=file_id)
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    try:
        response = _open(url, timeout, opener=opener)
    except (_Retry, _NextMirror) as error:
        raise DownloadError(f"Google Drive file {file_id}: {error}") from None
    with response:
        if "text/html" not in response.headers.get("Content-Type", ""):
            return url, _filename(response.headers)
        page = response.read(1 << 20).decode("utf-8", "replace")
    form = _DriveForm()
    form.feed(page)
    token = next((c.value for c in jar if c.name.startswith("download_warning")), None)
    if form.action:
        url = form.action + "?" + urllib.parse.urlencode(form.fields)
    elif token:
        url = f"{url}&confirm={urllib.parse.quote(token)}"
    else:
        raise DownloadError(
            f"Google Drive file {file_id}: expected the file or its confirmation page, found another page "
            "(quota exceeded or access denied? download it in a browser, then `m3svd import` it)"
        )
    try:  # the confirmed URL names the file; read its headers only
        with _open(url, timeout, opener=opener) as response:
            if "text/html" in response.headers.get("Content-Type", ""):
                raise DownloadError(f"Google Drive file {file_id}: the confirmation was not accepted")
            return url, _filename(response.headers)
    except (_Retry, _NextMirror) as error:
        raise DownloadError(f"Google Drive file {file_id}: {error}") from None


def _filename(headers) -> str | None:
    found = re.search(r'filename="?([^";]+)"?', headers.get("Content-Disposition", "") or "")
    return Path(found.group(1)).name if found else None


# -- the command -----------------------------------------------------------------------------------------------
def target_dir(subset: Subset, root: Path) -> Path:
    """Where a subset's files go: its own folder, or ``archives/`` for an archive to be imported."""
    return root / ("archives" if subset.kind == "google-drive" else subset.name)


def _recorded(target: Path) -> dict:
    path = target / ".m3svd" / "downloaded.json"
    return json.loads(path.read_text()) if path.exists() else {}


def resolve(subset: Subset, root: Path, options: Options) -> tuple[FileEntry, ...]:
    """The files of ``subset``; remote listings (figshare, Google Drive) are asked for, and files with no
    published hash are held to the sha256 recorded when they were first downloaded."""
    if subset.kind == "files":
        return subset.files
    if subset.kind == "figshare":
        files = figshare_files(subset, options.timeout)
    else:
        url, name = drive_download_url(subset.google_drive_id, options.timeout)
        files = (FileEntry(path=name or f"{subset.name}.zip", urls=(url,)),)
    recorded = _recorded(target_dir(subset, root))
    return tuple(replace(f, sha256=f.sha256 or recorded.get(f.path, {}).get("sha256")) for f in files)


def with_mirrors(files, mirrors: list[str]) -> tuple[FileEntry, ...]:
    """Put ``mirror + path`` before each file's own URLs (institutional mirrors, local caches, tests)."""
    if not mirrors:
        return tuple(files)
    return tuple(replace(f, urls=tuple(m.rstrip("/") + "/" + f.path for m in mirrors) + f.urls) for f in files)


def download(subset: Subset, root: Path, options: Options | None = None, mirrors: list[str] | None = None,
             files: tuple[FileEntry, ...] | None = None, show_progress: bool | str = True) -> DownloadReport:
    """Download every file of ``subset`` missing under ``root/<subset>``, verified, in parallel. ``show_progress``:
    a tqdm bar (True), plain lines with an ETA (``"lines"``), or nothing (False)."""
    from tqdm.auto import tqdm

    options = options or Options()
    files = with_mirrors(files if files is not None else resolve(subset, root, options), mirrors or [])
    target, partial = target_dir(subset, root), root / ".partial" / subset.name
    known = [f.size for f in files if f.size is not None]
    total = sum(known) if len(known) == len(files) else None
    if show_progress == "lines":  # a log, not a terminal: a line every 10 % or 30 s
        from m3svd.progress import LineProgress

        meter = LineProgress(total, subset.name, amount=human)
    else:
        meter = tqdm(total=total, unit="B", unit_scale=True, desc=subset.name, disable=not show_progress)
    with meter as bar:
        fetcher = Fetcher(target, partial, options, bar.update)
        with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
            results = list(pool.map(fetcher.fetch, files))
    if subset.kind != "files":
        _record(target, files, results)
    _prune(partial)
    _prune(partial.parent)
    return DownloadReport(subset.name, target, results)


def _record(target: Path, files, results) -> None:
    """Store the sha256 of files that had none published, so later runs and ``--verify`` hold them to it."""
    recorded = _recorded(target)
    for entry, result in zip(files, results, strict=True):
        if result.status == "downloaded":
            recorded[entry.path] = {
                "size": result.bytes, "sha256": file_hashes(target / entry.path)["sha256"], "md5": entry.md5,
                "url": result.url, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
    path = target / ".m3svd" / "downloaded.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_json(path, recorded, indent=1, sort_keys=True, newline=False)


def _prune(folder: Path) -> None:
    """Remove empty partial folders left behind (non-empty ones hold resumable bytes)."""
    if not folder.exists():
        return
    for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def verify(subset: Subset, root: Path, files: tuple[FileEntry, ...] | None = None, show_progress=True) -> list[str]:
    """Re-hash what is on disk: one line per missing or mismatching file (empty when all is well)."""
    from tqdm.auto import tqdm

    target = target_dir(subset, root)
    if files is None and subset.kind != "files":
        recorded = _recorded(target)
        if not recorded:
            return [f"{target}: nothing recorded yet (run `m3svd download --subset {subset.name}` first)"]
        files = tuple(FileEntry(p, (), v["size"], v["sha256"]) for p, v in recorded.items())
    problems = []
    for entry in tqdm(files if files is not None else subset.files, desc="verifying", unit="file",
                      disable=not show_progress):
        path = target / entry.path
        if not path.exists():
            problems.append(f"{entry.path}: missing")
        elif reason := mismatch(path, entry):
            problems.append(reason)
    return problems
