"""`m3svd import`: releases downloaded by hand (folders, zips, multi-part zips, tarballs) arranged and hashed."""

from __future__ import annotations

import csv
import filecmp
import hashlib
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from synthetic import M3SVD_FOLDERS, make_m3svd

from m3svd import __version__
from m3svd.cli import main
from m3svd.data import importer, open_dataset
from m3svd.data.frames import VideoFile, read_image, to_grey
from m3svd.data.importer import import_dataset, verify_import
from m3svd.data.splits import SPLIT_VERSION
from m3svd.errors import DataError
from m3svd.paths import default_root

REAL_CLIPS = ("0111_1716", "0114_1611", "0115_1831")


def copy_real(frames_root: Path, dest: Path, clips=REAL_CLIPS, n: int = 20, folders=M3SVD_FOLDERS) -> Path:
    """The real four-folder test frames (first ``n`` of some clips) under ``dest/test/``, folders renamed."""
    for folder, new in zip(M3SVD_FOLDERS, folders, strict=True):
        for clip in clips:
            out = dest / "test" / new / clip
            out.mkdir(parents=True)
            for i in range(n):
                shutil.copyfile(frames_root / "test" / folder / clip / f"{i:04d}.png", out / f"{i:04d}.png")
    return dest


def zip_tree(folder: Path, zip_path: Path, prefix: str = "", extra: dict | None = None) -> Path:
    """Store every file under ``folder`` as ``prefix/<relative path>`` (PNG and mp4 do not deflate)."""
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{prefix}{path.relative_to(folder).as_posix()}")
        for name, data in (extra or {}).items():
            archive.writestr(zipfile.ZipInfo(name), data)
    return zip_path


def relative_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and ".m3svd" not in p.relative_to(folder).parts}


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


@pytest.fixture
def small_real(m3svd_frames, tmp_path) -> Path:
    """One real clip, 4 frames per stream, in the release layout under ``tmp/small/test/``."""
    return copy_real(m3svd_frames, tmp_path / "small", clips=("0114_1611",), n=4)


# -- sources ---------------------------------------------------------------------------------------------------
def test_folder_with_wrapper_copies_the_release_exactly(m3svd_frames, tmp_path):
    copy_real(m3svd_frames, tmp_path / "download" / "M3SVD")
    report = import_dataset(tmp_path / "download", tmp_path / "root", progress=False)
    target = tmp_path / "root" / "full"
    assert report.target == target and report.layout == "m3svd" and report.storage == "images"
    assert report.clips == {"test": {"clean": 3, "degraded": 3}} and report.files == 240
    assert relative_files(target) == relative_files(m3svd_frames)
    assert report.bytes == sum(len(b) for b in relative_files(m3svd_frames).values())
    clip = open_dataset(target).clip("0114_1611", variant="degraded")
    original = open_dataset(m3svd_frames).clip("0114_1611", variant="degraded")
    assert np.array_equal(clip.ir(7), original.ir(7))
    assert np.array_equal(clip.reference.vi(19), original.reference.vi(19))
    meta = json.loads((target / ".m3svd" / "import.json").read_text())
    assert meta["source"] == str(tmp_path / "download") and meta["found_at"] == "M3SVD"
    assert meta["layout"] == "m3svd" and meta["toolkit_version"] == __version__
    assert meta["split_version"] == SPLIT_VERSION and meta["counts"] == {"test": {"clean": 3, "degraded": 3}}
    assert "source_sha256" not in meta and meta["imported_at"].endswith("+00:00")
    assert leftovers(tmp_path / "root") == ["full"]


def test_zip_with_wrapper_folder_and_junk(small_real, tmp_path):
    junk = {"M3SVD/README.txt": b"read me", "__MACOSX/M3SVD/test/visible_Blur/0114_1611/._0000.png": b"\0\5\26",
            "M3SVD/test/visible_Blur/0114_1611/._0001.png": b"\0\5\26\7", "M3SVD/.DS_Store": b"junk"}
    archive = zip_tree(small_real, tmp_path / "M3SVD.zip", "M3SVD/", junk)
    report = import_dataset(archive, tmp_path / "root", name="small", progress=False)
    target = tmp_path / "root" / "small"
    assert relative_files(target) == relative_files(small_real) and report.files == 16
    meta = json.loads((target / ".m3svd" / "import.json").read_text())
    assert meta["source_kind"] == "zip" and meta["found_at"] == "M3SVD"
    assert meta["source_sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert leftovers(tmp_path / "root") == ["small"]


def test_multi_part_zip_is_read_as_one_stream(small_real, tmp_path):
    data = zip_tree(small_real, tmp_path / "whole.zip", "Release/M3SVD/").read_bytes()
    cuts = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    parts = tmp_path / "parts"
    parts.mkdir()
    for n in range(3):
        (parts / f"m3svd.zip.{n + 1:03d}").write_bytes(data[cuts[n]:cuts[n + 1]])
    import_dataset(parts / "m3svd.zip.001", tmp_path / "root", name="small", progress=False)
    target = tmp_path / "root" / "small"
    assert relative_files(target) == relative_files(small_real)
    meta = json.loads((target / ".m3svd" / "import.json").read_text())
    assert meta["source_kind"] == "multi-part zip" and meta["found_at"] == "Release/M3SVD"
    assert meta["source_sha256"] == hashlib.sha256(data).hexdigest() and meta["source_size"] == len(data)
    assert [p["size"] for p in meta["source_parts"]] == [cuts[n + 1] - cuts[n] for n in range(3)]
    (parts / "m3svd.zip.002").unlink()
    with pytest.raises(DataError, match=r"lacks part m3svd\.zip\.002"):
        import_dataset(parts / "m3svd.zip.001", tmp_path / "root", name="other", progress=False)


def test_joined_parts_seek_and_read_like_the_whole(tmp_path):
    data = np.random.default_rng(0).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    sizes = [3000, 0, 4000, 1, 2999]
    paths, start = [], 0
    for i, size in enumerate(sizes):
        paths.append(tmp_path / f"x.zip.{i + 1:03d}")
        paths[-1].write_bytes(data[start:start + size])
        start += size
    with importer._open_parts(paths) as joined:
        assert joined.read() == data
        for offset, length in [(0, 10), (2995, 10), (6999, 3), (7000, 1), (9990, 50), (10_000, 5)]:
            joined.seek(offset)
            assert joined.read(length) == data[offset:offset + length]
        assert joined.seek(-4, io.SEEK_END) == 9996 and joined.read() == data[-4:]


def test_tar_gz_of_the_github_video_layout(m3svd_videos, tmp_path):
    archive = tmp_path / "M3SVD-main.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(m3svd_videos / "test", arcname="M3SVD-main/Video/test")
    report = import_dataset(archive, tmp_path / "root", name="videos", progress=False)
    target = tmp_path / "root" / "videos"
    assert report.layout == "m3svd-video" and report.storage == "video" and report.clips == {"test": {"clean": 3}}
    assert relative_files(target) == relative_files(m3svd_videos)
    assert len(open_dataset(target).clip("0117_1605")) == 407
    meta = json.loads((target / ".m3svd" / "import.json").read_text())
    assert meta["source_kind"] == "tar" and meta["found_at"] == "M3SVD-main"


def test_temcoco_folder_names_become_release_names(m3svd_frames, tmp_path):
    source = copy_real(m3svd_frames, tmp_path / "temcoco", clips=("0111_1716",), n=3,
                       folders=("IR_en", "VI_en", "IR_noise2", "VI_blur_new"))
    import_dataset(source, tmp_path / "root", name="t", progress=False)
    target = tmp_path / "root" / "t"
    assert sorted(p.name for p in (target / "test").iterdir()) == sorted(M3SVD_FOLDERS)
    for folder, old in zip(M3SVD_FOLDERS, ("IR_en", "VI_en", "IR_noise2", "VI_blur_new"), strict=True):
        assert filecmp.cmp(target / "test" / folder / "0111_1716" / "0002.png",
                           source / "test" / old / "0111_1716" / "0002.png", shallow=False)


def test_clips_without_split_folders_get_split_v1(tmp_path):
    make_m3svd(tmp_path / "flat", clips=("0111_1716", "0301_1200"), n=2, split=None)
    report = import_dataset(tmp_path / "flat", tmp_path / "root", name="flat", progress=False)
    target = tmp_path / "root" / "flat"
    assert (target / "test" / "infrared_noise" / "0111_1716" / "0001.png").is_file()
    assert (target / "train" / "visible_Blur" / "0301_1200" / "0000.png").is_file()
    assert report.clips == {"test": {"clean": 1, "degraded": 1}, "train": {"clean": 1, "degraded": 1}}
    meta = json.loads((target / ".m3svd" / "import.json").read_text())
    assert meta["splits_from"].startswith("split_of")


def test_link_option_hard_links_folder_sources(small_real, tmp_path):
    import_dataset(small_real, tmp_path / "root", name="l", progress=False, link=True)
    rel = "test/visible_Enhance/0114_1611/0003.png"
    assert (tmp_path / "root" / "l" / rel).stat().st_ino == (small_real / rel).stat().st_ino
    assert verify_import(tmp_path / "root" / "l") == []


# -- hashes ------------------------------------------------------------------------------------------------------
def test_files_csv_hashes_and_verify_catches_changes(small_real, tmp_path):
    import_dataset(small_real, tmp_path / "root", name="h", progress=False)
    target = tmp_path / "root" / "h"
    with open(target / ".m3svd" / "files.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "size", "sha256"] and len(rows) == 17
    assert [r[0] for r in rows[1:]] == sorted(r[0] for r in rows[1:])
    for path, size, sha in rows[1:]:
        data = (target / path).read_bytes()
        assert int(size) == len(data) and sha == hashlib.sha256(data).hexdigest()
    assert verify_import(target) == []
    changed, deleted = target / rows[3][0], target / rows[9][0]
    data = bytearray(changed.read_bytes())
    data[100] ^= 0xFF
    changed.write_bytes(bytes(data))
    deleted.unlink()
    (target / "test" / "stray.txt").write_text("x")
    problems = verify_import(target)
    assert len(problems) == 3
    assert problems[0].startswith(f"{changed}: sha256 ") and "files.csv says" in problems[0]
    assert problems[1] == f"{deleted}: missing (listed in files.csv)"
    assert problems[2] == f"{target / 'test' / 'stray.txt'}: not in files.csv (unexpected file)"
    changed.write_bytes(b"short")
    assert f"{changed}: 5 bytes, files.csv says {rows[3][1]}" in verify_import(target)
    with pytest.raises(DataError, match="expected a folder made by `m3svd import`"):
        verify_import(small_real)


# -- all or nothing -------------------------------------------------------------------------------------------------
def test_refuses_a_non_empty_target_but_fills_an_empty_one(small_real, tmp_path):
    (tmp_path / "root" / "full").mkdir(parents=True)
    (tmp_path / "root" / "full" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match=r"already holds files; refusing .*--name"):
        import_dataset(small_real, tmp_path / "root", progress=False)
    assert leftovers(tmp_path / "root") == ["full"] and leftovers(tmp_path / "root" / "full") == ["keep.txt"]
    (tmp_path / "root" / "empty").mkdir()
    import_dataset(small_real, tmp_path / "root", name="empty", progress=False)
    assert verify_import(tmp_path / "root" / "empty") == []


@pytest.mark.parametrize("as_zip", [False, True])
def test_crash_mid_import_leaves_no_target_and_no_temp(small_real, tmp_path, monkeypatch, as_zip):
    source = zip_tree(small_real, tmp_path / "r.zip", "M3SVD/") if as_zip else small_real
    name = "_copy_stream" if as_zip else "_copy_file"
    real, calls = getattr(importer, name), []

    def flaky(*args):
        calls.append(args)
        if len(calls) == 7:
            raise RuntimeError("disk on fire")
        return real(*args)

    monkeypatch.setattr(importer, name, flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        import_dataset(source, tmp_path / "root", progress=False)
    assert len(calls) == 7 and leftovers(tmp_path / "root") == []


@pytest.mark.parametrize("member", ["../evil.txt", "M3SVD/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt"])
def test_unsafe_zip_member_is_rejected_before_anything_is_written(small_real, tmp_path, member):
    archive = zip_tree(small_real, tmp_path / "bad.zip", "M3SVD/", {member: b"pwned"})
    with pytest.raises(DataError, match=r"unsafe member path") as error:
        import_dataset(archive, tmp_path / "root" / "inner", progress=False)
    assert repr(member) in str(error.value) and "\n" not in str(error.value)
    assert leftovers(tmp_path / "root" / "inner") == [] and not (tmp_path / "root" / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_tar_with_a_symlink_is_rejected(small_real, tmp_path):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(small_real, arcname="M3SVD")
        link = tarfile.TarInfo("M3SVD/test/passwd")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataError, match=r"'M3SVD/test/passwd' is a link or device"):
        import_dataset(archive, tmp_path / "root", progress=False)
    assert leftovers(tmp_path / "root") == []


@pytest.mark.parametrize("parts", [("x.z01", "x.zip"), ("x.z01", "x.z02", "x.zip")])
@pytest.mark.parametrize("given", [0, -1])
def test_zip_s_split_archives_get_the_join_command(tmp_path, parts, given):
    for part in parts:
        (tmp_path / part).write_bytes(b"PK")
    with pytest.raises(DataError, match=r"zip -s 0 .*x\.zip --out joined\.zip"):
        import_dataset(tmp_path / parts[given], tmp_path / "root", progress=False)


def test_unknown_source_kinds_are_one_line_errors(tmp_path):
    (tmp_path / "x.rar").write_bytes(b"Rar!")
    with pytest.raises(DataError, match=r"x\.rar: expected a folder, \.zip, .* found \.rar"):
        import_dataset(tmp_path / "x.rar", tmp_path / "root", progress=False)
    (tmp_path / "broken.zip").write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match=r"broken\.zip: cannot read the zip archive"):
        import_dataset(tmp_path / "broken.zip", tmp_path / "root", progress=False)
    (tmp_path / "tno" / "Duine_sequence" / "thermal").mkdir(parents=True)
    (tmp_path / "tno" / "Duine_sequence" / "visual").mkdir()
    with pytest.raises(DataError, match=r"tno: found a tno layout at .*, not an M3SVD release"):
        import_dataset(tmp_path / "tno", tmp_path / "root", progress=False)
    (tmp_path / "empty" / "a" / "b").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty: no M3SVD release within 3 folder levels; looked for M3SVD release"):
        import_dataset(tmp_path / "empty", tmp_path / "root", progress=False)
    assert leftovers(tmp_path / "root") == []


# -- frames from videos -----------------------------------------------------------------------------------------
def test_extract_frames_matches_the_video_decode_exactly(m3svd_videos, m3svd_frames, tmp_path):
    source = tmp_path / "one" / "test"
    for modality in ("infrared", "visible"):
        (source / modality).mkdir(parents=True)
        shutil.copyfile(m3svd_videos / "test" / modality / "0111_1716.mp4", source / modality / "0111_1716.mp4")
    report = import_dataset(tmp_path / "one", tmp_path / "root", name="v", extract_frames=True, progress=False)
    target = tmp_path / "root" / "v"
    assert report.extracted_frames == 302 and report.storage == "video + PNG frames"
    for modality, folder in (("infrared", "infrared_Enhance"), ("visible", "visible_Enhance")):
        video = VideoFile(target / "test" / modality / "0111_1716.mp4")
        pngs = sorted((target / "test" / folder / "0111_1716").iterdir())
        assert [p.name for p in pngs] == [f"{i:04d}.png" for i in range(len(video))] and len(video) == 151
        for i, png in enumerate(pngs):
            stored = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
            decoded = video.read(i)
            if modality == "infrared":
                assert stored.ndim == 2 and np.array_equal(stored, to_grey(decoded))
            else:
                assert np.array_equal(read_image(png), decoded)
        video.close()
    lossless = open_dataset(m3svd_frames).clip("0111_1716", variant="clean")
    derived = open_dataset(target).clip("0111_1716")
    assert derived.layout == "m3svd" and len(derived) == 151
    assert derived.lossy and not lossless.lossy  # PNG decoded from mp4 is still labelled lossy
    for i in (0, 10, 19):  # frame i of the mp4 is 0000-based frame i of the image release (specs §5.3)
        assert np.abs(derived.ir(i).astype(int) - lossless.ir(i)).mean() < 4
    meta = json.loads((target / ".m3svd" / "import.json").read_text())
    extracted = meta["extracted_frames"]
    assert extracted["lossy_derived"] is True and extracted["frames"] == 302
    assert {"frames": "test/visible_Enhance/0111_1716", "source": "test/visible/0111_1716.mp4", "count": 151} \
        in extracted["streams"]
    assert verify_import(target) == [] and report.files == 304


def test_extract_frames_needs_videos(small_real, tmp_path):
    with pytest.raises(DataError, match="--extract-frames needs a video release"):
        import_dataset(small_real, tmp_path / "root", extract_frames=True, progress=False)
    assert leftovers(tmp_path / "root") == []


# -- what is missing ---------------------------------------------------------------------------------------------
def test_missing_lists_absent_test_clips_streams_and_frame_counts(tmp_path):
    make_m3svd(tmp_path / "src", clips=REAL_CLIPS, n=4)
    shutil.rmtree(tmp_path / "src" / "test" / "visible_Enhance" / "0114_1611")
    (tmp_path / "src" / "test" / "infrared_noise" / "0115_1831" / "0003.png").unlink()
    report = import_dataset(tmp_path / "src", tmp_path / "root", name="partial", progress=False)
    assert not report.ok and len(report.missing) == 3
    assert report.missing[0] == "clip 0114_1611 (test): no visible_Enhance stream, which other clips have"
    assert report.missing[1] == ("clip 0115_1831 (test): frame counts differ (infrared_Enhance 4, visible_Enhance 4, "
                                 "infrared_noise 3, visible_Blur 4)")
    assert report.missing[2].startswith(f"test: 27 of 30 official test clips ({SPLIT_VERSION}) absent: 0111_1753, ")
    assert not any(clip in report.missing[2] for clip in REAL_CLIPS)
    assert "missing (3):" in report.format() and "  - clip 0114_1611 (test)" in report.format()
    meta = json.loads((tmp_path / "root" / "partial" / ".m3svd" / "import.json").read_text())
    assert meta["missing"] == report.missing


def test_mixed_frame_naming_is_reported(tmp_path):
    make_m3svd(tmp_path / "src", clips=("0301_1200",), n=3, split="train")
    blur = tmp_path / "src" / "train" / "visible_Blur" / "0301_1200"
    for i in range(3):
        (blur / f"{i:04d}.png").rename(blur / f"{i + 1:06d}.png")
    report = import_dataset(tmp_path / "src", tmp_path / "root", name="mixed", progress=False)
    assert report.missing == ["clip 0301_1200 (train): frame names mix conventions (infrared_Enhance 4-digit 0-based, "
                              "visible_Enhance 4-digit 0-based, infrared_noise 4-digit 0-based, visible_Blur 6-digit "
                              "1-based); expected one convention in every stream"]
    assert (tmp_path / "root" / "mixed" / "train" / "visible_Blur" / "0301_1200" / "000001.png").is_file()


def test_full_release_claim_is_checked_and_misplaced_clips_noted(tmp_path):
    make_m3svd(tmp_path / "src", clips=("0301_1200", "0111_1716"), n=1, split="train")
    report = import_dataset(tmp_path / "src", tmp_path / "root", progress=False)
    assert report.missing[0].startswith("test: 30 of 30 official test clips")
    assert report.missing[1] == "train: 2 clip(s); the full release has 190"
    assert report.notes == [f"clip 0111_1716 is under train/ but {SPLIT_VERSION} puts it in test"]


# -- the command -------------------------------------------------------------------------------------------------
def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_exit_codes_and_output(small_real, tmp_path, capsys):
    make_m3svd(tmp_path / "train_only", clips=("0301_1200",), n=2, split="train")
    code, out, _ = run(capsys, "import", tmp_path / "train_only", "--root", tmp_path / "root", "--name", "mine")
    assert code == 0 and out.startswith(f"imported m3svd (images) into {tmp_path / 'root' / 'mine'}")
    assert "train: 1 clean clip(s), 1 degraded clip(s)" in out and "missing" not in out
    code, out, _ = run(capsys, "import", small_real, "--root", tmp_path / "root", "--name", "real")
    assert code == 1 and "missing (1):" in out and "29 of 30 official test clips" in out
    code, out, err = run(capsys, "import", small_real, "--root", tmp_path / "root", "--name", "real")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"m3svd: error: {tmp_path / 'root' / 'real'}: already holds files")
    code, _, err = run(capsys, "import", tmp_path / "nothing.zip", "--root", tmp_path / "root")
    assert code == 2 and "nothing.zip: no such file or directory" in err


def test_cli_root_from_the_environment(small_real, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("M3SVD_ROOT", str(tmp_path / "env_root"))
    code, out, _ = run(capsys, "import", small_real, "--name", "e")
    assert code == 1 and verify_import(tmp_path / "env_root" / "e") == []


def test_cli_help_explains(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["import", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for phrase in ("files.csv", "x.zip.001", "M3SVD_ROOT", "--extract-frames", "Exits 0", "TemCoCo"):
        assert phrase in out


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("M3SVD_ROOT", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "explicit"
    monkeypatch.delenv("M3SVD_ROOT")
    assert default_root() == tmp_path / "xdg" / "m3svd"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "m3svd"
