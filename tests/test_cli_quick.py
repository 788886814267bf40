"""The CLI's quick looks and listings: `evaluate --clips/--frames` (partial runs), progress lines off a terminal,
`compare`, `info --json`, `check` counting clips; real runs on the built-in sample."""

from __future__ import annotations

import hashlib
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from leaderboard_kit import blend, short_protocol, write_frames

from m3svd import evaluate as ev
from m3svd import protocols
from m3svd.cli import main
from m3svd.evaluate import OVERALL, read_summary
from m3svd.leaderboard import submit
from m3svd.leaderboard.schema import SubmissionError
from m3svd.progress import LineProgress


def test_frames_subset_is_partial_and_a_full_run_redoes_it(tmp_path, capsys):
    protocol = short_protocol(tmp_path)  # the sample's frames [0, 4)
    out = tmp_path / "out"
    assert main(["evaluate", "--method", "average", "--protocol", str(protocol), "--frames", "1:3", "--clips",
                 "sample", "--out", str(out), "--no-flow-cache"]) == 0
    assert "PARTIAL" in capsys.readouterr().out
    run = json.loads((out / "run.json").read_text())
    assert run["partial"] is True and run["complete"] is False
    assert run["subset"] == {"clips": ["sample"], "frames": [1, 3]}
    rows = pd.read_parquet(out / "results.parquet")
    assert sorted(rows["frame"].unique()) == [1, 2]
    partial_key = rows["run_key"].iloc[0]
    # the same frames as the protocol's own range still give a partial run, with a key of its own
    assert main(["evaluate", "--method", "average", "--protocol", str(protocol), "--frames", "0:4", "--out", str(out),
                 "--no-flow-cache"]) == 0
    capsys.readouterr()
    covering_key = pd.read_parquet(out / "results.parquet")["run_key"].iloc[0]
    full = ev.evaluate(protocols.load(protocol), out, method=ev.MethodSpec("average"), flow_cache=False)
    assert full.skipped == [] and not full.partial  # the full run was not fooled by the partial files
    run = json.loads((out / "run.json").read_text())
    assert run["complete"] is True and run["partial"] is False and run["subset"] is None
    full_key = full.results["run_key"].iloc[0]
    assert len({partial_key, covering_key, full_key}) == 3
    assert sorted(full.results["frame"].unique()) == [0, 1, 2, 3]


@pytest.mark.parametrize(("argv", "message"), [
    (["--frames", "2:9"], "--frames 2:9 lies outside the frames protocol short-sample scores, [0, 4)"),
    (["--frames", "3:1"], "expected 0 <= START < STOP, found '3:1'"),
    (["--frames", "x"], "expected START:STOP (e.g. 0:16), found 'x'"),
    (["--clips", "sampel"], "--clips sampel: not a clip of protocol short-sample (it has 1: sample)"),
])
def test_bad_subsets_are_one_line_errors(tmp_path, capsys, argv, message):
    protocol = short_protocol(tmp_path)
    try:
        code = main(["evaluate", "--method", "average", "--protocol", str(protocol), "--out", str(tmp_path / "o"),
                     "--no-flow-cache", *argv])
    except SystemExit as exit_:  # argparse: usage and one error line
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.strip().splitlines()[-1].startswith(("m3svd: error:", "m3svd evaluate: error:"))


def test_submit_refuses_a_partial_run(tmp_path, monkeypatch):
    """submit scores the full protocol itself; were a subset ever to reach it, the record is refused, none lands."""
    protocol = short_protocol(tmp_path)
    folder = write_frames(tmp_path / "frames", blend(0.4))
    real = ev.evaluate_methods
    monkeypatch.setattr(ev, "evaluate_methods", lambda *a, **k: real(*a, **k, subset=ev.Subset(frames=(0, 2))))
    lb = tmp_path / "lb"
    with pytest.raises(SubmissionError, match=r"scored on part of protocol short-sample@1 only"):
        submit(folder, "Blend", protocol, leaderboard_dir=lb, metadata={"training_data": "none"})
    assert not list(lb.glob("submissions/*"))


def test_progress_lines_every_tenth_or_30_seconds_with_an_eta():
    now = [0.0]
    stream = io.StringIO()
    bar = LineProgress(20, "evaluate", unit="clip", stream=stream, clock=lambda: now[0])
    for _ in range(20):
        now[0] += 1.0
        bar.update(1)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10  # every 10 %: 2, 4, ... 20 clips; close adds nothing new
    assert lines[0] == "evaluate: 2/20 clips (10%), 0m02s elapsed, ETA 0m18s"
    assert lines[-1] == "evaluate: 20/20 clips (100%), 0m20s elapsed"
    slow = io.StringIO()
    bar = LineProgress(1000, "clip", stream=slow, clock=lambda: now[0], step=None)
    for _ in range(5):
        now[0] += 12.0
        bar.update(1)
    assert slow.getvalue().splitlines() == ["clip: 3/1000 frames (0%), 0m36s elapsed, ETA 3h19m"]  # 12 s × 997


def test_evaluate_prints_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys):
    protocol = short_protocol(tmp_path)
    assert main(["evaluate", "--method", "average", "--protocol", str(protocol), "--out", str(tmp_path / "a"),
                 "--no-flow-cache"]) == 0
    err = capsys.readouterr().err  # pytest's capture is not a terminal
    assert re.search(r"^evaluate: 1/1 clips \(100%\), \d+m\d\ds elapsed$", err, re.M), err
    assert main(["evaluate", "--method", "max", "--protocol", str(protocol), "--out", str(tmp_path / "b"),
                 "--no-flow-cache", "--no-progress"]) == 0
    assert "evaluate:" not in capsys.readouterr().err


def test_several_methods_print_one_comparison_and_compare_reads_folders_and_records(tmp_path, capsys):
    protocol = short_protocol(tmp_path)
    out = tmp_path / "runs"
    assert main(["evaluate", "--method", "max,vi,average,laplacian", "--protocol", str(protocol), "--out", str(out),
                 "--no-flow-cache", "--no-progress"]) == 0
    text = capsys.readouterr().out
    table = text[text.index("short-sample@1: mean±half 95% CI"):].splitlines()
    assert re.split(r"\s+", table[1]) == ["method", "en↑", "sd↑", "nabf↓"]
    assert [line.split()[0] for line in table[2:]] == ["max", "laplacian", "reference", "vi", "average"]
    summaries = {m: read_summary(out / m / "summary.parquet").query(f"clip == '{OVERALL}'").set_index("metric")
                 for m in ("max", "laplacian")}
    en = {m: s.loc["en", "mean"] for m, s in summaries.items()}
    best = max(en, key=en.get)
    row = next(line for line in table if line.startswith(best + " "))
    assert f"{en[best]:.4f}±0.0000*" in row  # one clip: no spread; the best ranked method is starred
    lb = tmp_path / "lb"
    record = submit(write_frames(tmp_path / "frames", blend(0.4)), "Blend", protocol, leaderboard_dir=lb,
                    metadata={"training_data": "none"})
    assert main(["compare", str(record.path), str(out / "max"), str(out / "vi"), "--metrics", "nabf,en"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.split(r"\s+", lines[1]) == ["method", "nabf↓", "en↑"]
    assert [line.split()[0] for line in lines[2:]] == ["Blend", "max", "reference", "vi"]
    other = tmp_path / "other.toml"
    other.write_text(protocol.read_text().replace('id = "short-sample"', 'id = "other"'))
    assert main(["evaluate", "--method", "max", "--protocol", str(other), "--out", str(tmp_path / "o"),
                 "--no-flow-cache", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", str(out / "max"), str(tmp_path / "o")]) == 2
    assert "results on different protocols do not compare" in capsys.readouterr().err


def test_info_json_lists_every_clip_variant(capsys):
    assert main(["info", "sample", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["layout"], info["clip_count"], info["variants"]) == ("sample", 1, ["clean", "degraded"])
    assert [(c["clip"], c["variant"], c["frames"], c["width"], c["height"]) for c in info["clips"]] == [
        ("sample", "clean", 32, 320, 240), ("sample", "degraded", 32, 320, 240)]


def test_check_counts_clips_with_their_variants_under_each(capsys):
    assert main(["check", "sample", "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sample: layout sample, 1 clip(s) (2 clip-variants)"
    assert lines[1].split() == ["ok", "sample", "[test]"]
    assert [line.split(":")[0].strip() for line in lines if line.startswith("     ") and not
            line.startswith("       ")] == ["clean", "degraded"]
    assert lines[-1].startswith("1 of 1 clip(s) passed")
    assert main(["check", "sample", "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clip_count"] == 1 and [c["variant"] for c in report["clips"]] == ["clean", "degraded"]


def test_reported_table_ships_with_the_package_and_works_anywhere(tmp_path, capsys, monkeypatch):
    from m3svd.leaderboard import load_reported
    from m3svd.leaderboard.render import packaged_reported

    assert packaged_reported().is_file() and packaged_reported().parent.name == "leaderboard"
    repository = pd.read_csv(packaged_reported(), dtype=str, keep_default_na=False)
    monkeypatch.chdir(tmp_path)  # no leaderboard/ folder here
    assert load_reported(tmp_path).equals(repository) and load_reported(None).equals(repository)
    assert main(["leaderboard", "--reported", "--format", "csv"]) == 0
    assert capsys.readouterr().out.strip() == repository.to_csv(index=False).strip()
    own = tmp_path / "lb"
    own.mkdir()
    (own / "reported.csv").write_text(repository.head(3).to_csv(index=False))
    assert len(load_reported(own)) == 3  # a leaderboard folder's own table replaces the shipped one


@pytest.mark.network
def test_download_prints_byte_progress_lines_off_a_terminal(tmp_path, capsys):
    import hashlib
    import random
    from dataclasses import replace

    from http_faults import FaultServer

    from m3svd.data import download as dl
    from m3svd.data.subsets import FileEntry, get_subset

    blob = random.Random(3).randbytes(2_000_000)
    with FaultServer() as server:
        server.add("a.bin", blob)
        files = (FileEntry("a.bin", (server.url_for("a.bin", ""),), len(blob), hashlib.sha256(blob).hexdigest()),)
        subset = replace(get_subset("test-videos"), name="t", files=files)
        report = dl.download(subset, tmp_path, dl.Options(workers=1, timeout=5.0), show_progress="lines")
    assert report.ok
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("t: ") for line in lines)
    assert re.fullmatch(r"t: 2\.00 MB of 2\.00 MB \(100%\), \d+m\d\ds elapsed", lines[-1]), lines
    assert len(lines) <= 11  # every 10 % at most, not one per chunk


def test_submit_shows_scoring_progress_lines_unless_told_not_to(tmp_path, capsys):
    protocol = short_protocol(tmp_path)
    for i, quiet in enumerate((False, True)):
        folder = write_frames(tmp_path / f"frames{i}", blend(0.3 + 0.2 * i))
        argv = ["submit", str(folder), "--name", f"Blend {i}", "--protocol", str(protocol), "--dir",
                str(tmp_path / "lb"), "--training-data", "none"] + (["--no-progress"] if quiet else [])
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert ("evaluate: 1/1 clips (100%)" in err) is not quiet, err


@pytest.mark.parametrize("frames", [32, 4])  # every frame of the clip, or only the protocol's range [0, 4)
def test_frames_subset_of_saved_predictions_reads_the_right_frames(tmp_path, capsys, frames):
    protocol = short_protocol(tmp_path)
    fused = blend(0.4)[:frames]
    folder = write_frames(tmp_path / "pred", fused)
    out = tmp_path / "out"
    assert main(["evaluate", "--predictions", str(folder), "--name", "Blend", "--protocol", str(protocol), "--frames",
                 "2:4", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    rows = pd.read_parquet(out / "results.parquet")
    assert sorted(rows["frame"].unique()) == [2, 3]
    digests = rows.drop_duplicates("frame").set_index("frame")["fused_sha256"]
    assert digests[2] == hashlib.sha256(np.ascontiguousarray(fused[2]).data).hexdigest()
