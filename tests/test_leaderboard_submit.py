"""`m3svd submit` and `m3svd leaderboard build`: recomputed records, concurrent writers, rankings that refuse mixes."""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from leaderboard_kit import blend, short_protocol, submitter, write_frames

from m3svd import protocols
from m3svd.cli import main
from m3svd.evaluate import evaluate
from m3svd.files import sha256_file
from m3svd.leaderboard import LeaderboardError, Metadata, MixError, SubmissionError, build, submit
from m3svd.leaderboard.build import load_records
from m3svd.leaderboard.schema import OVERALL, TABLE_COLUMNS


@pytest.fixture(scope="module")
def protocol(tmp_path_factory) -> Path:
    return short_protocol(tmp_path_factory.mktemp("protocol"))


def test_a_record_holds_recomputed_rows_hashes_versions_and_metadata(tmp_path, protocol):
    folder = write_frames(tmp_path / "pred", blend(0.3))
    meta = Metadata(method="Blend", paper="https://example.org/paper", code="https://example.org/code@abc",
                    weights_sha256="0" * 64, training_data="none (training-free)", trained_on_m3svd_train=False)
    record = submit(folder, "Blend 0.3", protocol, metadata=meta, leaderboard_dir=tmp_path / "lb")
    assert record.path == tmp_path / "lb" / "submissions" / record.id
    assert sorted(p.name for p in record.path.iterdir()) == ["manifest.json", "results.parquet", "run.json",
                                                             "summary.parquet"]
    manifest = json.loads((record.path / "manifest.json").read_text())
    assert manifest["metadata"] == meta.to_dict() and manifest["complete"] is True
    assert manifest["protocol"]["sha256"] == protocols.load(protocol).sha256
    assert set(manifest["metrics"]) == {"en", "sd", "nabf"} and manifest["metrics"]["nabf"]["higher_is_better"] is False
    assert all(sha256_file(record.path / f) == h for f, h in manifest["files"].items())
    assert {"m3svd", "python", "numpy", "opencv"} <= set(manifest["versions"])
    rows = pd.read_parquet(record.path / "results.parquet")
    scored = evaluate(protocols.load(protocol), tmp_path / "direct", predictions=folder, name="Blend 0.3").results
    np.testing.assert_array_equal(rows["value"], scored["value"])  # the record is what evaluate computes
    assert set(rows["source"]) == {"predictions"} and set(rows["frame"]) == {0, 1, 2, 3}
    index = json.loads((tmp_path / "lb" / "index.json").read_text())
    assert [e["id"] for e in index["submissions"]] == [record.id]
    assert not list((tmp_path / "lb").rglob("*.tmp")) and not any((tmp_path / "lb" / ".staging").iterdir())


def test_concurrent_submitters_lose_and_corrupt_nothing(tmp_path, protocol):
    """4 writer processes submit at once: 2 distinct folders each, plus one folder all four try to submit."""
    writers, own = 4, 2
    shared = str(write_frames(tmp_path / "shared", blend(0.45)))  # not 0.9: 90 % IR is refused as an IR copy
    plans = {w: [str(write_frames(tmp_path / f"w{w}-{k}", blend(0.1 + 0.1 * (w * own + k)))) for k in range(own)]
             for w in range(writers)}
    lb = tmp_path / "lb"
    context = multiprocessing.get_context("spawn")
    barrier, queue = context.Barrier(writers), context.Queue()
    procs = [context.Process(target=submitter, args=(w, plans[w][:1] + [shared] + plans[w][1:], str(protocol),
                                                      str(lb), barrier, queue)) for w in range(writers)]
    started = time.monotonic()
    for p in procs:
        p.start()
    outcomes = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    elapsed = time.monotonic() - started
    assert [error for _, _, error in outcomes if error] == []
    results = dict(pair for _, pairs, _ in outcomes for pair in pairs)
    attempts = [pair for _, pairs, _ in outcomes for pair in pairs]
    accepted = {folder: r[3:] for folder, r in attempts if r.startswith("ok:")}
    refused = [(folder, r) for folder, r in attempts if r.startswith("refused:")]
    distinct = [f for plan in plans.values() for f in plan]
    # every distinct folder landed; the shared one exactly once, the other three attempts refused as duplicates
    assert all(results[f].startswith("ok:") for f in distinct)
    assert sum(1 for f, r in attempts if f == shared and r.startswith("ok:")) == 1
    assert len(refused) == writers - 1 and all("duplicate of submission" in r for _, r in refused)
    records = sorted(p.name for p in (lb / "submissions").iterdir())
    expected = writers * own + 1
    assert len(records) == expected == len(set(accepted.values()))
    assert sorted(accepted.values()) == records
    index = json.loads((lb / "index.json").read_text())
    assert sorted(e["id"] for e in index["submissions"]) == records  # the shared index lost no writer's entry
    table = build(lb)  # checks every file of every record against its manifest's sha256
    assert table["submission"].nunique() == expected
    assert not list(lb.rglob("*.tmp")) and not any((lb / ".staging").iterdir())
    print(f"\nconcurrent submit: {writers} writers, {len(attempts)} attempts, {len(records)} records, "
          f"{len(refused)} duplicate refusals, 0 losses, {elapsed:.1f} s")


def test_a_duplicate_that_lands_while_scoring_is_refused_at_commit(tmp_path, protocol, monkeypatch):
    """Both submitters of the same frames pass validation; the check under the lock lets only the first land."""
    import m3svd.evaluate

    real = m3svd.evaluate.evaluate_methods
    lb = tmp_path / "lb"
    rival = write_frames(tmp_path / "rival", blend(0.6))
    landed = []

    def evaluate_while_a_rival_lands(*args, **kwargs):
        if not landed:
            landed.append(None)  # the rival's own scoring runs unpatched
            landed[0] = submit(rival, "Rival", protocol, leaderboard_dir=lb)
        return real(*args, **kwargs)

    monkeypatch.setattr(m3svd.evaluate, "evaluate_methods", evaluate_while_a_rival_lands)
    mine = write_frames(tmp_path / "mine", blend(0.6))
    with pytest.raises(SubmissionError, match=rf"{mine}: duplicate of submission \S+ \(Rival\): the same fused"):
        submit(mine, "Mine", protocol, leaderboard_dir=lb)
    assert [p.name for p in (lb / "submissions").iterdir()] == [landed[0].id]
    assert not any((lb / ".staging").iterdir())


@pytest.fixture(scope="module")
def three(tmp_path_factory, protocol) -> Path:
    """A leaderboard with three records on the short protocol."""
    base = tmp_path_factory.mktemp("three")
    lb = base / "lb"
    for i, weight in enumerate((0.2, 0.5, 0.8)):
        submit(write_frames(base / f"p{i}", blend(weight)), f"Blend {weight}", protocol, leaderboard_dir=lb,
               metadata={"trained_on_m3svd_train": i == 0, "code": "https://example.org/code"})
    return lb


def test_build_writes_a_ranked_long_table(three):
    table = build(three)
    stored = pd.read_parquet(three / "leaderboard.parquet")
    pd.testing.assert_frame_equal(stored, table)
    assert list(table.columns) == TABLE_COLUMNS
    overall = table[table["clip"] == OVERALL]
    assert len(overall) == 3 * 3 and set(table["clip"]) == {OVERALL, "sample"}
    for metric, group in overall.groupby("metric"):
        best = group.sort_values("value", ascending=not group["higher_is_better"].iloc[0]).iloc[0]
        assert best["rank"] == 1, metric
        assert sorted(group["rank"]) == [1, 2, 3]
    means = overall.groupby("submission")["rank"].mean()  # the short protocol ranks by all three, equally
    assert np.allclose(overall.groupby("submission")["score"].first()[means.index], means)
    assert set(overall["group"]) == {"primary"} and np.allclose(overall["weight"], 1 / 3)
    assert set(overall["convention"]) == {"m3svd"} and set(overall["trained_on_m3svd_train"]) == {"yes", "no"}
    assert (overall["ci_low"] <= overall["value"]).all() and (overall["value"] <= overall["ci_high"]).all()


def _copy_lb(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".lock", ".staging"))
    return dst


def _rewrite(record: Path, change) -> None:
    """Change a record's rows and re-hash its manifest, as a record from another toolkit version would look."""
    rows = pd.read_parquet(record / "results.parquet")
    change(rows)
    rows.to_parquet(record / "results.parquet", index=False)
    manifest = json.loads((record / "manifest.json").read_text())
    manifest["files"]["results.parquet"] = sha256_file(record / "results.parquet")
    (record / "manifest.json").write_text(json.dumps(manifest))


def test_build_refuses_to_mix_metric_versions(three, tmp_path):
    lb = _copy_lb(three, tmp_path / "lb")
    victim = sorted((lb / "submissions").iterdir())[0]
    _rewrite(victim, lambda rows: rows.__setitem__("metric_version",
                                                   np.where(rows["metric"] == "sd", "2", rows["metric_version"])))
    with pytest.raises(MixError, match=r"protocol short-sample@1: submissions disagree on the version of metric "
                                       rf"'sd' \(1: .*; 2: {victim.name}\); they cannot share one ranking"):
        build(lb)


def test_build_refuses_to_mix_conventions(three, tmp_path):
    lb = _copy_lb(three, tmp_path / "lb")
    victim = sorted((lb / "submissions").iterdir())[1]
    _rewrite(victim, lambda rows: rows.__setitem__("convention", "vifb"))
    with pytest.raises(MixError, match=r"disagree on the convention of metric 'en' \(m3svd: .*; vifb: "):
        build(lb)


def test_build_refuses_to_mix_protocol_files(three, tmp_path):
    """Same protocol id and version, different bytes (here: one word of the description) — another hash."""
    lb = _copy_lb(three, tmp_path / "lb")
    other = short_protocol(tmp_path, description="four frames of the sample, three metrics; edited")
    submit(write_frames(tmp_path / "p", blend(0.35)), "Edited", other, leaderboard_dir=lb)
    with pytest.raises(MixError, match=r"protocol short-sample@1: submissions disagree on the protocol file's sha256 "
                                       r".* rescore them with the same protocol file"):
        build(lb)


def test_build_admits_only_intact_complete_records(three, tmp_path, capsys):
    lb = _copy_lb(three, tmp_path / "lb")
    victim = sorted((lb / "submissions").iterdir())[0]
    manifest = json.loads((victim / "manifest.json").read_text())
    manifest["complete"] = False
    (victim / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LeaderboardError, match="not a complete protocol run; only records of a protocol's complete"):
        load_records(lb)
    table = build(lb)  # the damaged record is left out and named; the others still build
    assert victim.name not in set(table["submission"]) and table["submission"].nunique() == 2
    assert len(table.attrs["left_out"]) == 1 and "not a complete protocol run" in table.attrs["left_out"][0]
    manifest["complete"] = True
    (victim / "manifest.json").write_text(json.dumps(manifest))
    with open(victim / "results.parquet", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\0\0\0\0")
    with pytest.raises(LeaderboardError, match="results.parquet: sha256 differs from the record's manifest.json"):
        load_records(lb)
    assert main(["leaderboard", "build", "--dir", str(lb)]) == 1
    err = capsys.readouterr().err
    assert f"left out: {victim / 'results.parquet'}: sha256 differs" in err and "1 damaged record(s) left out" in err
    assert pd.read_parquet(lb / "leaderboard.parquet")["submission"].nunique() == 2


def test_cli_submit_records_metadata(tmp_path, protocol, capsys):
    folder = write_frames(tmp_path / "pred", blend(0.45))
    lb = tmp_path / "lb"
    code = main(["submit", str(folder), "--name", "CLI Blend", "--protocol", str(protocol), "--dir", str(lb),
                 "--paper", "https://example.org/p", "--weights-sha256", "a" * 64, "--training-data", "nothing",
                 "--trained-on-m3svd-train", "false"])
    out = capsys.readouterr().out
    assert code == 0 and "submitted" in out and "CLI Blend" in out
    manifest = json.loads(next((lb / "submissions").glob("*/manifest.json")).read_text())
    assert manifest["metadata"]["trained_on_m3svd_train"] is False
    assert manifest["metadata"]["weights_sha256"] == "a" * 64
    assert main(["submit", str(folder), "--name", "Again", "--protocol", str(protocol), "--dir", str(lb)]) == 2
    captured = capsys.readouterr()
    assert "duplicate of submission" in captured.err and len(captured.err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["submit", str(folder), "--name", "X", "--protocol", str(protocol), "--trained-on-m3svd-train", "maybe"])


def test_a_killed_submits_staging_is_cleaned_and_a_live_ones_kept(tmp_path, protocol):
    """A submit killed mid-way leaves ``.staging/<id>/``; the next submit (or build) removes it, but never the
    folder of a submit still running (it holds the lock on its ``.alive``)."""
    import fcntl

    lb = tmp_path / "lb"
    dead, live, fresh = (lb / ".staging" / name for name in ("dead", "live", "fresh"))
    for folder in (dead, live, fresh):
        (folder / "run" / "clips").mkdir(parents=True)
        (folder / "run" / "clips" / "x.parquet").write_bytes(b"PAR1 half")
    (dead / ".alive").touch()
    (live / ".alive").touch()  # fresh: no lock file yet, just made; kept for a minute
    with open(live / ".alive", "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        submit(write_frames(tmp_path / "pred", blend(0.3)), "Blend", protocol, leaderboard_dir=lb)
        assert not dead.exists() and live.exists() and fresh.exists()
    build(lb)
    assert not live.exists() and fresh.exists()
