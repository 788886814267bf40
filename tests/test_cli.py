"""The `m3svd` command as a user meets it: exit codes, one-line errors, hints, output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from m3svd import __version__
from m3svd.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version_through_the_installed_entry_point():
    result = subprocess.run([sys.executable, "-m", "m3svd.cli", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"m3svd {__version__}"


def test_no_command_prints_help(capsys):
    code, out, _ = run(capsys)
    assert code == 0 and "COMMAND" in out and "check" in out


def test_check_help_explains(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "registration" in out and "Exits 1" in out and "--json" in out


@pytest.mark.parametrize("argv, hint", [(["chek", "x"], "did you mean 'check'?"), (["ls", "metric"], "'metrics'")])
def test_typo_gets_a_hint(capsys, argv, hint):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and hint in capsys.readouterr().err


def test_ls_datasets_names_every_layout(capsys):
    code, out, _ = run(capsys, "ls")
    assert code == 0
    for name in ("sample", "m3svd", "m3svd-video", "tno", "roadscene", "vifb", "pairs", "generic"):
        assert f"  {name} " in out


def test_bad_path_is_one_line_error(capsys, tmp_path):
    code, out, err = run(capsys, "info", str(tmp_path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("m3svd: error: ") and "looked for" in err


def test_unknown_clip_gets_a_hint(capsys, m3svd_frames):
    code, _, err = run(capsys, "check", str(m3svd_frames), "--clip", "0111_171")
    assert code == 2 and "did you mean '0111_1716'?" in err


def test_info_lists_clips(capsys, m3svd_videos):
    code, out, _ = run(capsys, "info", str(m3svd_videos))
    assert code == 0 and "layout m3svd-video, 3 clip(s)" in out
    assert "0117_1620" in out and " 590 " in out and "lossy" in out


def test_check_passes_on_real_sequences(capsys, tno):
    code, out, _ = run(capsys, "check", str(tno), "--no-progress")
    assert code == 0 and "3 of 3 clip(s) passed" in out


def test_check_json_and_exit_1_on_a_damaged_copy(capsys, tno, tmp_path):
    shutil.copytree(tno / "FEL_images" / "Tree_sequence", tmp_path / "Tree_sequence")
    (tmp_path / "Tree_sequence" / "visual" / "4905v.bmp").unlink()
    code, out, _ = run(capsys, "check", str(tmp_path / "Tree_sequence"), "--json", "--no-progress")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    (integrity,) = [c for c in report["clips"][0]["checks"] if c["name"] == "integrity"]
    assert integrity["status"] == "fail" and "'4905'" in integrity["message"]


def test_ls_metrics_lists_conventions_and_direction(capsys):
    code, out, _ = run(capsys, "ls", "metrics")
    rows = [line.split()[:3] for line in out.splitlines()]
    assert code == 0 and ["qabf", "vifb", "higher"] in rows and ["mse", "m3svd", "lower"] in rows
    checked = {(row[0], row[1]): row[4] for row in (line.split() for line in out.splitlines()) if len(row) > 4}
    assert checked["qabf", "vifb"] == "checked" and checked["tgf", "m3svd"] == "unchecked"
    assert out.splitlines()[-1].startswith("33 of 108 unchecked")


def test_ls_metrics_filters_a_convention_and_prints_names_only(capsys):
    code, out, _ = run(capsys, "ls", "metrics", "--convention", "vfbench", "--names")
    assert code == 0 and out.split() == ["biswe", "mi", "ms2r", "qabf", "ssim", "vif"]
    code, out, _ = run(capsys, "ls", "metrics", "--convention", "vfbench")
    assert code == 0 and [line.split()[1] for line in out.splitlines()] == ["vfbench"] * 6
    code, _, err = run(capsys, "ls", "metrics", "--convention", "vfbech")
    assert code == 2 and "no convention 'vfbech'" in err and "did you mean 'vfbench'?" in err


def test_info_shows_frame_count_mismatch(capsys, tmp_path):
    """IR with 3 frames, VIS with 2: info shows both counts, never the shorter one alone."""
    import cv2
    import numpy as np

    for folder, n in (("ir", 3), ("vi", 2)):
        (tmp_path / folder).mkdir()
        for i in range(n):
            cv2.imwrite(str(tmp_path / folder / f"{i:04d}.png"), np.full((8, 8), 40 * i, np.uint8))
    code, out, _ = run(capsys, "info", str(tmp_path))
    row = out.splitlines()[-1]
    assert code == 0 and row.endswith("lossless; frame counts differ: IR 3, VIS 2") and " ≠ " in row
