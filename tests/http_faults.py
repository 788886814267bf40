"""A real HTTP server on 127.0.0.1 with injectable faults, for testing the dataset downloader.

Stdlib only.  Typical use::

    with FaultServer({"test/infrared/a.mp4": data}) as srv:
        srv.mirror("m1")                          # m1/<path> serves the same files
        srv.mirror("m2", up=False)                # every m2/<path> is a 404 (dead mirror)
        srv.fault("m1/test/infrared/a.mp4", "drop", after=1000)
        srv.fault("test/infrared/a.mp4", "503", times=2, retry_after=1)
        urls = [srv.url_for("test/infrared/a.mp4", prefix=p) for p in ("m2", "m1", "")]
        ...
        assert srv.count("m1/test/infrared/a.mp4") == 2

Paths are URL paths without the leading slash and without the query string; faults, throttles and
``count`` match them exactly, so a fault on ``m1/x`` does not touch ``x`` or ``m2/x``.  Faults are taken
by GET requests only; HEAD always answers the plain headers.

Fault kinds (``fault(path, kind, times=1, **options)``):

``drop``       headers with the full Content-Length, ``after`` body bytes (default half), then the TCP
               connection is aborted with an RST (``SO_LINGER`` 0), so the client gets
               ``ConnectionResetError``.  A client reading through a buffered reader (``resp.read(n)``) may
               lose the last partially filled chunk, so it can hold fewer than ``after`` bytes.
               ``rst=False`` instead does ``shutdown(SHUT_RDWR)`` and close (the client sees EOF before
               Content-Length: ``http.client.IncompleteRead`` with exactly ``after`` bytes).
``corrupt``    the right length, but the byte at ``offset`` (an index into this response's body, default
               the middle) is flipped (XOR 0xFF).
``truncate``   ``after`` body bytes (default half) of the advertised Content-Length, then a clean close
               (``Connection: close``, FIN): ``IncompleteRead`` on the client.
``stall``      headers and ``after`` body bytes (default 0), then silence for ``seconds`` (default 30), then
               the rest of the body (the client's read timeout should have fired by then).
               ``headers=False`` stalls before the status line, so the client's ``urlopen`` times out.
               ``stop()`` ends a stall at once and aborts that connection.
``no-range``   ignore any Range header: 200 with the full body.
``bad-range``  206 with a Content-Range (and a body) starting at the wrong offset: ``start`` if given,
               else 0 when the request asked for a start above 0, else half the size.
``html``       200 ``text/html`` with a small HTML page instead of the file (as Google Drive does on quota
               errors).
``"404"`` ...  any 4xx/5xx status as a string: that status with a short ``text/plain`` body.  ``"503"``
               and ``"429"`` carry ``Retry-After: retry_after`` (default 1; int seconds or an HTTP-date
               string); other statuses carry it only when ``retry_after`` is given.

Every request is logged in ``requests`` as ``{"method", "path", "range", "status", "sent", "query",
"headers"}`` (``sent``: body bytes written); the entry is added when the request arrives and ``status`` /
``sent`` are filled in as the response goes out.  Unexpected handler exceptions are kept in ``errors``
(tracebacks) instead of being printed; client disconnects are not errors.
"""

from __future__ import annotations

import hashlib
import html
import json
import mimetypes
import re
import secrets
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["FaultServer", "FAULT_KINDS"]

FAULT_KINDS = ("drop", "corrupt", "truncate", "stall", "no-range", "bad-range", "html")
"""Named fault kinds; any ``"4xx"`` / ``"5xx"`` status string is a fault kind too."""

CHUNK = 64 * 1024
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)
_ARTICLE = re.compile(r"v2/articles/(\d+)(/files)?/?")
_NDOWNLOADER = re.compile(r"ndownloader/files/(\d+)/?")
_DISCONNECTS = (ConnectionError, TimeoutError)

_QUOTA_PAGE = (
    "<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title>"
    '<meta http-equiv="content-type" content="text/html; charset=utf-8"/></head><body>'
    '<div class="uc-main"><div id="uc-text"><p class="uc-error-caption">Sorry, you can\'t view or download this '
    "file at this time.</p><p class=\"uc-error-subcaption\">Too many users have viewed or downloaded this file "
    "recently. Please try accessing the file again later.</p></div></div></body></html>"
)


@dataclass
class _Body:
    """One response before Range handling: ``file`` bodies honour Range / If-Range."""

    status: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)
    file: bool = False


@dataclass
class _DriveFile:
    content: bytes
    filename: str
    confirm: bool
    legacy: bool
    mtime: float
    token: str
    cookie: str
    uuids: set[str] = field(default_factory=set)


def _text(status: int, message: str | None = None) -> _Body:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    body = f"{status} {message or phrase}\n".encode()
    return _Body(status, body, {"Content-Type": "text/plain; charset=utf-8"})


def _html(page: str, status: int = 200, headers: dict[str, str] | None = None) -> _Body:
    return _Body(status, page.encode(), {"Content-Type": "text/html; charset=utf-8", **(headers or {})})


def _parse_range(spec: str | None, size: int) -> tuple[int, int] | str | None:
    """``(start, end)`` inclusive, ``"unsatisfiable"``, or ``None`` to ignore the header (absent, malformed,
    multi-range)."""
    if not spec:
        return None
    m = _RANGE.match(spec)
    if not m or (not m[1] and not m[2]):
        return None
    if not m[1]:  # suffix range: the last N bytes
        n = int(m[2])
        if n == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - n), size - 1
    start = int(m[1])
    end = int(m[2]) if m[2] else size - 1
    if m[2] and end < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


def _etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:16] + '"'


def _file_body(content: bytes, filename: str, mtime: float) -> _Body:
    ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return _Body(200, content, {
        "Content-Type": ctype,
        "Accept-Ranges": "bytes",
        "ETag": _etag(content),
        "Last-Modified": formatdate(mtime, usegmt=True),
        "Content-Disposition": f'attachment; filename="{filename}"',
    }, file=True)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    fault_server: FaultServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can hang on a machine without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], _DISCONNECTS):
            self.fault_server._error(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FaultServer/1.0"
    timeout = 30  # an idle keep-alive connection is dropped after this
    server: _HTTPServer
    _entry: dict | None = None

    # -- plumbing ---------------------------------------------------------------------------------------
    def setup(self) -> None:
        super().setup()
        self.server.fault_server._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fault_server._track(self.connection, False)

    def log_message(self, format, *args) -> None:  # silence the default request log on stderr
        pass

    def log_request(self, code="-", size="-") -> None:
        if self._entry is not None:
            self.server.fault_server._update(self._entry, status=int(code) if isinstance(code, int) else code)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        fs = self.server.fault_server
        parts = urlsplit(self.path)
        path = unquote(parts.path).lstrip("/")
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self._entry = fs._log(self.command, path, parts.query, self.headers)
        kind, opts = (None, {}) if head else fs._take_fault(path)
        try:
            self._respond(fs, path, query, head, kind, opts)
        except _DISCONNECTS:
            self.close_connection = True

    # -- responses --------------------------------------------------------------------------------------
    def _respond(self, fs: FaultServer, path: str, query: dict[str, str], head: bool, kind, opts) -> None:
        if kind is not None and kind.isdigit():
            body = _text(int(kind))
            retry_after = opts.get("retry_after", 1 if kind in ("503", "429") else None)
            if retry_after is not None:
                body.headers["Retry-After"] = str(retry_after)
        elif kind == "html":
            body = _html(_QUOTA_PAGE)
        else:
            body = fs._route(path, query) or _text(404)
        status, content, headers = body.status, body.content, dict(body.headers)
        if body.file:
            status, content, headers = self._ranged(content, headers, kind, opts)
        self._send(fs, status, headers, content, head, kind, opts, fs._throttle_for(path))

    def _ranged(self, content: bytes, headers: dict[str, str], kind, opts) -> tuple[int, bytes, dict[str, str]]:
        size = len(content)
        spec = self.headers.get("Range")
        if kind == "bad-range":
            asked = _parse_range(spec, size)
            asked_start = asked[0] if isinstance(asked, tuple) else 0
            start = int(opts.get("start", 0 if asked_start > 0 else size // 2))
            start = min(max(start, 0), max(size - 1, 0))
            headers["Content-Range"] = f"bytes {start}-{max(size - 1, start)}/{size}"
            return 206, content[start:], headers
        if kind == "no-range" or spec is None:
            return 200, content, headers
        if_range = self.headers.get("If-Range")
        if if_range is not None and if_range.strip() not in (headers.get("ETag"), headers.get("Last-Modified")):
            return 200, content, headers  # the client's copy is stale: send everything
        rng = _parse_range(spec, size)
        if rng is None:
            return 200, content, headers
        if rng == "unsatisfiable":
            kept = {k: v for k, v in headers.items() if k in ("Accept-Ranges", "ETag", "Last-Modified")}
            kept["Content-Range"] = f"bytes */{size}"
            return 416, b"", kept
        start, end = rng
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return 206, content[start:end + 1], headers

    def _send(self, fs: FaultServer, status: int, headers: dict[str, str], content: bytes, head: bool,
              kind, opts, bps: int | None) -> None:
        size = len(content)
        if kind == "corrupt" and content:
            off = min(max(int(opts.get("offset", size // 2)), 0), size - 1)
            content = content[:off] + bytes([content[off] ^ 0xFF]) + content[off + 1:]
        limit = size
        if kind in ("drop", "truncate"):
            limit = min(size, max(0, int(opts.get("after", size // 2))))
            headers["Connection"] = "close"
            self.close_connection = True
        stall_at = None
        if kind == "stall":
            if opts.get("headers", True):
                stall_at = min(size, max(0, int(opts.get("after", 0))))
            elif not self._pause(fs, opts):
                return
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if head:
            return
        chunk = CHUNK if not bps else max(1, min(CHUNK, bps // 20))
        pos = 0
        while True:
            if pos == stall_at:
                stall_at = None
                if not self._pause(fs, opts):
                    return
            if pos >= limit:
                break
            end = min(limit, pos + chunk, limit if stall_at is None else stall_at)
            fs._update(self._entry, sent=end - pos)  # before the write: a client may read the log at once
            self.wfile.write(content[pos:end])
            if bps and fs._stopping.wait((end - pos) / bps):
                self._abort(rst=True)
                return
            pos = end
        if kind == "drop":
            self._abort(rst=bool(opts.get("rst", True)))

    def _pause(self, fs: FaultServer, opts) -> bool:
        """Sleep for the stall; ``False`` (connection aborted) when the server stops meanwhile."""
        if fs._stopping.wait(float(opts.get("seconds", 30))):
            self._abort(rst=True)
            return False
        return True

    def _abort(self, rst: bool) -> None:
        self.close_connection = True
        sock = self.connection
        try:
            if rst:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.rfile.close()  # the makefile() reader holds a reference that would keep the descriptor open
        sock.close()


class FaultServer:
    """Threaded HTTP/1.1 server on ``127.0.0.1:<free port>``, started on construction; a context manager.

    ``files`` maps URL paths (no leading slash) to contents; ``root``, when given, serves any file under
    that directory by its relative path as well (read on each request).
    """

    def __init__(self, files: dict[str, bytes] | None = None, root: Path | None = None):
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._stopped = False
        self._files: dict[str, tuple[bytes, float]] = {}
        self._faults: dict[str, deque[tuple[str, dict]]] = {}
        self._throttles: dict[str, int] = {}
        self._mirrors: dict[str, bool] = {}
        self._drive: dict[str, _DriveFile] = {}
        self._articles: dict[int, dict] = {}
        self._figshare_files: dict[int, tuple[str, bytes, float]] = {}
        self._next_figshare_file = 1
        self._connections: set[socket.socket] = set()
        self.root = Path(root) if root is not None else None
        self.requests: list[dict] = []
        self.errors: list[str] = []
        for path, content in (files or {}).items():
            self.add(path, content)
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.fault_server = self
        self.port: int = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"FaultServer:{self.port}", daemon=True)
        self._thread.start()

    # -- lifecycle --------------------------------------------------------------------------------------
    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving; wakes stalled / throttled handlers (their connections are aborted) and closes idle
        keep-alive connections.  Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)

    # -- content ----------------------------------------------------------------------------------------
    def url_for(self, path: str, prefix: str = "") -> str:
        """``url + prefix + path`` (a ``/`` is put after a non-empty prefix that lacks one; the path is
        percent-quoted)."""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return self.url + quote(prefix.lstrip("/") + path.lstrip("/"), safe="/")

    def add(self, path: str, content: bytes) -> None:
        with self._lock:
            self._files[path.lstrip("/")] = (bytes(content), time.time())

    def mirror(self, prefix: str, up: bool = True) -> None:
        """Register (or re-mark) ``prefix`` as a mirror: ``<prefix>/<path>`` serves ``<path>`` when up, and
        everything under it is a 404 when down."""
        with self._lock:
            self._mirrors[prefix.strip("/")] = up

    def fault(self, path: str, kind: str, times: int = 1, **options) -> None:
        """Queue ``kind`` for the next ``times`` GET requests of exactly ``path`` (see the module doc)."""
        if kind not in FAULT_KINDS and not (kind.isdigit() and len(kind) == 3 and 400 <= int(kind) < 600):
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS} or a 4xx/5xx status")
        with self._lock:
            queue = self._faults.setdefault(path.lstrip("/"), deque())
            queue.extend((kind, dict(options)) for _ in range(times))

    def throttle(self, path: str, bytes_per_second: int) -> None:
        """Send ``path``'s body in small chunks at about ``bytes_per_second`` (0 or less: unthrottled)."""
        with self._lock:
            if bytes_per_second and bytes_per_second > 0:
                self._throttles[path.lstrip("/")] = int(bytes_per_second)
            else:
                self._throttles.pop(path.lstrip("/"), None)

    def count(self, path: str) -> int:
        """GET requests seen for ``path`` (any query string is ignored)."""
        path = path.split("?", 1)[0].lstrip("/")
        with self._lock:
            return sum(1 for r in self.requests if r["method"] == "GET" and r["path"] == path)

    # -- Google Drive -----------------------------------------------------------------------------------
    def drive(self, file_id: str, content: bytes, filename: str, confirm: bool = True, legacy: bool = False) -> None:
        """Serve ``content`` as Drive file ``file_id`` at ``uc?export=download&id=<id>``.

        ``confirm``: answer with the large-file warning page first; its ``download-form`` points at
        ``download?id=&export=download&confirm=t&uuid=`` which serves the file (a wrong or missing uuid or
        confirm gets the page again).  ``legacy``: the page sets a cookie ``download_warning_<x>=<token>``
        (and links ``uc?export=download&confirm=<token>&id=<id>``), and ``uc?...&confirm=<token>`` serves
        the file.  Without ``confirm`` the file is served directly.
        """
        token = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
                        for _ in range(4))
        cookie = "download_warning_" + hashlib.sha256(file_id.encode()).hexdigest()[:12] + "_" + file_id
        with self._lock:
            self._drive[file_id] = _DriveFile(bytes(content), filename, confirm, legacy, time.time(), token, cookie)

    def _drive_route(self, endpoint: str, query: dict[str, str]) -> _Body | None:
        with self._lock:
            d = self._drive.get(query.get("id", ""))
        if d is None:
            return None
        serve = _file_body(d.content, d.filename, d.mtime)
        if not d.confirm:
            return serve
        if d.legacy:
            if endpoint == "uc" and query.get("confirm") == d.token:
                return serve
            return self._legacy_page(query["id"], d)
        if endpoint == "download" and query.get("confirm") == "t":
            with self._lock:
                if query.get("uuid") in d.uuids:
                    return serve
        return self._warning_page(query["id"], d)

    def _warning_page(self, file_id: str, d: _DriveFile) -> _Body:
        uuid = secrets.token_hex(4) + "-" + secrets.token_hex(2) + "-" + secrets.token_hex(2) + "-" + \
            secrets.token_hex(2) + "-" + secrets.token_hex(6)
        with self._lock:
            d.uuids.add(uuid)
        fid, name = html.escape(file_id), html.escape(d.filename)
        return _html(
            "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>"
            '<meta http-equiv="content-type" content="text/html; charset=utf-8"/></head><body>'
            '<div class="uc-main"><div id="uc-text"><p class="uc-warning-caption">Google Drive can\'t scan this '
            f'file for viruses.</p><p class="uc-warning-subcaption"><span class="uc-name-size"><a href="/open?id='
            f'{fid}">{name}</a> ({len(d.content)} bytes)</span> is too large for Google to scan for viruses. '
            "Would you still like to download this file?</p>"
            f'<form id="download-form" action="{self.url}download" method="get">'
            '<input type="submit" id="uc-download-link" class="goog-inline-block jfk-button jfk-button-action" '
            'value="Download anyway"/>'
            f'<input type="hidden" name="id" value="{fid}">'
            '<input type="hidden" name="export" value="download">'
            '<input type="hidden" name="confirm" value="t">'
            f'<input type="hidden" name="uuid" value="{uuid}">'
            "</form></div></div></body></html>"
        )

    def _legacy_page(self, file_id: str, d: _DriveFile) -> _Body:
        href = html.escape(f"/uc?export=download&confirm={d.token}&id={file_id}")
        return _html(
            "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>"
            f'<p class="uc-warning-caption">{html.escape(d.filename)} is too large for Google to scan for '
            f'viruses.</p><a id="uc-download-link" class="goog-inline-block jfk-button jfk-button-action" '
            f'href="{href}">Download anyway</a></body></html>',
            headers={"Set-Cookie": f"{d.cookie}={d.token}; Path=/; HttpOnly"},
        )

    # -- figshare ---------------------------------------------------------------------------------------
    def figshare(self, article_id: int, files: dict[str, bytes]) -> dict:
        """Publish a figshare article: ``v2/articles/<id>`` (and ``.../files``) list the files, each
        downloadable at ``ndownloader/files/<n>``.  Returns the article JSON as served."""
        now = time.time()
        entries = []
        with self._lock:
            for name, content in files.items():
                n = self._next_figshare_file
                self._next_figshare_file += 1
                self._figshare_files[n] = (name, bytes(content), now)
                md5 = hashlib.md5(content).hexdigest()
                entries.append({"id": n, "name": name, "size": len(content), "is_link_only": False,
                                "download_url": f"{self.url}ndownloader/files/{n}",
                                "supplied_md5": md5, "computed_md5": md5})
            article = {"id": int(article_id), "title": f"Article {article_id}", "files": entries}
            self._articles[int(article_id)] = article
        return json.loads(json.dumps(article))

    def _figshare_route(self, path: str) -> _Body | None:
        if m := _ARTICLE.fullmatch(path):
            with self._lock:
                article = self._articles.get(int(m[1]))
            if article is None:
                body = {"message": "Entity not found: article", "code": "EntityNotFound"}
                return _Body(404, json.dumps(body).encode(), {"Content-Type": "application/json; charset=utf-8"})
            payload = article["files"] if m[2] else article
            return _Body(200, json.dumps(payload).encode(), {"Content-Type": "application/json; charset=utf-8"})
        if m := _NDOWNLOADER.fullmatch(path):
            with self._lock:
                found = self._figshare_files.get(int(m[1]))
            return _file_body(found[1], found[0], found[2]) if found else None
        return None

    # -- used by the handler ----------------------------------------------------------------------------
    def _route(self, path: str, query: dict[str, str]) -> _Body | None:
        first, _, rest = path.partition("/")
        with self._lock:
            up = self._mirrors.get(first)
        if up is not None:
            if not up:
                return None
            path = rest
        with self._lock:
            found = self._files.get(path)
        if found is not None:
            return _file_body(found[0], path.rsplit("/", 1)[-1], found[1])
        if self.root is not None and path:
            try:
                root = self.root.resolve()
                target = (root / path).resolve()
                if target.is_relative_to(root) and target.is_file():
                    return _file_body(target.read_bytes(), target.name, target.stat().st_mtime)
            except (OSError, ValueError):  # unreadable, or a name the filesystem rejects
                return None
        if path in ("uc", "download"):
            return self._drive_route(path, query)
        return self._figshare_route(path)

    def _take_fault(self, path: str) -> tuple[str | None, dict]:
        with self._lock:
            queue = self._faults.get(path)
            return queue.popleft() if queue else (None, {})

    def _throttle_for(self, path: str) -> int | None:
        with self._lock:
            return self._throttles.get(path)

    def _log(self, method: str, path: str, query: str, headers) -> dict:
        entry = {"method": method, "path": path, "range": headers.get("Range"), "status": None, "sent": 0,
                 "query": query, "headers": dict(headers.items())}
        with self._lock:
            self.requests.append(entry)
        return entry

    def _update(self, entry: dict | None, status=None, sent: int = 0) -> None:
        if entry is None:
            return
        with self._lock:
            if status is not None:
                entry["status"] = status
            entry["sent"] += sent

    def _track(self, sock: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def _error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)
