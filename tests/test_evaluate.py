"""`m3svd evaluate`: protocols → fused frames written once → long-format results with provenance → summary."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic import protocol_file

from m3svd import methods, metrics, protocols
from m3svd.cli import main
from m3svd.data import open_dataset
from m3svd.data.frames import read_image
from m3svd.evaluate import OVERALL, ROW_COLUMNS, EvaluationError, MethodSpec, evaluate, evaluate_methods
from m3svd.methods.base import Fusion, Method, check_window


def _protocol_file(tmp_path: Path, **fields) -> Path:
    """Four degraded frames of each clip of the shared M3SVD tree, three image metrics and restoration."""
    defaults = {"variant": "degraded", "image": ["en", "qabf", "ssim"], "restoration": ["psnr", "ssim"]}
    return protocol_file(tmp_path / "short.toml", **{**defaults, **fields})


@pytest.fixture
def restorer():
    """A registered method that 'restores' by returning the input, so restoration scores are predictable."""

    class Echo(Method):
        name = "test-echo"
        restores = True
        temporal_window = 3

        def fuse(self, ir, vi):
            check_window(ir, vi)
            return Fusion(vi.copy(), ir=ir.copy(), vi=vi.copy())

    methods.list()
    methods.register(Echo)
    yield Echo
    del methods._REGISTRY["test-echo"]


def test_every_bundled_protocol_loads_with_a_hash():
    loaded = {p.id: p for p in protocols.list()}
    assert {"m3svd-clean", "m3svd-degraded", "m3svd-visible-only", "m3svd-test-videos", "tno", "sample", "tno42",
            "vifb21", "m3svd-val-clean", "m3svd-val-degraded", "m3svd-val-visible-only"} <= set(loaded)
    assert loaded["m3svd-degraded"].restoration_metrics == ("psnr", "ssim")
    assert loaded["m3svd-visible-only"].inputs == ("vi",)
    assert all(len(p.sha256) == 64 for p in loaded.values())
    with pytest.raises(protocols.ProtocolError, match="did you mean 'm3svd-clean'"):
        protocols.load("m3svd-claen")


def test_bad_protocol_files_fail_at_load(tmp_path):
    path = _protocol_file(tmp_path, image=["en", "qabff"])
    with pytest.raises(protocols.ProtocolError, match="qabff.*did you mean 'qabf'"):
        protocols.load(path)
    path.write_text(path.read_text().replace("frames = [0, 4]", "frames = 4"))
    with pytest.raises(protocols.ProtocolError, match="frames must be"):
        protocols.load(path)


def test_sample_run_writes_frames_once_rows_with_provenance_and_a_summary(tmp_path):
    run = evaluate(protocols.load("sample"), tmp_path / "out", method=MethodSpec("average"))
    rows = run.results
    protocol = protocols.load("sample")
    assert list(rows.columns) == ROW_COLUMNS
    spans = [metrics.get(n).span for n in protocol.temporal_metrics]
    assert len(rows) == 32 * len(protocol.image_metrics) + sum(32 - (span - 1) for span in spans)
    assert set(rows["protocol_sha256"]) == {protocol.sha256} and set(rows["method"]) == {"average"}
    assert rows["value"].notna().all() and set(rows["device"]) == {"cpu"}
    clip = open_dataset("sample").select(variant="clean")[0]
    ir, vi = clip.frames(0, 32)
    expected = methods.create("average").fuse(ir, vi).fused
    written = sorted((tmp_path / "out" / "fused" / "sample").glob("*.png"))
    assert len(written) == 32 and not list((tmp_path / "out").rglob("*.tmp"))
    assert np.array_equal(read_image(written[5]), expected[5])  # lossless
    en = rows[rows["metric"] == "en"].sort_values("frame")
    assert np.allclose(en["value"], metrics.get("en")(expected, ir=ir, vi=vi))
    overall = run.summary[(run.summary["clip"] == OVERALL) & (run.summary["metric"] == "en")].iloc[0]
    assert overall["mean"] == pytest.approx(en["value"].mean()) and overall["frames"] == 32
    stored = pd.read_parquet(tmp_path / "out" / "results.parquet")
    pd.testing.assert_frame_equal(stored, rows)
    assert json.loads((tmp_path / "out" / "run.json").read_text())["complete"] is True


def test_rerun_skips_done_clips_and_redoes_them_when_the_method_changes(tmp_path):
    protocol = protocols.load("sample")
    first = evaluate(protocol, tmp_path, method=MethodSpec("laplacian"))
    again = evaluate(protocol, tmp_path, method=MethodSpec("laplacian"))
    assert again.skipped == ["sample"]
    pd.testing.assert_frame_equal(first.results, again.results)
    changed = evaluate(protocol, tmp_path, method=MethodSpec("laplacian", options=(("levels", 2),)))
    assert changed.skipped == []
    assert set(changed.results["method_options"]) == {'{"levels": 2}'}


def test_predictions_score_the_same_as_the_method_that_made_them(tmp_path):
    protocol = protocols.load("sample")
    made = evaluate(protocol, tmp_path / "made", method=MethodSpec("max"))
    scored = evaluate(protocol, tmp_path / "scored", predictions=tmp_path / "made" / "fused", name="MyMax")
    assert set(scored.results["method"]) == {"MyMax"} and set(scored.results["source"]) == {"predictions"}
    np.testing.assert_array_equal(made.results["value"].to_numpy(), scored.results["value"].to_numpy())
    np.testing.assert_array_equal(made.results["fused_sha256"], scored.results["fused_sha256"])


@pytest.mark.slow
def test_several_predictions_folders_in_one_pass_equal_separate_runs(tmp_path, monkeypatch, capsys):
    """`--predictions A,B --name X,Y`: one pass over the sources (their statistics computed once per chunk, not once
    per folder), and each folder's rows equal those of its own run."""
    protocol = protocols.load("sample")
    for name in ("max", "average"):
        evaluate(protocol, tmp_path / name, method=MethodSpec(name))
    alone = {name: evaluate(protocol, tmp_path / f"alone-{name}", predictions=tmp_path / name / "fused", name=name)
             for name in ("max", "average")}
    built = []
    real = metrics.Sources

    def counted(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(metrics, "Sources", counted)
    folders = ",".join(str(tmp_path / name / "fused") for name in ("max", "average"))
    assert main(["evaluate", "--predictions", folders, "--name", "max,average", "--protocol", "sample",
                 "--out", str(tmp_path / "both"), "--no-progress"]) == 0
    assert len(built) == 4  # 32 frames in chunks of 8, once for both folders
    for name in ("max", "average"):
        both = pd.read_parquet(tmp_path / "both" / name / "results.parquet")
        assert set(both["method"]) == {name}
        pd.testing.assert_frame_equal(both, alone[name].results)
    assert "max" in capsys.readouterr().out


def test_predictions_need_one_name_per_folder(tmp_path, capsys):
    assert main(["evaluate", "--predictions", f"{tmp_path}/a,{tmp_path}/b", "--name", "x", "--protocol",
                 "sample"]) == 2
    assert "--predictions has 2 folder(s) but --name 1 name(s)" in capsys.readouterr().err


def test_predictions_with_a_missing_frame_are_refused(tmp_path):
    evaluate(protocols.load("sample"), tmp_path / "made", method=MethodSpec("max"))
    sorted((tmp_path / "made" / "fused" / "sample").glob("*.png"))[-1].unlink()
    # named as `m3svd validate` names it, before anything is scored
    with pytest.raises(EvaluationError, match=r"sample/000031\.png: missing \(frame 31 of the clip's 32; found 31 "
                                              r"frames\)"):
        evaluate(protocols.load("sample"), tmp_path / "scored", predictions=tmp_path / "made" / "fused", name="x")


def test_degraded_protocol_scores_fusion_against_clean_and_restoration(tmp_path, m3svd_frames, restorer):
    protocol = protocols.load(_protocol_file(tmp_path))
    run = evaluate(protocol, tmp_path / "out", method=MethodSpec("test-echo"), root=m3svd_frames)
    rows = run.results
    assert set(rows["clip"]) == {"0111_1716", "0114_1611", "0115_1831"} and set(rows["frame"]) == {0, 1, 2, 3}
    assert set(rows["variant"]) == {"degraded"}
    assert {"restored_ir_psnr", "restored_ir_ssim", "restored_vi_psnr", "restored_vi_ssim"} <= set(rows["metric"])
    clipset = open_dataset(m3svd_frames)
    degraded = clipset.clip("0111_1716", "test", "degraded")
    noisy_ir, _ = degraded.frames(0, 4)
    clean_ir, _ = degraded.reference.frames(0, 4)
    psnr = rows[(rows["clip"] == "0111_1716") & (rows["metric"] == "restored_ir_psnr")].sort_values("frame")
    mse = ((noisy_ir.astype(float) - clean_ir) ** 2).reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(psnr["value"], 10 * np.log10(255**2 / mse))
    restored = rows[rows["metric"].str.startswith("restored_")]
    assert set(restored["convention"]) == {"restoration"} and set(restored["kind"]) == {"restoration"}
    assert set(restored["metric_version"]) == {"1"}  # the registered definitions' versions, not the protocol's


def test_workers_give_identical_results(tmp_path, m3svd_frames):
    protocol = protocols.load(_protocol_file(tmp_path, frames=[0, 2], variant="clean", restoration=[]))
    one = evaluate(protocol, tmp_path / "one", method=MethodSpec("gff"), root=m3svd_frames)
    two = evaluate(protocol, tmp_path / "two", method=MethodSpec("gff"), root=m3svd_frames, workers=2)
    pd.testing.assert_frame_equal(one.results, two.results)


def test_methods_that_need_infrared_are_refused_on_visible_only(tmp_path, m3svd_frames):
    protocol = protocols.load(_protocol_file(tmp_path, inputs=["vi"], restoration=[]))
    with pytest.raises(EvaluationError, match="'gff' needs infrared input"):
        evaluate(protocol, tmp_path / "out", method=MethodSpec("gff"), root=m3svd_frames)


def test_no_data_explains_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("M3SVD_ROOT", str(tmp_path))
    with pytest.raises(EvaluationError, match="m3svd download --subset val-frames.*--protocol sample"):
        evaluate(protocols.load("m3svd-clean"), tmp_path / "out", method=MethodSpec("average"))


def test_cli_evaluate_prints_the_table_and_types_options(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["evaluate", "--method", "dwt", "--protocol", "sample", "--out", str(out),
                 "--option", "levels=2"]) == 0
    printed = capsys.readouterr().out
    assert "dwt on sample@3 (1 clip(s), 32 frames)" in printed and "qabf↑" in printed and "±95% CI" in printed
    assert main(["evaluate", "--method", "dwt", "--protocol", "sample", "--out", str(out),
                 "--option", "levels=two"]) == 2
    assert "--option levels: expected a int, found 'two'" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(out / "fused"), "--protocol", "sample"]) == 2
    assert "--predictions needs --name" in capsys.readouterr().err


def test_ray_executor_gives_identical_results(tmp_path, m3svd_frames):
    pytest.importorskip("ray", reason="the `distributed` extra (ray) is not installed")
    protocol = protocols.load(_protocol_file(tmp_path, frames=[0, 2], variant="clean", restoration=[]))
    local = evaluate(protocol, tmp_path / "local", method=MethodSpec("average"), root=m3svd_frames)
    distributed = evaluate(protocol, tmp_path / "ray", method=MethodSpec("average"), root=m3svd_frames,
                           executor="ray", workers=2)
    pd.testing.assert_frame_equal(local.results, distributed.results)


def test_undefined_frames_are_recorded_counted_and_said_not_fatal(tmp_path):
    """The IR sanity row makes F − IR constant, so SCD is undefined on every frame: the run goes on and says so."""
    lines = []
    run = evaluate(protocols.load("sample"), tmp_path, method=MethodSpec("ir"), log=lines.append)
    scd = run.results[run.results["metric"] == "scd"]["value"]
    assert len(scd) == 32 and not np.isfinite(scd).any()
    overall = run.summary[(run.summary["clip"] == OVERALL) & (run.summary["metric"] == "scd")].iloc[0]
    assert overall["undefined"] == 32 and np.isnan(overall["mean"])
    assert any(line.startswith("scd: undefined on 32 of 32 frames") for line in lines)
    en = run.summary[(run.summary["clip"] == OVERALL) & (run.summary["metric"] == "en")].iloc[0]
    assert en["undefined"] == 0 and np.isfinite(en["mean"])


@pytest.mark.slow
def test_metrics_on_torch_give_the_numpy_values_undefined_frames_included(tmp_path):
    protocol = protocols.load("sample")
    numpy_run = evaluate(protocol, tmp_path / "numpy", method=MethodSpec("ir"), flow_cache=False)
    torch_run = evaluate(protocol, tmp_path / "torch", method=MethodSpec("ir"), flow_cache=False, metrics_device="cpu")
    a, b = numpy_run.results["value"].to_numpy(), torch_run.results["value"].to_numpy()
    assert (numpy_run.results["metric"] == torch_run.results["metric"]).all()
    np.testing.assert_array_equal(np.isfinite(a), np.isfinite(b))  # scd undefined on both paths, never 0
    np.testing.assert_allclose(a[np.isfinite(a)], b[np.isfinite(b)], rtol=1e-9)
    assert json.loads((tmp_path / "torch" / "run.json").read_text())["metrics_device"] == "cpu"


def test_a_bad_metrics_device_is_one_clear_line(tmp_path):
    with pytest.raises(EvaluationError, match="'gpu0' is not a torch device"):
        evaluate(protocols.load("sample"), tmp_path, method=MethodSpec("ir"), metrics_device="gpu0")


@pytest.mark.slow
def test_several_methods_in_one_pass_equal_separate_runs_and_share_source_statistics(tmp_path, m3svd_frames,
                                                                                        monkeypatch):
    protocol = protocols.load(_protocol_file(tmp_path, frames=[0, 17], variant="clean", restoration=[],
                                             clips=["0111_1716"], image=["en", "qabf"],
                                             temporal=["flicker", "tgf"]))
    names = ("gff-temporal", "average")  # windows of 16 overlapping 8, and single frames, in lockstep
    separate = {n: evaluate(protocol, tmp_path / "separate" / n, method=MethodSpec(n), root=m3svd_frames,
                            flow_cache=False) for n in names}
    built = []
    real = metrics.Sources

    def counting(*args, **kwargs):
        built.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(metrics, "Sources", counting)
    together = evaluate_methods(protocol, [(MethodSpec(n), tmp_path / "together" / n) for n in names],
                                root=m3svd_frames, flow_cache=False)
    clips = together[0].results["clip"].nunique()
    assert len(built) == clips * 3  # one per 8-frame chunk of each clip, not one per method
    for name, run in zip(names, together, strict=True):
        pd.testing.assert_frame_equal(separate[name].results, run.results)
        pd.testing.assert_frame_equal(separate[name].summary, run.summary)
    again = evaluate_methods(protocol, [(MethodSpec(n), tmp_path / "together" / n) for n in names],
                             root=m3svd_frames, flow_cache=False)
    assert all(sorted(run.skipped) == sorted(together[0].results["clip"].unique()) for run in again)


def test_cli_evaluates_comma_separated_methods_into_one_folder_each(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["evaluate", "--method", "dwt,max", "--protocol", "sample", "--out", str(out), "--no-flow-cache"]) == 0
    printed = capsys.readouterr().out
    assert "dwt on sample@3" in printed and "max on sample@3" in printed
    assert set(pd.read_parquet(out / "max" / "results.parquet")["method"]) == {"max"}
    assert (out / "dwt" / "fused" / "sample").is_dir()
    assert main(["evaluate", "--method", "dwt,max", "--protocol", "sample", "--option", "levels=2"]) == 2
    assert "--weights and --option belong to one method" in capsys.readouterr().err


def test_rerun_recomputes_after_an_upgrade_or_a_damaged_clip_file(tmp_path, monkeypatch, capsys):
    """The run key holds the toolkit version and every metric's version; an unreadable clips/<clip>.parquet is
    recomputed (and said so), never a traceback."""
    from leaderboard_kit import short_protocol

    from m3svd.evaluate import store

    protocol = protocols.load(short_protocol(tmp_path))
    lines = []
    first = evaluate(protocol, tmp_path / "out", method=MethodSpec("average"), log=lines.append)
    assert evaluate(protocol, tmp_path / "out", method=MethodSpec("average")).skipped == ["sample"]
    monkeypatch.setattr(store, "__version__", "999.0")
    assert evaluate(protocol, tmp_path / "out", method=MethodSpec("average")).skipped == []
    monkeypatch.undo()
    assert evaluate(protocol, tmp_path / "out", method=MethodSpec("average")).skipped == []  # the old key again
    from dataclasses import replace

    metrics.get("en")  # registry loaded
    monkeypatch.setitem(metrics._REGISTRY, ("en", "m3svd"), replace(metrics.get("en"), version="2"))
    bumped = evaluate(protocol, tmp_path / "out", method=MethodSpec("average"))
    assert bumped.skipped == [] and set(bumped.results.loc[bumped.results["metric"] == "en", "metric_version"]) == {"2"}
    monkeypatch.undo()
    clip_file = tmp_path / "out" / "clips" / "sample.parquet"
    clip_file.write_bytes(clip_file.read_bytes()[:200])  # truncated, as a crash or a full disk leaves it
    again = evaluate(protocol, tmp_path / "out", method=MethodSpec("average"), log=lines.append)
    assert again.skipped == [] and any("sample.parquet: unreadable" in line and "recomputed" in line
                                       for line in lines)
    pd.testing.assert_frame_equal(again.results.drop(columns="run_key"), first.results.drop(columns="run_key"))
