"""Ranking rules: each protocol's declared [ranking] orders its table, undefined values rank last and stay in the
score, and degenerate outputs (constant, a source up to a grey-level mapping, frozen, duplicates) are refused."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from leaderboard_kit import blend, sample_frames, short_protocol, write_frames
from synthetic import protocol_file

from m3svd import protocols
from m3svd.leaderboard import SubmissionError, build, render, submit, validate
from m3svd.leaderboard import degenerate as dg
from m3svd.leaderboard.build import _ranked
from m3svd.leaderboard.schema import OVERALL
from m3svd.protocols import ProtocolError, Ranking, RankingGroup

VIFB_FUSED = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "vifb" / "fused_images"
VIFB_INPUT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vifb" / "input"


# -- the [ranking] section -------------------------------------------------------------------------------------------
def test_every_bundled_protocol_declares_a_ranking_of_its_own_metrics():
    for protocol in protocols.list():
        assert protocol.ranking is not None, protocol.key
        assert set(protocol.ranking.metrics) <= set(protocol.image_metrics + protocol.temporal_metrics)
        assert abs(sum(protocol.ranking.weights().values()) - 1) < 1e-12
        if protocol.temporal_metrics:  # video protocols rank by the temporal metric that penalises frozen output
            assert "tgf" in protocol.ranking.metrics, protocol.key


BAD_RANKINGS = [
    ('primary = ["en", "vif"]', r"\[ranking\] primary names 'vif', which is not one of this protocol's image or "
                                r"temporal metrics \(en, sd, nabf\)"),
    ('primary = []', r"\[ranking\] primary: expected a non-empty list of metric names, found \[\]"),
    ('primary = ["en"]\ngroups = {a = {metrics = ["sd"], weight = 1}}', r"\[ranking\]: expected exactly one of "
                                                                       r"primary .* or groups"),
    ('[ranking.groups]\na = {metrics = ["en"], weight = 0}', r"\[ranking\] group 'a': weight must be a positive "
                                                             r"number, found 0"),
    ('[ranking.groups]\na = {metrics = ["en"], weight = -2.5}', r"weight must be a positive number, found -2.5"),
    ('[ranking.groups]\na = {metrics = ["en"], weight = "1"}', r"weight must be a positive number, found '1'"),
    ('[ranking.groups]\na = {metrics = ["en"]}', r"\[ranking\] group 'a': missing 'weight'; expected keys metrics, "
                                                 r"weight"),
    ('[ranking.groups]\na = {metrics = ["en", "sd"], weight = 1}\nb = {metrics = ["sd"], weight = 1}',
     r"\[ranking\] group 'b' names 'sd', already in group 'a'; a metric counts once"),
    ('primry = ["en"]', r"\[ranking\]: unknown key 'primry'; expected primary"),
    ('primary = ["nabff"]', r"names 'nabff', .* \(did you mean 'nabf'\?\)"),
]


@pytest.mark.parametrize("body, message", BAD_RANKINGS, ids=[m[:30] for _, m in BAD_RANKINGS])
def test_ranking_faults_get_one_line_each(body, message, tmp_path):
    path = short_protocol(tmp_path, ranking=body)
    text = path.read_text()
    if body.startswith("[ranking."):  # a sub-table needs no [ranking] header of its own
        path.write_text(text.replace("[ranking]\n", ""))
    with pytest.raises(ProtocolError) as error:
        protocols.load(str(path))
    assert re.search(message, str(error.value)), str(error.value)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_groups_weigh_their_metrics_evenly(tmp_path):
    path = short_protocol(tmp_path, ranking="")
    path.write_text(path.read_text().replace("[ranking]\n", "[ranking.groups]\n"
                                             'a = {metrics = ["en", "sd"], weight = 3}\nb = {metrics = ["nabf"], '
                                             "weight = 1.5}\n"))
    ranking = protocols.load(str(path)).ranking
    assert ranking == Ranking((RankingGroup("a", ("en", "sd"), 3.0), RankingGroup("b", ("nabf",), 1.5)))
    assert ranking.weights() == pytest.approx({"en": 1 / 3, "sd": 1 / 3, "nabf": 1 / 3})
    assert Ranking.from_dict(ranking.to_dict()) == ranking


def test_submit_refuses_a_protocol_without_ranking(tmp_path):
    protocol = short_protocol(tmp_path, ranking=None)
    with pytest.raises(SubmissionError, match=r"declares no \[ranking\] \(primary metrics or weighted groups\)"):
        submit(write_frames(tmp_path / "f", blend(0.5)), "Blend", protocol, leaderboard_dir=tmp_path / "lb")


# -- ranking by the declaration ------------------------------------------------------------------------------------
def test_the_declared_primaries_decide_even_against_most_other_metrics(tmp_path):
    """Blend 0.5 beats blend 0.2 on ssim and cc only; blend 0.2 wins en, sd, sf and qabf. An equal-weight mean rank
    over all six would put 0.2 first; the protocol ranks by ssim and cc (weight 3) and qabf (weight 1)."""
    protocol = protocol_file(tmp_path / "p.toml", id="short-sample", layouts=["sample"], folders=["sample"],
                             split=None, image=["en", "sd", "sf", "qabf", "ssim", "cc"],
                             ranking="[ranking.groups]\nfidelity = {metrics = [\"ssim\", \"cc\"], weight = 3}\n"
                                     "edges = {metrics = [\"qabf\"], weight = 1}")
    lb = tmp_path / "lb"
    for weight in (0.2, 0.5):
        submit(write_frames(tmp_path / f"w{weight}", blend(weight)), f"Blend {weight}", protocol, leaderboard_dir=lb)
    table = build(lb)
    overall = table[table["clip"] == OVERALL]
    ranks = overall.pivot_table(index="method", columns="metric", values="rank")
    assert (ranks.loc["Blend 0.2", ["en", "sd", "sf", "qabf"]] == 1).all()
    assert (ranks.loc["Blend 0.5", ["ssim", "cc"]] == 1).all()
    assert ranks.loc["Blend 0.2"].mean() < ranks.loc["Blend 0.5"].mean()  # what the old rule would have said
    first = overall.drop_duplicates("method").set_index("method")
    assert first.loc["Blend 0.5", "position"] == 1 and first.loc["Blend 0.2", "position"] == 2
    assert first.loc["Blend 0.5", "score"] == pytest.approx(0.75 * 1 + 0.25 * 2)
    weights = overall.drop_duplicates("metric").set_index("metric")
    assert weights.loc["ssim", "group"] == "fidelity" and weights.loc["en", "group"] == ""
    assert weights.loc["en", "weight"] == 0 and weights.loc["qabf", "weight"] == pytest.approx(0.25)
    text = render(table, "table").splitlines()
    assert "fidelity (ssim, cc) 75% · edges (qabf) 25%" in text[0]
    assert text[1].split()[3:6] == ["ssim↑", "cc↑", "qabf↑"]  # ranking metrics first, then the rest
    assert [line.split()[1:3] for line in text[2:]] == [["Blend", "0.5"], ["Blend", "0.2"]]
    assert overall["ci_low"].notna().all()  # every metric keeps its own rank and interval


def _table(values: dict[str, dict[str, float]], undefined: dict | None = None, higher: dict | None = None):
    rows = []
    for submission, by_metric in values.items():
        for metric, value in by_metric.items():
            rows.append({"protocol": "p@1", "clip": OVERALL, "submission": submission, "metric": metric,
                         "value": value, "undefined": (undefined or {}).get((submission, metric), 0),
                         "higher_is_better": (higher or {}).get(metric, True)})
    return pd.DataFrame(rows)


def test_undefined_values_rank_last_and_stay_in_the_score():
    """A black frame's cc is undefined: it must not win by dropping cc from its score (issue 23)."""
    ranking = Ranking((RankingGroup("info", ("mi", "cc"), 1.0), RankingGroup("time", ("tgf",), 1.0)))
    table = _table({"black": {"mi": 3.5, "cc": float("nan"), "tgf": 0.1},
                    "fusion": {"mi": 3.0, "cc": 0.6, "tgf": 0.9},
                    "other": {"mi": 2.0, "cc": 0.5, "tgf": 0.8},
                    "partly": {"mi": 2.5, "cc": 0.9, "tgf": 0.7}},
                   undefined={("partly", "cc"): 3}, higher={"tgf": False})
    ranked = _ranked(table, {"p@1": ranking}).set_index(["submission", "metric"])
    assert ranked.loc[("black", "cc"), "rank"] == 4  # last of 4
    assert ranked.loc[("partly", "cc"), "rank"] == 4  # undefined on 3 frames: its mean is not comparable
    assert ranked.loc[("fusion", "cc"), "rank"] == 1 and ranked.loc[("other", "cc"), "rank"] == 2
    assert ranked.loc[("black", "tgf"), "rank"] == 1  # it still wins what it wins
    score = ranked.xs("mi", level="metric")["score"]
    assert score["black"] == pytest.approx(0.5 * (1 + 4) / 2 + 0.5 * 1)  # cc dropped would give 0.5 * 1 + 0.5 * 1
    assert score["fusion"] == pytest.approx(0.5 * (2 + 1) / 2 + 0.5 * 4)
    assert score["partly"] == pytest.approx(0.5 * (3 + 4) / 2 + 0.5 * 2)
    assert ranked.loc[("black", "mi"), "group_score"] == 2.5 and ranked.loc[("black", "tgf"), "group_score"] == 1
    assert ranked.xs("mi", level="metric")["position"].to_dict() == {"black": 1, "fusion": 2, "other": 4,
                                                                     "partly": 2}


def test_a_ranking_metric_missing_from_a_record_counts_as_undefined():
    ranking = Ranking((RankingGroup("primary", ("mi", "cc"), 1.0),))
    table = _table({"a": {"mi": 1.0}, "b": {"mi": 0.5, "cc": 0.2}})
    ranked = _ranked(table, {"p@1": ranking}).set_index(["submission", "metric"])
    assert ranked.loc[("a", "mi"), "score"] == pytest.approx((1 + 2) / 2)  # cc missing: rank 2 of 2
    assert ranked.loc[("b", "mi"), "score"] == pytest.approx((2 + 1) / 2)


# -- degenerate outputs ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def protocol(tmp_path_factory) -> Path:
    return short_protocol(tmp_path_factory.mktemp("protocol"))


@pytest.fixture(scope="module")
def video_protocol(tmp_path_factory) -> Path:
    return protocol_file(tmp_path_factory.mktemp("video") / "v.toml", id="short-video", layouts=["sample"],
                         folders=["sample"], split=None, image=["en"], temporal=["tgf"], ranking='primary = ["tgf"]')


def _ir():
    return sample_frames()[0].astype(np.float64)


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


DEGENERATE = [
    ("black", lambda: np.zeros_like(sample_frames()[1]), r"/000000\.png: near-constant frame \(grey standard "
                                                         r"deviation 0\.00 < 5\.0\); a constant image is not a fusion"),
    ("constant", lambda: np.full_like(sample_frames()[1], 131), r"near-constant frame \(grey standard deviation 0\.00"),
    ("near-constant", lambda: _rgb(128 + np.random.default_rng(0).normal(0, 1.5, _ir().shape)),
     r"near-constant frame \(grey standard deviation 1\.\d\d < 5\.0\)"),
    ("IR + offset", lambda: _rgb(_ir() + 3), r"/000000\.png: the frame is the IR source up to a grey-level mapping "
                                            r"\(gain, offset, quantisation; residual 0\.000 of its spread < 0\.005\)"),
    ("IR * gain + offset", lambda: _rgb(_ir() * 0.6 + 50), r"the frame is the IR source up to a grey-level mapping"),
    ("IR at 3 grey levels", lambda: _rgb(np.digitize(_ir(), np.quantile(_ir(), [1 / 3, 2 / 3])) * 90 + 20),
     r"the frame is the IR source up to a grey-level mapping"),
    ("VIS grey * gain", lambda: _rgb(sample_frames()[1].astype(np.float64) @ np.array([0.299, 0.587, 0.114]) * 0.8),
     r"the frame is the VIS source up to a grey-level mapping"),
]


@pytest.mark.parametrize("case, make, message", DEGENERATE, ids=[c[0] for c in DEGENERATE])
def test_degenerate_outputs_are_refused_with_one_line(case, make, message, protocol, tmp_path):
    folder = write_frames(tmp_path / "fused", make())
    problems = validate(folder, protocol, leaderboard_dir=None)
    assert problems and re.search(message, problems[0]), problems
    assert all("\n" not in p for p in problems) and len(problems) <= 6  # 5 lines and a count, not 32
    with pytest.raises(SubmissionError, match=r"problems \(listed above\); nothing was submitted"):
        submit(folder, case.replace("*", "x"), protocol, leaderboard_dir=tmp_path / "lb")


def test_a_frozen_video_is_refused_on_a_video_protocol_only(video_protocol, protocol, tmp_path):
    still = np.repeat(blend(0.5)[:1], len(blend(0.5)), axis=0)
    folder = write_frames(tmp_path / "frozen", still)
    problems = validate(folder, video_protocol, leaderboard_dir=None)
    assert problems == [f"{folder / 'sample'}: frozen video: consecutive fused frames differ by at most 0.000 grey "
                        f"levels on average (< 0.25) over all 32 frames while the sources change by up to "
                        f"{problems[0].rsplit(' ', 1)[1]}"]
    assert float(problems[0].rsplit(" ", 1)[1]) > 0.5
    assert validate(folder, protocol, leaderboard_dir=None) == []  # an image protocol has no time axis
    assert validate(write_frames(tmp_path / "moving", blend(0.5)), video_protocol, leaderboard_dir=None) == []


def test_the_same_frames_under_another_name_are_refused(protocol, tmp_path):
    lb = tmp_path / "lb"
    record = submit(write_frames(tmp_path / "a", blend(0.3)), "Mine", protocol, leaderboard_dir=lb)
    again = write_frames(tmp_path / "b", blend(0.3), compression=9)
    with pytest.raises(SubmissionError, match=rf"{again}: duplicate of submission {record.id} \(Mine\): the same "
                                              rf"fused frames \(nothing was submitted\)"):
        submit(again, "Someone else", protocol, leaderboard_dir=lb)


def test_source_fit_statistics():
    ir = _ir()[0]
    assert dg.source_residual(_rgb(ir * 0.5 + 7)[..., 0].astype(float), ir) == pytest.approx(0, abs=1e-9)
    assert dg.affine_residual(ir * 2 - 1, ir) == pytest.approx(0, abs=1e-6)
    quantised = np.digitize(ir, [80, 160]) * 100.0
    assert dg.source_residual(quantised, ir) == 0 and dg.affine_residual(quantised, ir) > 0.05  # affine misses it
    assert dg.frame_problem("f", np.zeros((4, 4)), {"IR": np.zeros((4, 4))}) is None  # flat sources, flat output


@pytest.mark.skipif(not VIFB_FUSED.is_dir() or not VIFB_INPUT.is_dir(), reason="../shared VIFB data absent")
def test_real_fused_outputs_pass_the_guard():
    """One image of every VIFB method (the published outputs the thresholds were measured on) is accepted."""
    import cv2

    def grey(path):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1]
        return dg.grey(image)

    methods = sorted({p.stem.split("_", 1)[1] for p in VIFB_FUSED.glob("*.jpg")})
    assert len(methods) >= 20
    for i, method in enumerate(methods):
        images = sorted(VIFB_FUSED.glob(f"*_{method}.jpg"))
        path = images[i % len(images)]
        image = path.stem.split("_", 1)[0]
        sources = {"IR": grey(VIFB_INPUT / "IR" / f"{image}.jpg"), "VIS": grey(VIFB_INPUT / "VI" / f"{image}.jpg")}
        assert dg.frame_problem(path, grey(path), sources) is None, path
