"""The committed leaderboard and how its records are made: published outputs verified file by file against their
download subset, reference rows apart, the VIFB records re-scored from ../shared and equal to what was recorded,
VIFB's own MATLAB means reproduced, and the README's section generated from the records."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATA, shared

from m3svd import protocols
from m3svd.data.subsets import get_subset
from m3svd.evaluate import MethodSpec, Predictions, evaluate_methods, fuse, read_summary
from m3svd.leaderboard import SubmissionError, build
from m3svd.leaderboard.origin import published_origin
from m3svd.leaderboard.readme import END, START, section
from m3svd.leaderboard.schema import OVERALL, read_manifest, record_dirs
from m3svd.leaderboard.validate import inspect

REPOSITORY = Path(__file__).resolve().parents[1]
LEADERBOARD = REPOSITORY / "leaderboard"
GOLDEN_VIFB = SHARED_DATA.parent / "golden" / "vifb"
VIFB_NAMES = {
    "Avg_gradient": "ag", "Cross_entropy": "ce", "Edge_intensity": "ei", "Entropy": "en", "Mutinf": "mi",
    "Psnr": "psnr", "Qabf": "qabf", "Qcb": "qcb", "Qcv": "qcv", "Rmse": "rmse", "Spatial_frequency": "sf",
    "Ssim": "ssim", "Variance": "sd",
}


def golden_fused() -> Path:
    path = GOLDEN_VIFB / "fused_images"
    if not path.is_dir():
        pytest.skip(f"golden data not available: {path} (the read-only ../shared/golden checkout)")
    return path


def vifb_root(tmp_path: Path) -> Path:
    """A dataset root holding ``vifb21`` (../shared/data/vifb, as `m3svd download --subset vifb21` lays it out)."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "vifb21").symlink_to(shared("vifb"))
    return root


def published_folder(tmp_path: Path, method: str) -> Path:
    """One VIFB method's published JPEGs in the predictions layout of subset vifb21-fused (links, not copies)."""
    folder = tmp_path / "vifb21-fused" / method
    for entry in get_subset("vifb21-fused").files:
        if entry.path.startswith(method + "/"):
            target = folder / entry.path[len(method) + 1:]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(golden_fused() / f"{Path(entry.path).parent.name}_{method}.jpg")
    return folder


# -- how records are made ----------------------------------------------------------------------------------------
def test_published_outputs_are_verified_file_by_file(tmp_path):
    folder = published_folder(tmp_path, "GFF")
    origin = published_origin("vifb21-fused", folder)
    assert origin["repository"] == "xingchenzhang/VIFB" and len(origin["commit"]) == 40
    assert origin["path"] == "output/fused_images/" and len(origin["files"]) == 21
    changed = tmp_path / "changed" / "GFF"
    shutil.copytree(folder, changed)
    victim = changed / "kettle" / "000000.jpg"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\0")
    with pytest.raises(SubmissionError, match=r"kettle/000000\.jpg: sha256 \w+… differs from subset vifb21-fused"):
        published_origin("vifb21-fused", changed)
    victim.unlink()
    with pytest.raises(SubmissionError, match=r"kettle/000000\.jpg: missing; subset vifb21-fused lists it"):
        published_origin("vifb21-fused", changed)
    with pytest.raises(SubmissionError, match=r"subset vifb21-fused has no method 'Mine'"):
        published_origin("vifb21-fused", tmp_path / "Mine")


def test_lossy_files_are_accepted_only_as_verified_published_outputs(tmp_path):
    folder, root = published_folder(tmp_path, "ADF"), vifb_root(tmp_path)
    protocol = protocols.load("vifb21")
    unverified = inspect(folder, protocol, root, leaderboard_dir=None)
    assert len(unverified.problems) > 1 and "lossy JPG file; fused frames must be lossless" in unverified.problems[0]
    verified = inspect(folder, protocol, root, leaderboard_dir=None,
                       published=set(published_origin("vifb21-fused", folder)["files"].values()))
    assert verified.problems == [] and verified.lossy


def test_reference_rows_are_accepted_as_copies_and_never_ranked(tmp_path):
    from leaderboard_kit import blend, reference_record, short_protocol, write_frames

    from m3svd.leaderboard import submit

    protocol, lb = short_protocol(tmp_path), tmp_path / "lb"
    folder = fuse(protocols.load(str(protocol)), MethodSpec("ir"), tmp_path / "ir")
    with pytest.raises(SubmissionError, match="identical to the IR input stream"):
        submit(folder, "IR", protocol, leaderboard_dir=lb)
    for weight in (0.3, 0.6):
        submit(write_frames(tmp_path / f"b{weight}", blend(weight)), f"Blend {weight}", protocol, leaderboard_dir=lb)
    before = build(lb, write=False)
    reference_record(lb, protocol, "ir")
    after = build(lb, write=False)
    rows = after[after["method"] == "IR"]
    assert rows["reference"].all() and rows["rank"].isna().all() and rows["position"].isna().all()
    entries = after[~after["reference"]].reset_index(drop=True)
    pd.testing.assert_series_equal(entries["rank"], before["rank"].reset_index(drop=True))


# -- the committed leaderboard ------------------------------------------------------------------------------------
def committed(protocol_id: str) -> list[tuple[Path, dict]]:
    records = [(r, read_manifest(r)) for r in record_dirs(LEADERBOARD)]
    return [(r, m) for r, m in records if m["protocol"]["id"] == protocol_id]


def test_committed_leaderboard_builds_and_its_parquet_is_the_build():
    table = build(LEADERBOARD, write=False)
    assert set(table["protocol_id"]) <= {"tno42", "vifb21", "m3svd-val-clean", "m3svd-val-degraded",
                                         "m3svd-val-visible-only"}
    for key in set(table["protocol"]):
        bundled = protocols.load(key.split("@")[0])
        assert set(table[table["protocol"] == key]["protocol_sha256"]) == {bundled.sha256}, key
    on_disk = pd.read_parquet(LEADERBOARD / "leaderboard.parquet")
    pd.testing.assert_frame_equal(on_disk, table)


def test_old_summary_files_stay_loadable():
    """Records written before the overall rows were marked OVERALL (clip "") read as today's: `m3svd compare` gets
    the same overall rows that summarising the record's results now gives."""
    from m3svd.evaluate import OVERALL, summarise
    from m3svd.evaluate.compare import load_result

    record, _ = committed("tno42")[0]
    assert "" in set(pd.read_parquet(record / "summary.parquet")["clip"])  # written in the old form
    loaded = load_result(record).summary.set_index("metric")
    fresh = summarise(pd.read_parquet(record / "results.parquet"))
    fresh = fresh[fresh["clip"] == OVERALL].set_index("metric")
    assert (loaded["clip"] == OVERALL).all() and sorted(loaded.index) == sorted(fresh.index)
    pd.testing.assert_series_equal(loaded["mean"].sort_index(), fresh["mean"].sort_index())


def test_readme_leaderboard_section_is_the_generated_one():
    text = (REPOSITORY / "README.md").read_text()
    generated = text.split(START, 1)[1].split(END, 1)[0]
    assert generated == "\n" + section(build(LEADERBOARD, write=False)), (
        "README's leaderboard section is stale: run `m3svd leaderboard build --readme README.md`")


@pytest.mark.slow
def test_committed_vifb_records_rescore_to_what_was_recorded(tmp_path):
    """Every vifb21 record whose frames ../shared holds (23 published methods, the toolkit's baselines) is
    re-made and re-scored in one pass; every value and every fused frame's hash equals the record's."""
    records = committed("vifb21")
    if not records:
        pytest.skip("no vifb21 records committed")
    root, protocol = vifb_root(tmp_path), protocols.load("vifb21")
    sources, checked = [], []
    for record, manifest in records:
        origin = manifest["origin"]
        if "subset" in origin:
            method = manifest["name"]
            if not all((golden_fused() / f"{clip}_{method}.jpg").exists() for clip in protocol.clips):
                continue  # SwinFusion and YDTR: not in ../shared
            folder = published_folder(tmp_path, method)
            assert published_origin("vifb21-fused", folder)["files"] == origin["files"]
        else:
            folder = fuse(protocol, MethodSpec(origin["method"], options=tuple(origin["options"].items())),
                          tmp_path / "baselines" / manifest["name"], root=root)
        sources.append((Predictions(str(folder), manifest["name"]), tmp_path / "out" / record.name))
        checked.append(record)
    assert len(checked) >= 23 + 6
    runs = evaluate_methods(protocol, sources, root=root)
    for record, run in zip(checked, runs, strict=True):
        recorded = pd.read_parquet(record / "results.parquet")
        key = ["clip", "frame", "metric"]
        mine, theirs = run.results.sort_values(key).reset_index(drop=True), recorded.sort_values(key)
        theirs = theirs.reset_index(drop=True)
        assert (mine[key] == theirs[key]).all().all(), record.name
        assert list(mine["fused_sha256"]) == list(theirs["fused_sha256"]), record.name
        np.testing.assert_allclose(mine["value"], theirs["value"], rtol=1e-9, atol=1e-12, err_msg=record.name)


def test_vifb_published_tables_are_reproduced():
    """Each published method's mean per metric over the 21 pairs, from VIFB's MATLAB values, equals the `vifb`
    convention's mean in its committed record, to the 5 significant digits VIFB stores."""
    path = GOLDEN_VIFB / "vifb_matlab.csv"
    if not path.exists():
        pytest.skip(f"golden data not available: {path}")
    records = {m["name"]: r for r, m in committed("vifb21") if "subset" in m["origin"]}
    if not records:
        pytest.skip("no vifb21 records committed")
    with open(path, newline="") as handle:
        matlab = pd.DataFrame(csv.DictReader(handle)).astype({"value": float})
    matlab["metric"] = matlab["metric"].map(VIFB_NAMES)
    means = matlab.groupby(["method", "metric"])["value"].agg(["mean", "size"])
    compared = 0
    for method, record in records.items():
        if method not in means.index.get_level_values(0):
            continue
        summary = read_summary(record / "summary.parquet")  # records made before 0.2: overall rows marked ""
        ours = summary[summary["clip"] == OVERALL].set_index("metric")["mean"]
        for metric, row in means.loc[method].iterrows():
            assert row["size"] == 21
            stored = abs(row["mean"]) * 5e-5 + 5e-5  # 5 significant digits per stored value
            assert ours[metric] == pytest.approx(row["mean"], abs=stored), (method, metric)
            compared += 1
    assert compared == 23 * 13


def test_the_same_frames_may_enter_two_protocols_but_not_one_twice(tmp_path):
    from leaderboard_kit import blend, write_frames
    from synthetic import protocol_file

    from m3svd.leaderboard import submit

    def protocol(name):
        return protocol_file(tmp_path / f"{name}.toml", id=name, layouts=["sample"], folders=["sample"], split=None,
                             image=["en", "sd"], ranking='primary = ["en", "sd"]')

    folder, lb = write_frames(tmp_path / "fused", blend(0.4)), tmp_path / "lb"
    submit(folder, "Mine", protocol("first"), leaderboard_dir=lb)
    submit(folder, "Mine", protocol("second"), leaderboard_dir=lb)  # the blurred VIS is `vi` on two protocols
    with pytest.raises(SubmissionError, match=r"duplicate of submission \S+ \(Mine\): the same fused frames"):
        submit(folder, "Yours", protocol("first"), leaderboard_dir=lb)
