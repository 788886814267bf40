"""`m3svd validate`: the rejected-submission corpus, one bad case each, and the line it gets."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from leaderboard_kit import blend, sample_frames, short_protocol, write_frames
from synthetic import make_m3svd

from m3svd.cli import main
from m3svd.leaderboard import Metadata, SubmissionError, submit, validate


@pytest.fixture(scope="module")
def protocol(tmp_path_factory) -> Path:
    return short_protocol(tmp_path_factory.mktemp("protocol"))


@pytest.fixture
def good(tmp_path) -> Path:
    return write_frames(tmp_path / "good", blend(0.5))


def _png16(path: Path) -> None:
    cv2.imwrite(str(path), np.full((240, 320), 1000, np.uint16))


def _rename(path: Path, name: str) -> None:
    path.rename(path.with_name(name))


# (case, how the good folder is spoiled, the line it must get)
CORPUS = [
    ("missing clip folder", lambda d: shutil.rmtree(d / "sample"),
     r"good/sample: missing; expected 32 fused frames for clip sample"),
    ("missing frame", lambda d: (d / "sample" / "000007.png").unlink(),
     r"good/sample/000007.png: missing \(frame 7 of the clip's 32; found 31 frames\)"),
    ("frame past the end", lambda d: shutil.copy(d / "sample" / "000000.png", d / "sample" / "000032.png"),
     r"good/sample/000032.png: frame 32 is past the clip's last frame \(31\)"),
    ("frame given twice", lambda d: shutil.copy(d / "sample" / "000003.png", d / "sample" / "3.png"),
     r"good/sample/3.png: frame 3 given twice \(also 000003.png\)"),
    ("name is not a number", lambda d: _rename(d / "sample" / "000004.png", "fused_a.png"),
     r"good/sample/fused_a.png: frame name is not a frame number"),
    ("wrong size", lambda d: cv2.imwrite(str(d / "sample" / "000002.png"), np.zeros((120, 160, 3), np.uint8)),
     r"good/sample/000002.png: expected a 320×240 fused frame, found 160×120"),
    ("16-bit frame", lambda d: _png16(d / "sample" / "000005.png"),
     r"good/sample/000005.png: expected 8-bit pixels, found uint16"),
    ("undecodable", lambda d: (d / "sample" / "000006.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated"),
     r"good/sample/000006.png: cannot decode image"),
    ("empty file", lambda d: (d / "sample" / "000006.png").write_bytes(b""),
     r"good/sample/000006.png: cannot decode image \(expected PNG/JPEG/BMP, found 0 bytes\)"),
    ("lossy JPEG", lambda d: (cv2.imwrite(str(d / "sample" / "000001.jpg"), np.zeros((240, 320, 3), np.uint8)),
                              (d / "sample" / "000001.png").unlink()),
     r"good/sample/000001.jpg: lossy JPG file; fused frames must be lossless \(PNG\)"),
    ("not an image", lambda d: (d / "sample" / "notes.txt").write_text("hi"),
     r"good/sample/notes.txt: not an image"),
    ("unexpected clip", lambda d: shutil.copytree(d / "sample", d / "sampel"),
     r"good/sampel: unexpected folder; protocol short-sample@1 has no clip 'sampel'"),
    ("copy of IR", lambda d: write_frames(d, np.repeat(sample_frames()[0][..., None], 3, axis=3)),
     r"good/sample: every fused frame is identical to the IR input stream \(within 1 grey level\)"),
    ("copy of VIS", lambda d: write_frames(d, sample_frames()[1]),
     r"good/sample: every fused frame is identical to the VIS input stream"),
    ("VIS off by one level", lambda d: write_frames(d, np.clip(sample_frames()[1].astype(int) + 1, 0, 255)
                                                    .astype(np.uint8)),
     r"good/sample: every fused frame is identical to the VIS input stream \(within 1 grey level\)"),
    ("grey copy of VIS", lambda d: write_frames(d, cv2_grey(sample_frames()[1])),
     r"good/sample: every fused frame is identical to the VIS grey input stream"),
]


def cv2_grey(vi: np.ndarray) -> np.ndarray:
    from m3svd.data.frames import BT601

    return np.rint(vi.astype(np.float64) @ BT601).astype(np.uint8)


@pytest.mark.parametrize("case, spoil, message", CORPUS, ids=[c[0] for c in CORPUS])
def test_rejected_corpus(case, spoil, message, good, protocol, tmp_path):
    assert validate(good, protocol, leaderboard_dir=tmp_path / "lb") == []
    spoil(good)
    problems = validate(good, protocol, leaderboard_dir=tmp_path / "lb")
    assert problems, case
    assert any(__import__("re").search(message, p) for p in problems), problems
    assert all("\n" not in p for p in problems)


def test_every_problem_gets_its_own_line_and_long_lists_are_capped(good, protocol, tmp_path):
    for i in range(3, 20):
        (good / "sample" / f"{i:06d}.png").unlink()
    (good / "sample" / "000001.png").write_bytes(b"junk")
    problems = validate(good, protocol, leaderboard_dir=tmp_path / "lb")
    missing = [p for p in problems if ": missing (frame" in p]
    assert len(missing) == 5 and "… and 12 more like the line above" in problems
    assert any("000001.png: cannot decode image" in p for p in problems)


def test_no_folder_and_incomplete_data(tmp_path, protocol):
    assert validate(tmp_path / "nothing", protocol) == [
        f"{tmp_path / 'nothing'}: no such folder (expected {tmp_path / 'nothing'}/<clip>/<frame>.png)"]
    partial = short_protocol(tmp_path, clips=["sample", "0111_1716"], name="partial.toml")
    good = write_frames(tmp_path / "good", blend(0.4))
    problems = validate(good, partial, leaderboard_dir=None)
    assert problems == ["sample: protocol short-sample@1 needs clip 0111_1716, which this dataset lacks; only a "
                        "protocol's complete data can be submitted"]


def test_byte_identical_copies_of_input_files_name_the_stream(tmp_path):
    """On file-based data a copied input is caught byte for byte (here: the degraded IR, and the clean VIS)."""
    make_m3svd(tmp_path / "data", clips=("0111_1716",), n=4)
    protocol = tmp_path / "degraded.toml"
    protocol.write_text(short_protocol(tmp_path).read_text().replace('layouts = ["sample"]', 'layouts = ["m3svd"]')
                        .replace('variant = "clean"', 'variant = "degraded"\nsplit = "test"'))
    for folder, label in (("infrared_noise", "IR"), ("visible_Enhance", "clean VIS")):
        sub = tmp_path / label / "0111_1716"
        shutil.copytree(tmp_path / "data" / "test" / folder / "0111_1716", sub)
        problems = validate(sub.parent, protocol, root=tmp_path / "data", leaderboard_dir=None)
        assert problems == [f"{sub}: every fused frame is byte-identical to the {label} input stream "
                            f"({tmp_path / 'data' / 'test' / folder / '0111_1716'})"]


def test_duplicates_of_a_submission_are_refused_even_re_encoded(tmp_path, protocol, good):
    lb = tmp_path / "lb"
    record = submit(good, "Blend", protocol, leaderboard_dir=lb)
    again = write_frames(tmp_path / "again", blend(0.5), compression=9)  # other bytes, same pixels
    assert (again / "sample" / "000000.png").read_bytes() != (good / "sample" / "000000.png").read_bytes()
    assert validate(again, protocol, leaderboard_dir=lb) == [
        f"{again}: duplicate of submission {record.id} (Blend): the same fused frames"]
    with pytest.raises(SubmissionError, match=r"duplicate of submission .* \(nothing was submitted\)"):
        submit(again, "Blend again", protocol, leaderboard_dir=lb)
    assert len(list((lb / "submissions").iterdir())) == 1


def test_bad_names_and_metadata_are_refused_before_anything_runs(tmp_path, protocol, good):
    cases = [
        ({"name": ""}, "submission name ''"),
        ({"metadata": Metadata(paper="arxiv 2505.19858")}, "metadata paper: expected an http(s) URL"),
        ({"metadata": {"weights_sha256": "abc"}}, "metadata weights_sha256: expected 64 lower-case hex digits"),
        ({"metadata": {"weights": "x"}}, "unknown metadata field 'weights'"),
    ]
    for kwargs, message in cases:
        args = {"name": "Fine", **kwargs}
        with pytest.raises(SubmissionError, match=message.replace("(", r"\(").replace(")", r"\)")):
            submit(good, args.pop("name"), protocol, leaderboard_dir=tmp_path / "lb", **args)
    assert not (tmp_path / "lb" / "submissions").exists()


def test_cli_validate_prints_each_problem_and_exits_1(tmp_path, protocol, good, capsys):
    assert main(["validate", str(good), "--protocol", str(protocol), "--dir", str(tmp_path / "lb")]) == 0
    assert "valid submission for protocol" in capsys.readouterr().out
    (good / "sample" / "000007.png").unlink()
    (good / "sample" / "000008.png").write_bytes(b"")
    assert main(["validate", str(good), "--protocol", str(protocol), "--dir", str(tmp_path / "lb")]) == 1
    out = capsys.readouterr()
    lines = out.out.strip().splitlines()
    assert len(lines) == 2 and "000007.png: missing" in lines[0] and "000008.png: cannot decode" in lines[1]
    assert "2 problem(s)" in out.err
    assert main(["validate", str(good), "--protocol", "no-such-protocol"]) == 2
