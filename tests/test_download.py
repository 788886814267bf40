"""`m3svd download` against a real local HTTP server with injected faults: never a corrupt file in the root."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from http_faults import FaultServer

from m3svd.cli import main
from m3svd.data import download as dl
from m3svd.data.layouts import open_dataset
from m3svd.data.subsets import FileEntry, get_subset

pytestmark = pytest.mark.network
CLIPS = ("0111_1716", "0117_1605", "0117_1620")  # the pairs in ../shared/data/m3svd_videos


def fast(**kw) -> dl.Options:
    waits = []
    options = dl.Options(workers=2, timeout=1.0, retries=4, backoff=0.01, sleep=waits.append, **kw)
    options.waits = waits
    return options


def entry(name: str, content: bytes, urls) -> FileEntry:
    return FileEntry(name, tuple(urls), len(content), hashlib.sha256(content).hexdigest())


def tree(root: Path) -> list[str]:
    """Every file under ``root`` (hidden .partial included), relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.fixture
def server():
    with FaultServer() as s:
        yield s


@pytest.fixture
def blob():
    return random.Random(7).randbytes(300_000)


def one(server, blob, name="a/file.bin", mirrors=("",)):
    server.add(name, blob)
    return entry(name, blob, [server.url_for(name, prefix) for prefix in mirrors])


def fetch(tmp_path, files, options=None):
    subset = replace(get_subset("test-videos"), name="t", files=tuple(files))
    return dl.download(subset, tmp_path, options or fast(), show_progress=False)


# -- the real subset, served locally ---------------------------------------------------------------------------
def test_real_mp4s_download_verify_and_open(tmp_path, m3svd_videos):
    subset = get_subset("test-videos")
    wanted = tuple(f for f in subset.files if Path(f.path).stem in CLIPS)
    assert len(wanted) == 6 and all(f.sha256 for f in wanted)
    with FaultServer(root=m3svd_videos) as server:
        report = dl.download(subset, tmp_path, fast(), mirrors=[server.url], files=wanted, show_progress=False)
        assert report.ok and [f.status for f in report.files] == ["downloaded"] * 6
        assert dl.verify(subset, tmp_path, files=wanted, show_progress=False) == []
        clips = open_dataset(tmp_path / "test-videos").clips
        assert sorted(c.name for c in clips) == list(CLIPS) and len(clips[0]) == 151
        before = len(server.requests)
        again = dl.download(subset, tmp_path, fast(), mirrors=[server.url], files=wanted, show_progress=False)
        assert [f.status for f in again.files] == ["present"] * 6 and len(server.requests) == before
    assert not (tmp_path / ".partial").exists()


def test_dry_run_lists_the_subset(capsys):
    assert main(["download", "--subset", "val-frames", "--dry-run", "--root", "/nonexistent"]) == 0
    out = capsys.readouterr().out
    assert "test/visible_Blur/0115_1847/0019.png" in out and "720 files, 332.20 MB" in out


# -- faults --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("faults, attempts", [
    (["drop", "drop"], 3), (["truncate", "truncate"], 3), (["stall", "stall"], 3), (["503", "503"], 3),
    (["429"], 2), (["500"], 2),
    (["drop", "no-range"], 2),  # the resume is answered with the whole file: start over, in the same attempt
    (["drop", "bad-range"], 3),  # the resume starts at the wrong byte: discard and start over
])
def test_transient_fault_is_retried_and_the_file_verified(tmp_path, server, blob, faults, attempts):
    e = one(server, blob)
    for kind in faults:
        server.fault(e.path, kind, after=100_000, seconds=5, retry_after=3)
    report = fetch(tmp_path, [e])
    assert report.ok, report.format()
    assert (tmp_path / "t" / e.path).read_bytes() == blob
    assert tree(tmp_path) == ["t/a/file.bin"]
    assert report.files[0].attempts == attempts


def test_drop_resumes_with_a_range_request(tmp_path, server, blob):
    e = one(server, blob)
    server.fault(e.path, "drop", after=120_000)
    assert fetch(tmp_path, [e]).ok
    ranges = [r["range"] for r in server.requests if r["method"] == "GET"]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and int(ranges[1][6:].rstrip("-")) >= 100_000


def test_retry_after_is_honoured(tmp_path, server, blob):
    e = one(server, blob)
    server.fault(e.path, "503", retry_after=7)
    options = fast()
    assert fetch(tmp_path, [e], options).ok
    assert options.waits == [7.0]


def test_corrupt_bytes_never_reach_the_root(tmp_path, server, blob):
    e = one(server, blob)
    server.fault(e.path, "corrupt", times=4)
    report = fetch(tmp_path, [e])
    assert not report.ok and "sha256 mismatch" in report.format()
    assert tree(tmp_path) == []  # no file in the root, no partial kept


def test_mirror_fallback_on_404_and_html(tmp_path, server, blob):
    server.mirror("dead", up=False)
    server.mirror("m2", up=True)
    server.mirror("m3", up=True)
    e = one(server, blob, mirrors=("dead/", "m2/", "m3/"))
    server.fault("m2/" + e.path, "html", times=10)
    report = fetch(tmp_path, [e])
    assert report.ok and report.files[0].url == server.url_for(e.path, "m3/")
    assert server.count("dead/" + e.path) == 1 and server.count("m2/" + e.path) == 1


def test_offline_is_one_clear_line(tmp_path, capsys):
    e = FileEntry("x.bin", ("http://host.invalid/x.bin",), 3, "0" * 64)
    report = fetch(tmp_path, [e])
    assert not report.ok and "cannot resolve host.invalid (offline?)" in report.format()
    assert tree(tmp_path) == []


def test_fault_trials_never_leave_corrupt_or_partial_files(tmp_path, server):
    """Many files, a random fault on most requests: every file either verified in place or absent."""
    rng = random.Random(0)
    kinds = ["drop", "corrupt", "truncate", "404", "503", "stall", "no-range", "bad-range", "html", "500"]
    files, contents, injected = [], {}, 0
    server.mirror("m2", up=True)
    for i in range(40):
        content = rng.randbytes(rng.randrange(1, 200_000))
        e = one(server, content, name=f"f/{i}.bin", mirrors=("", "m2/"))
        for prefix in ("", "m2/"):
            n = rng.randrange(0, 4)
            for _ in range(n):
                server.fault(prefix + e.path, rng.choice(kinds), after=len(content) // 3, seconds=5, retry_after=0)
            injected += n
        files.append(e)
        contents[e.path] = content
    report = fetch(tmp_path, files, fast())
    assert injected >= 60
    for f in report.files:
        placed = tmp_path / "t" / f.path
        if f.status == "downloaded":
            assert placed.read_bytes() == contents[f.path]
        else:
            assert not placed.exists()
    assert not any(".part" in p for p in tree(tmp_path) if not p.startswith(".partial"))


def test_killed_download_resumes_on_rerun(tmp_path, server, blob):
    e = one(server, blob)
    server.throttle(e.path, 50_000)
    code = (
        "import sys; from pathlib import Path; from m3svd.data import download as dl;"
        "from m3svd.data.subsets import FileEntry, get_subset; from dataclasses import replace;"
        f"e = FileEntry({e.path!r}, ({e.urls[0]!r},), {e.size}, {e.sha256!r});"
        "s = replace(get_subset('test-videos'), name='t', files=(e,));"
        f"dl.download(s, Path({str(tmp_path)!r}), show_progress=False)"
    )
    child = subprocess.Popen([sys.executable, "-c", code])
    part = tmp_path / ".partial" / "t" / (e.path + ".part")
    deadline = time.time() + 20
    while time.time() < deadline and (not part.exists() or part.stat().st_size < 60_000):
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    kept = part.stat().st_size
    assert 0 < kept < len(blob) and not (tmp_path / "t" / e.path).exists()
    server.throttle(e.path, 0)
    assert fetch(tmp_path, [e]).ok
    assert (tmp_path / "t" / e.path).read_bytes() == blob
    assert server.requests[-1]["range"] == f"bytes={kept}-"


# -- remote listings -----------------------------------------------------------------------------------------------
def test_figshare_article_md5_verified_and_sha256_recorded(tmp_path, server):
    files = {"FEL_images.zip": b"tno" * 10_000, "README.txt": b"credit TNO"}
    server.figshare(1008029, files)
    subset = replace(get_subset("tno"), figshare_api=server.url + "v2/articles/1008029")
    server.fault("ndownloader/files/1", "drop", after=5000)
    report = dl.download(subset, tmp_path, fast(), show_progress=False)
    assert report.ok, report.format()
    assert (tmp_path / "tno" / "FEL_images.zip").read_bytes() == files["FEL_images.zip"]
    assert dl.verify(subset, tmp_path, show_progress=False) == []
    (tmp_path / "tno" / "README.txt").write_bytes(b"credit tno")
    (problem,) = dl.verify(subset, tmp_path, show_progress=False)
    expected = hashlib.sha256(b"credit TNO").hexdigest()[:12]
    assert problem.startswith("README.txt: sha256 mismatch") and expected in problem


@pytest.mark.parametrize("legacy", [False, True])
def test_google_drive_confirmation_flow(tmp_path, server, monkeypatch, legacy):
    content = random.Random(1).randbytes(250_000)
    server.drive("1bRoNhQBzWtj0y8CMGdXQvjbQCGAVddPX", content, "M3SVD_videos.zip", confirm=True, legacy=legacy)
    monkeypatch.setattr(dl, "DRIVE_URL", server.url + "uc?export=download&id={id}")
    subset = get_subset("full-videos")
    report = dl.download(subset, tmp_path, fast(), show_progress=False)
    assert report.ok, report.format()
    archive = tmp_path / "archives" / "M3SVD_videos.zip"
    assert archive.read_bytes() == content
    assert dl.verify(subset, tmp_path, show_progress=False) == []
    # The recorded sha256 now binds later downloads: a changed file is refused and the old one kept.
    archive.unlink()
    server.drive("1bRoNhQBzWtj0y8CMGdXQvjbQCGAVddPX", content[::-1], "M3SVD_videos.zip", confirm=True, legacy=legacy)
    again = dl.download(subset, tmp_path, fast(), show_progress=False)
    assert not again.ok and "sha256 mismatch" in again.format() and not archive.exists()


def test_full_videos_download_is_imported_and_checked(tmp_path, server, monkeypatch, m3svd_videos, capsys):
    """Drive archive → verified download → canonical layout with frame counts checked; missing clips listed."""
    import zipfile

    archive = tmp_path / "src.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for modality in ("infrared", "visible"):
            z.write(m3svd_videos / "test" / modality / "0111_1716.mp4", f"Video/test/{modality}/0111_1716.mp4")
    server.drive("1bRoNhQBzWtj0y8CMGdXQvjbQCGAVddPX", archive.read_bytes(), "M3SVD_videos.zip")
    monkeypatch.setattr(dl, "DRIVE_URL", server.url + "uc?export=download&id={id}")
    root = tmp_path / "root"
    code = main(["download", "--subset", "full-videos", "--root", str(root), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1 and "29 of 30 official test clips" in out  # imported, but the release is incomplete
    clip = open_dataset(root / "full-videos").clip("0111_1716")
    assert len(clip) == 151
    assert main(["download", "--subset", "full-videos", "--root", str(root), "--verify", "--no-progress"]) == 0
