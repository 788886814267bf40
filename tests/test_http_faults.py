"""Self-test of the fault-injecting HTTP server in ``http_faults.py``, driven by plain urllib."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import threading
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from http_faults import FaultServer

pytestmark = pytest.mark.network

PATH = "test/infrared/0111_1716.mp4"
DATA = os.urandom(1000) + bytes(range(256)) * 40  # 11240 bytes


@pytest.fixture
def srv():
    with FaultServer({PATH: DATA, "small.txt": b"hello"}) as server:
        yield server
        assert server.errors == []


def get(url: str, timeout: float = 5, **headers) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)``; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read()


def read_chunks(url: str, timeout: float = 5, size: int = 1024, **headers) -> tuple[bytearray, BaseException | None]:
    """Read the body the way a downloader does; returns what arrived and the exception that ended it, if any."""
    got = bytearray()
    resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    try:
        while chunk := resp.read(size):
            got += chunk
    except (http.client.IncompleteRead, ConnectionError, TimeoutError) as exc:
        return got, exc
    finally:
        resp.close()
    return got, None


# -- plain HTTP ------------------------------------------------------------------------------------------
def test_get_serves_file_with_headers(srv):
    status, headers, body = get(srv.url_for(PATH))
    assert (status, body) == (200, DATA)
    assert headers["Content-Length"] == str(len(DATA))
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"] == '"' + hashlib.sha256(DATA).hexdigest()[:16] + '"'
    assert headers["Last-Modified"].endswith("GMT")
    assert headers["Content-Disposition"] == 'attachment; filename="0111_1716.mp4"'
    assert headers["Content-Type"] == "video/mp4"
    assert srv.url.startswith("http://127.0.0.1:") and srv.url.endswith("/")
    assert srv.url_for("a b.txt", prefix="m1") == srv.url + "m1/a%20b.txt"


def test_ranges(srv):
    url = srv.url_for(PATH)
    status, headers, body = get(url, Range="bytes=100-")
    assert (status, body) == (206, DATA[100:])
    assert headers["Content-Range"] == f"bytes 100-{len(DATA) - 1}/{len(DATA)}"
    assert headers["Content-Length"] == str(len(DATA) - 100)
    status, headers, body = get(url, Range="bytes=10-19")
    assert (status, body, headers["Content-Range"]) == (206, DATA[10:20], f"bytes 10-19/{len(DATA)}")
    status, _, body = get(url, Range="bytes=-5")
    assert (status, body) == (206, DATA[-5:])
    status, _, body = get(url, Range=f"bytes=10-{10 * len(DATA)}")  # end past the size is clamped
    assert (status, body) == (206, DATA[10:])
    status, _, body = get(url, Range="bytes=0-1,5-6")  # multi-range is not supported: the whole file
    assert (status, body) == (200, DATA)


def test_unsatisfiable_range_is_416(srv):
    status, headers, body = get(srv.url_for(PATH), Range=f"bytes={len(DATA)}-")
    assert (status, body) == (416, b"")
    assert headers["Content-Range"] == f"bytes */{len(DATA)}"


def test_if_range(srv):
    url = srv.url_for(PATH)
    etag = get(url)[1]["ETag"]
    assert get(url, Range="bytes=5-", **{"If-Range": etag})[0] == 206
    status, _, body = get(url, Range="bytes=5-", **{"If-Range": '"stale"'})
    assert (status, body) == (200, DATA)


def test_head_and_unknown_paths(srv):
    srv.fault(PATH, "500")
    request = urllib.request.Request(srv.url_for(PATH), method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(DATA))
        assert resp.read() == b""
    assert get(srv.url_for(PATH))[0] == 500  # HEAD left the fault for the next GET
    assert get(srv.url_for("nope.bin"))[0] == 404
    assert get(srv.url)[0] == 404


def test_root_directory_and_add(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.bin").write_bytes(b"on disk")
    (tmp_path.parent / "outside.bin").write_bytes(b"secret")
    with FaultServer(root=tmp_path) as server:
        assert get(server.url_for("sub/x.bin"))[2] == b"on disk"
        (tmp_path / "sub" / "later.bin").write_bytes(b"read lazily")
        assert get(server.url_for("sub/later.bin"))[2] == b"read lazily"
        server.add("mem.bin", b"in memory")
        assert get(server.url_for("mem.bin"))[2] == b"in memory"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/../outside.bin")
        assert conn.getresponse().status == 404
        conn.close()
        assert get(server.url_for("sub"))[0] == 404
        assert server.errors == []


# -- faults ----------------------------------------------------------------------------------------------
def test_drop_aborts_the_connection(srv):
    srv.fault(PATH, "drop", after=4000)
    got, exc = read_chunks(srv.url_for(PATH))
    assert isinstance(exc, (http.client.IncompleteRead, ConnectionError))
    assert 0 < len(got) <= 4000 and DATA.startswith(got)
    assert srv.requests[-1]["sent"] == 4000
    # rst=False closes with a FIN: http.client's read(n) then just returns b"" (a short body the client must
    # catch by comparing with Content-Length); read() raises IncompleteRead.
    srv.fault(PATH, "drop", after=3000, rst=False)
    got, exc = read_chunks(srv.url_for(PATH))
    assert exc is None or isinstance(exc, http.client.IncompleteRead)
    assert bytes(got) == DATA[:3000]
    srv.fault(PATH, "drop", after=3000, rst=False)
    with urllib.request.urlopen(srv.url_for(PATH), timeout=5) as resp:
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    assert info.value.partial == DATA[:3000]
    assert get(srv.url_for(PATH))[2] == DATA  # the fault was used up


def test_drop_on_a_range_request(srv):
    srv.fault(PATH, "drop")  # default: half of this response's body
    got, exc = read_chunks(srv.url_for(PATH), Range="bytes=1000-")
    assert exc is not None
    assert srv.requests[-1]["status"] == 206 and srv.requests[-1]["sent"] == (len(DATA) - 1000) // 2
    assert DATA[1000:].startswith(got)


def test_corrupt(srv):
    srv.fault(PATH, "corrupt")
    status, _, body = get(srv.url_for(PATH))
    assert status == 200 and len(body) == len(DATA) and body != DATA
    assert [i for i in range(len(DATA)) if body[i] != DATA[i]] == [len(DATA) // 2]
    assert hashlib.sha256(body).digest() != hashlib.sha256(DATA).digest()
    srv.fault(PATH, "corrupt", offset=7)
    body = get(srv.url_for(PATH))[2]
    assert body[7] == DATA[7] ^ 0xFF and body[:7] == DATA[:7] and body[8:] == DATA[8:]


def test_truncate(srv):
    srv.fault(PATH, "truncate", after=500)
    with urllib.request.urlopen(srv.url_for(PATH), timeout=5) as resp:
        assert resp.headers["Content-Length"] == str(len(DATA))
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
    assert info.value.partial == DATA[:500]


@pytest.mark.parametrize(("kind", "retry_after"), [("404", None), ("500", None), ("503", "1"), ("429", "1")])
def test_status_faults(srv, kind, retry_after):
    srv.fault(PATH, kind)
    status, headers, _ = get(srv.url_for(PATH))
    assert status == int(kind)
    assert headers.get("Retry-After") == retry_after
    assert get(srv.url_for(PATH))[0] == 200


def test_status_fault_options_and_times(srv):
    srv.fault(PATH, "503", times=2, retry_after=7)
    assert [get(srv.url_for(PATH))[1].get("Retry-After") for _ in range(2)] == ["7", "7"]
    assert get(srv.url_for(PATH))[0] == 200
    with pytest.raises(ValueError):
        srv.fault(PATH, "explode")


def test_stall_trips_the_read_timeout(srv):
    srv.fault(PATH, "stall", after=100, seconds=5)
    start = time.monotonic()
    got, exc = read_chunks(srv.url_for(PATH), timeout=1, size=50)
    assert isinstance(exc, TimeoutError)
    assert bytes(got) == DATA[:100]
    assert time.monotonic() - start < 3


def test_stall_before_headers_trips_urlopen(srv):
    srv.fault(PATH, "stall", headers=False, seconds=5)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        urllib.request.urlopen(srv.url_for(PATH), timeout=1)


def test_short_stall_then_the_rest(srv):
    srv.fault(PATH, "stall", after=10, seconds=0.3)
    assert get(srv.url_for(PATH), timeout=5)[2] == DATA


def test_no_range_and_bad_range(srv):
    url = srv.url_for(PATH)
    srv.fault(PATH, "no-range")
    status, headers, body = get(url, Range="bytes=100-")
    assert (status, body) == (200, DATA) and "Content-Range" not in headers
    srv.fault(PATH, "bad-range")
    status, headers, body = get(url, Range="bytes=100-")
    assert status == 206 and not headers["Content-Range"].startswith("bytes 100-")
    start = int(headers["Content-Range"].split()[1].split("-")[0])
    assert body == DATA[start:]
    srv.fault(PATH, "bad-range", start=50)
    assert get(url, Range="bytes=100-")[1]["Content-Range"] == f"bytes 50-{len(DATA) - 1}/{len(DATA)}"


def test_html_fault(srv):
    srv.fault(PATH, "html")
    status, headers, body = get(srv.url_for(PATH))
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body.lstrip().lower().startswith(b"<!doctype html")


def test_throttle(srv):
    srv.throttle(PATH, 40_000)
    start = time.monotonic()
    assert get(srv.url_for(PATH))[2] == DATA
    assert time.monotonic() - start > 0.2  # 11240 bytes at 40 kB/s is about 0.28 s
    srv.throttle(PATH, 0)
    start = time.monotonic()
    get(srv.url_for(PATH))
    assert time.monotonic() - start < 0.2


# -- mirrors ---------------------------------------------------------------------------------------------
def test_mirrors(srv):
    srv.mirror("m1")
    srv.mirror("m2", up=False)
    assert get(srv.url_for(PATH, prefix="m1"))[2] == DATA
    assert get(srv.url_for(PATH, prefix="m2"))[0] == 404
    assert get(srv.url_for("small.txt", prefix="m2"))[0] == 404
    assert get(srv.url_for(PATH, prefix="m3"))[0] == 404  # not a mirror: an unknown path
    srv.fault("m1/" + PATH, "500")
    assert get(srv.url_for(PATH))[0] == 200  # a fault is bound to its exact path
    assert get(srv.url_for(PATH, prefix="m1"))[0] == 500
    srv.mirror("m2", up=True)
    assert get(srv.url_for(PATH, prefix="m2"))[2] == DATA
    assert srv.count("m1/" + PATH) == 2 and srv.count("m2/" + PATH) == 2


# -- Google Drive ----------------------------------------------------------------------------------------
class FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.action, self.fields, self.links = None, {}, []
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == "download-form":
            self.action, self._in_form = a.get("action"), True
        elif tag == "input" and self._in_form and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def parse(page: bytes) -> FormParser:
    parser = FormParser()
    parser.feed(page.decode())
    return parser


def test_drive_confirm_flow(srv):
    srv.drive("abcDEF123", DATA, "M3SVD.zip")
    status, headers, page = get(srv.url + "uc?export=download&id=abcDEF123")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    form = parse(page)
    assert form.action == srv.url + "download"
    assert form.fields["id"] == "abcDEF123" and form.fields["export"] == "download" and form.fields["confirm"] == "t"
    assert form.fields["uuid"]
    url = form.action + "?" + urlencode(form.fields)
    status, headers, body = get(url)
    assert (status, body) == (200, DATA)
    assert headers["Content-Disposition"] == 'attachment; filename="M3SVD.zip"'
    status, headers, body = get(url, Range="bytes=11000-")
    assert (status, body) == (206, DATA[11000:])
    wrong = dict(form.fields, uuid="not-the-uuid")
    assert get(form.action + "?" + urlencode(wrong))[1]["Content-Type"].startswith("text/html")
    missing = {k: v for k, v in form.fields.items() if k != "confirm"}
    assert get(form.action + "?" + urlencode(missing))[1]["Content-Type"].startswith("text/html")
    assert get(srv.url + "uc?export=download&id=unknown")[0] == 404
    assert srv.count("uc") == 2 and srv.count("download") == 4


def test_drive_without_confirm_serves_directly(srv):
    srv.drive("small1", b"tiny", "tiny.txt", confirm=False)
    status, headers, body = get(srv.url + "uc?export=download&id=small1")
    assert (status, body) == (200, b"tiny")
    assert headers["Content-Disposition"] == 'attachment; filename="tiny.txt"'


def test_drive_legacy_cookie_flow(srv):
    srv.drive("legacy9", DATA, "old.zip", legacy=True)
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    first = srv.url + "uc?export=download&id=legacy9"
    with opener.open(first, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")
        page = resp.read()
    tokens = {c.name: c.value for c in jar if c.name.startswith("download_warning_")}
    assert len(tokens) == 1
    token = next(iter(tokens.values()))
    assert any(f"confirm={token}" in link for link in parse(page).links)
    with opener.open(first + "&confirm=" + token, timeout=5) as resp:
        assert resp.read() == DATA
        assert resp.headers["Content-Disposition"] == 'attachment; filename="old.zip"'
    with opener.open(first + "&confirm=wrong", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/html")


def test_drive_faults(srv):
    srv.drive("f1", DATA, "f.zip")
    form = parse(get(srv.url + "uc?export=download&id=f1")[2])
    url = form.action + "?" + urlencode(form.fields)
    srv.fault("download", "html")
    assert get(url)[1]["Content-Type"].startswith("text/html")
    assert get(url)[2] == DATA


# -- figshare --------------------------------------------------------------------------------------------
def test_figshare(srv):
    files = {"a.zip": b"A" * 3000, "b.txt": b"bee"}
    returned = srv.figshare(1234567, files)
    status, headers, body = get(srv.url + "v2/articles/1234567")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    article = json.loads(body)
    assert article == returned and article["id"] == 1234567 and article["title"]
    by_name = {f["name"]: f for f in article["files"]}
    assert set(by_name) == set(files)
    for name, content in files.items():
        entry = by_name[name]
        assert entry["size"] == len(content)
        assert entry["computed_md5"] == hashlib.md5(content).hexdigest()
        assert entry["download_url"] == f"{srv.url}ndownloader/files/{entry['id']}"
        status, headers, body = get(entry["download_url"])
        assert (status, body) == (200, content)
        assert headers["Content-Disposition"] == f'attachment; filename="{name}"'
    a = by_name["a.zip"]
    assert get(a["download_url"], Range="bytes=2990-")[2] == b"A" * 10
    fault_path = urlsplit(a["download_url"]).path.lstrip("/")
    assert fault_path == f"ndownloader/files/{a['id']}"
    srv.fault(fault_path, "503")
    assert get(a["download_url"])[0] == 503
    assert json.loads(get(srv.url + "v2/articles/1234567/files")[2]) == article["files"]
    assert get(srv.url + "v2/articles/99")[0] == 404
    assert get(srv.url + "ndownloader/files/999")[0] == 404


# -- log, count, shutdown --------------------------------------------------------------------------------
def test_request_log_and_count(srv):
    get(srv.url_for(PATH))
    get(srv.url_for(PATH), Range="bytes=10-")
    urllib.request.urlopen(urllib.request.Request(srv.url_for(PATH), method="HEAD"), timeout=5).close()
    get(srv.url_for("missing") + "?x=1")
    assert srv.count(PATH) == 2 and srv.count("/" + PATH) == 2 and srv.count("missing") == 1
    log = [(r["method"], r["path"], r["range"], r["status"], r["sent"]) for r in srv.requests]
    assert log == [
        ("GET", PATH, None, 200, len(DATA)),
        ("GET", PATH, "bytes=10-", 206, len(DATA) - 10),
        ("HEAD", PATH, None, 200, 0),
        ("GET", "missing", None, 404, len(b"404 Not Found\n")),
    ]
    assert srv.requests[-1]["query"] == "x=1"
    assert "User-agent" in srv.requests[0]["headers"] or "User-Agent" in srv.requests[0]["headers"]


def test_log_is_thread_safe(srv):
    threads = [threading.Thread(target=get, args=(srv.url_for("small.txt"),)) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert srv.count("small.txt") == 16
    assert all(r["status"] == 200 and r["sent"] == 5 for r in srv.requests)


def test_stop_is_prompt_while_stalled():
    server = FaultServer({PATH: DATA})
    server.fault(PATH, "stall", seconds=30)
    server.throttle("small.txt", 1)
    server.add("small.txt", b"x" * 100)
    outcome = {}

    def client(path):
        try:
            outcome[path] = read_chunks(server.url_for(path), timeout=20)[1]
        except Exception as exc:  # noqa: BLE001 - the client only records what happened
            outcome[path] = exc

    threads = [threading.Thread(target=client, args=(p,)) for p in (PATH, "small.txt")]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while not all(r["status"] for r in server.requests[:2]) or len(server.requests) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    start = time.monotonic()
    server.stop()
    assert time.monotonic() - start < 1.5
    for t in threads:
        t.join(timeout=3)
        assert not t.is_alive()
    assert all(isinstance(outcome[p], (http.client.IncompleteRead, ConnectionError)) for p in outcome)
    server.stop()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url_for(PATH), timeout=1)
    assert server.errors == []


def test_url_join_of_relative_links(srv):
    # the legacy page links are site-relative, so a client resolves them against the page URL
    srv.drive("rel", b"r", "r.bin", legacy=True)
    page_url = srv.url + "uc?export=download&id=rel"
    link = parse(get(page_url)[2]).links[0]
    assert get(urljoin(page_url, link))[2] == b"r"
