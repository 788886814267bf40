"""Hugging Face export: features, rows, lossless pixels, metadata, and an atomically written Parquet file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from datasets import Dataset, Image, Value
from synthetic import make_m3svd, make_videos, noise, write_image

from m3svd.data import open_dataset
from m3svd.data.hf import to_hf_dataset
from m3svd.errors import DataError

CLIPS = ("0111_1716", "0114_1611")
N = 3


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("m3svd")
    return root, make_m3svd(root, CLIPS, n=N)


@pytest.fixture(scope="module")
def degraded(tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    ds = to_hf_dataset(tree[0], split="test", variant="degraded", parquet_path=out / "sub" / "degraded.parquet",
                       cache_dir=out / "cache")
    return ds, out / "sub" / "degraded.parquet"


def test_features_and_rows(degraded):
    ds, _ = degraded
    assert isinstance(ds, Dataset) and ds.num_rows == len(CLIPS) * N
    features = ds.features
    for key in ("ir", "vi", "ir_ref", "vi_ref"):
        assert isinstance(features[key], Image)
    expected = {"clip": "string", "frame": "int32", "split": "string", "variant": "string", "layout": "string",
                "fps": "float32", "lossy": "bool"}
    assert {k: v.dtype for k, v in features.items() if isinstance(v, Value)} == expected


def test_metadata_columns(degraded):
    ds, _ = degraded
    assert ds["clip"] == [c for c in CLIPS for _ in range(N)]
    assert ds["frame"] == list(range(N)) * len(CLIPS)
    assert set(ds["split"]) == {"test"} and set(ds["variant"]) == {"degraded"} and set(ds["layout"]) == {"m3svd"}
    assert set(ds["lossy"]) == {False} and set(ds["fps"]) == {None}  # PNG frames carry no frame rate


def test_pixels_round_trip_exactly(tree, degraded):
    _, frames = tree
    ds, _ = degraded
    for row in (0, N + 2):
        item = ds[row]
        clip, i = item["clip"], item["frame"]
        assert item["ir"].mode == "L" and item["vi"].mode == "RGB"
        for f, key in enumerate(("ir_ref", "vi_ref", "ir", "vi")):  # make_m3svd order: clean IR, clean VIS, ...
            np.testing.assert_array_equal(np.asarray(item[key]), frames[f, clip][i], err_msg=f"{key} row {row}")


def test_parquet_is_complete_and_readable(degraded, tree):
    ds, path = degraded
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left beside it
    table = pq.read_table(path)
    assert table.num_rows == ds.num_rows and set(table.column_names) == set(ds.column_names)
    frame = pd.read_parquet(path)
    assert frame["clip"].tolist() == ds["clip"] and frame["frame"].tolist() == ds["frame"]
    png = frame.loc[N + 1, "vi"]["bytes"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n"  # stored losslessly
    again = Dataset.from_parquet(str(path), cache_dir=str(path.parent.parent / "cache2"))
    assert again.features == ds.features
    np.testing.assert_array_equal(np.asarray(again[N + 1]["vi"]), tree[1][3, CLIPS[1]][1])


def test_failed_parquet_write_leaves_the_old_file(tree, tmp_path, monkeypatch):
    target = tmp_path / "out.parquet"
    target.write_bytes(b"previous export")

    def broken(self, path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"half a parq")
        raise OSError("disk full")

    monkeypatch.setattr(Dataset, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        to_hf_dataset(tree[0], parquet_path=target, cache_dir=tmp_path / "cache")
    assert target.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out.parquet"]


def test_clean_export_has_no_reference_columns(tree, tmp_path):
    ds = to_hf_dataset(open_dataset(tree[0]), clips=[CLIPS[1]], cache_dir=tmp_path)
    assert "ir_ref" not in ds.features and ds.num_rows == N
    assert set(ds["clip"]) == {CLIPS[1]} and set(ds["variant"]) == {"clean"}
    np.testing.assert_array_equal(np.asarray(ds[2]["ir"]), tree[1][0, CLIPS[1]][2])
    with pytest.raises(DataError, match="did you mean"):
        to_hf_dataset(tree[0], clips=["0114_1612"], cache_dir=tmp_path)


def test_video_export_records_fps_and_lossy(tmp_path):
    base = tmp_path / "data" / "Video" / "test"
    make_videos([(base / "infrared", base / "visible")], clips=("1230_1202",), n=4, fps=22)
    ds = to_hf_dataset(tmp_path / "data", cache_dir=tmp_path / "cache")
    assert ds.num_rows == 4 and set(ds["lossy"]) == {True} and set(ds["layout"]) == {"m3svd-video"}
    assert ds["fps"] == pytest.approx([22.0] * 4)
    assert np.asarray(ds[0]["ir"]).shape == (48, 64)


def test_reexport_after_frames_change_on_disk(tmp_path):
    for i in range(2):
        write_image(tmp_path / "clip" / "ir" / f"{i}.png", noise([i, 0]))
        write_image(tmp_path / "clip" / "vi" / f"{i}.png", noise([i, 1], 3))
    to_hf_dataset(tmp_path / "clip", cache_dir=tmp_path / "cache")
    write_image(tmp_path / "clip" / "ir" / "0.png", np.zeros((48, 64), np.uint8))  # e.g. degraded frames regenerated
    again = to_hf_dataset(tmp_path / "clip", cache_dir=tmp_path / "cache")
    assert not np.asarray(again[0]["ir"]).any()


def test_split_is_named_after_the_data(degraded, tree, tmp_path):
    assert str(degraded[0].split) == "test"  # given
    clipset = open_dataset(tree[0])
    splits = {c.split for c in clipset.clips}
    inferred = to_hf_dataset(clipset, clips=[CLIPS[0]], cache_dir=tmp_path / "a")
    assert splits == {"test"} and str(inferred.split) == "test"  # one split among the clips: that one
    for i in range(2):
        write_image(tmp_path / "clip" / "ir" / f"{i}.png", noise([i, 0]))
        write_image(tmp_path / "clip" / "vi" / f"{i}.png", noise([i, 1], 3))
    assert str(to_hf_dataset(tmp_path / "clip", cache_dir=tmp_path / "b").split) == "train"  # no split: HF default
