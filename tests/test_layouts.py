"""Layout detection: every supported tree, synthetic and real, and the errors for trees that do not pair."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import M3SVD_FOLDERS, make_m3svd, make_videos, noise, smooth, write_image

from m3svd.data import open_dataset
from m3svd.data.frames import ImageFiles, VideoFile
from m3svd.data.layouts import LOOKED_FOR
from m3svd.errors import DataError

CLIPS = ("0111_1716", "0114_1611")
TEMCOCO = [("IR_en", "VI_en", "IR_noise", "VI_blur"), ("IR_en", "VI_en", "IR_noise2", "VI_blur_new"),
           ("IR_en", "VI_en", "IR_deg", "VI_deg")]


def _assert_m3svd_clips(clipset, frames, split="test", n=4):
    assert clipset.layout == "m3svd"
    assert clipset.names == list(CLIPS) and clipset.variants == ["clean", "degraded"] and clipset.splits == [split]
    for name in CLIPS:
        clean, degraded = clipset.clip(name, variant="clean"), clipset.clip(name, variant="degraded")
        assert len(clean) == len(degraded) == n and clean.split == split
        assert clean.reference is None and degraded.reference is clean
        for f, source in enumerate((clean.ir, clean.vi, degraded.ir, degraded.vi)):
            for i in (0, n - 1):
                np.testing.assert_array_equal(source(i), frames[f, name][i])
        assert clean.size == (48, 64) and not degraded.lossy and clean.fps is None


# -- M3SVD releases --------------------------------------------------------------------------------------
@pytest.mark.parametrize("folders", [M3SVD_FOLDERS, *TEMCOCO], ids=["release", "temcoco", "temcoco2", "temcoco-deg"])
def test_m3svd_four_folder_images(tmp_path, folders):
    frames = make_m3svd(tmp_path, CLIPS, folders=folders)
    clipset = open_dataset(tmp_path)
    _assert_m3svd_clips(clipset, frames)
    assert len(clipset.select("test", "degraded")) == 2
    assert isinstance(clipset.clips[0].ir_source, ImageFiles)
    _assert_m3svd_clips(open_dataset(tmp_path / "test"), frames)  # the split folder itself keeps its name


def test_m3svd_train_and_test_splits(tmp_path):
    make_m3svd(tmp_path, ("a", "b"), n=2, split="train")
    make_m3svd(tmp_path, ("c",), n=3, split="test")
    clipset = open_dataset(tmp_path)
    assert sorted(clipset.splits) == ["test", "train"]
    assert [c.name for c in clipset.select("train", "clean")] == ["a", "b"]
    assert [(c.name, c.variant, len(c)) for c in clipset.select("test")] == [("c", "clean", 3), ("c", "degraded", 3)]


def test_m3svd_clean_only_tree(tmp_path):
    make_m3svd(tmp_path, CLIPS, folders=M3SVD_FOLDERS[:2], split=None)
    clipset = open_dataset(tmp_path)
    assert clipset.layout == "m3svd" and clipset.variants == ["clean"] and clipset.splits == [None]
    with pytest.raises(DataError, match="no 'degraded' variant"):
        clipset.select(variant="degraded")


def test_m3svd_four_folder_videos(tmp_path):
    base = tmp_path / "test"
    pairs = [(base / "infrared_Enhance", base / "visible_Enhance"), (base / "infrared_noise", base / "visible_Blur")]
    make_videos(pairs, clips=CLIPS)
    clipset = open_dataset(tmp_path)
    assert clipset.layout == "m3svd" and clipset.names == list(CLIPS) and clipset.variants == ["clean", "degraded"]
    degraded = clipset.clip("0114_1611", variant="degraded")
    assert isinstance(degraded.ir_source, VideoFile) and degraded.lossy and len(degraded) == 12
    assert degraded.reference is clipset.clip("0114_1611", variant="clean")
    assert degraded.fps == pytest.approx(30)
    assert np.abs(degraded.vi(7).astype(int) - smooth(7)).mean() < 3


@pytest.mark.parametrize("top", ["root", "Video", "Video/test"])
def test_github_video_layout(tmp_path, top):
    base = tmp_path / "Video" / "test"
    make_videos([(base / "infrared", base / "visible")], clips=("0111_1716", "1230_1202"), n=6)
    clipset = open_dataset(tmp_path if top == "root" else tmp_path / top)
    assert clipset.layout == "m3svd-video" and clipset.names == ["0111_1716", "1230_1202"]
    assert clipset.splits == ["test"] and clipset.variants == ["clean"]
    clip = clipset.clip("1230_1202", split="test")
    assert clip.lossy and len(clip) == 6 and clip.size == (48, 64) and clip.reference is None


def test_github_video_layout_unpaired_video(tmp_path):
    base = tmp_path / "Video" / "test"
    make_videos([(base / "infrared", base / "visible")], n=3)
    (base / "visible" / "0111_1716.mp4").rename(base / "visible" / "0111_1717.mp4")
    with pytest.raises(DataError, match=r"clip 0111_1716: found in .*infrared but not in .*visible"):
        open_dataset(tmp_path)


# -- other datasets --------------------------------------------------------------------------------------
def _make_tno(base, name, first, n):
    for k in range(first, first + n):
        write_image(base / f"{name}_sequence" / "thermal" / f"{k}i.bmp", noise([k, 0]))
        write_image(base / f"{name}_sequence" / "visual" / f"{k}v.bmp", noise([k, 1]))


def test_tno_sequences(tmp_path):
    _make_tno(tmp_path / "FEL_images", "Duine", 7400, 5)
    _make_tno(tmp_path / "FEL_images", "Tree", 4900, 3)
    (tmp_path / "FEL_images" / "REFRENCES").mkdir()
    clipset = open_dataset(tmp_path)
    assert clipset.layout == "tno" and clipset.names == ["Duine", "Tree"]
    assert clipset.registration_tolerance_px == 5.0
    duine = clipset.clip("Duine")
    assert len(duine) == 5 and duine.variant == "clean" and not duine.lossy
    np.testing.assert_array_equal(duine.ir(2), noise([7402, 0]))
    vi = duine.vi(2)
    assert vi.shape == (48, 64, 3) and (vi == noise([7402, 1])[..., None]).all()
    single = open_dataset(tmp_path / "FEL_images" / "Tree_sequence")
    assert single.names == ["Tree"] and len(single.clips[0]) == 3


def test_tno_missing_visual_frame(tmp_path):
    _make_tno(tmp_path, "Duine", 7400, 4)
    (tmp_path / "Duine_sequence" / "visual" / "7402v.bmp").unlink()
    with pytest.raises(DataError, match=r"clip Duine: VIS .*visual.* missing 1 frame.*'7402'"):
        open_dataset(tmp_path)
    (clip,) = open_dataset(tmp_path, strict=False).clips
    assert len(clip) == 3
    assert any("'7402'" in p for p in clip.pairing_problems())


def test_roadscene_pairs_use_the_low_resolution_crops(tmp_path):
    for k, (h, w) in {6: (30, 40), 18: (36, 52)}.items():
        write_image(tmp_path / "cropinfrared" / f"FLIR_{k:05d}.jpg", noise(k, None, h, w))
        write_image(tmp_path / "crop_LR_visible" / f"FLIR_{k:05d}.jpg", noise(k, 3, h, w))
        write_image(tmp_path / "crop_HR_visible" / f"FLIR_{k:05d}.jpg", noise(k, 3, 3 * h, 3 * w))
    clipset = open_dataset(tmp_path)
    assert clipset.layout == "roadscene" and clipset.names == ["FLIR_00006", "FLIR_00018"]
    assert clipset.registration_tolerance_px == 3.0
    clip = clipset.clip("FLIR_00018")
    assert len(clip) == 1 and clip.lossy and clip.ir(0).shape == (36, 52) and clip.vi(0).shape == (36, 52, 3)


@pytest.mark.parametrize("prefix, layout", [("input/", "vifb"), ("", "pairs")])
def test_vifb_pairs(tmp_path, prefix, layout):
    for name in ("carLight", "walking2"):
        write_image(tmp_path / f"{prefix}IR" / f"{name}.jpg", noise(1))
        write_image(tmp_path / f"{prefix}VI" / f"{name}.jpg", noise(2, 3))
    clipset = open_dataset(tmp_path)
    assert clipset.layout == layout and clipset.names == ["carLight", "walking2"]
    assert all(len(c) == 1 and c.variant == "clean" for c in clipset.clips)


def test_generic_single_clip(tmp_path):
    for i in range(3):
        write_image(tmp_path / "seq" / "ir" / f"{i}.png", noise([i, 0]))
        write_image(tmp_path / "seq" / "vi" / f"{i}.png", noise([i, 1], 3))
    clipset = open_dataset(tmp_path / "seq")
    assert clipset.layout == "generic" and clipset.names == ["seq"]
    np.testing.assert_array_equal(clipset.clips[0].vi(2), noise([2, 1], 3))
    assert clipset.select(variant="clean") == clipset.clips  # the same default variant as every other layout


def test_generic_clip_subfolders_and_videos(tmp_path):
    for clip in ("b10", "b2"):
        for i in range(2):
            write_image(tmp_path / "ir" / clip / f"{i}.png", noise([i, 0]))
            write_image(tmp_path / "vi" / clip / f"{i}.png", noise([i, 1], 3))
    make_videos([(tmp_path / "ir", tmp_path / "vi")], clips=("v1",), n=4)
    clipset = open_dataset(tmp_path)
    assert clipset.layout == "generic" and clipset.names == ["b2", "b10", "v1"]
    assert [len(c) for c in clipset.clips] == [2, 2, 4]
    assert clipset.clip("v1").lossy and not clipset.clip("b2").lossy


# -- errors ----------------------------------------------------------------------------------------------
def test_unknown_layout_lists_what_was_looked_for(tmp_path):
    write_image(tmp_path / "frames" / "0.png", noise(0))
    with pytest.raises(DataError, match="no known IR/VIS layout") as error:
        open_dataset(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "\n" not in message
    for looked in LOOKED_FOR:
        assert looked in message
    for name in ("infrared_Enhance", "thermal", "cropinfrared", "input/IR", "ir/ + vi/"):
        assert name in message


def test_missing_path_and_file(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        open_dataset(tmp_path / "nowhere")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(DataError, match="expected a dataset folder, found a file"):
        open_dataset(tmp_path / "f.txt")


def test_missing_frame_names_the_file(tmp_path):
    make_m3svd(tmp_path, CLIPS, n=5)
    (tmp_path / "test" / "infrared_noise" / "0114_1611" / "0003.png").unlink()
    expected = r"clip 0114_1611: IR \(.*infrared_noise.0114_1611\) is missing 1 frame.*'0003\.png'"
    with pytest.raises(DataError, match=expected):
        open_dataset(tmp_path)
    clipset = open_dataset(tmp_path, strict=False)
    degraded = clipset.clip("0114_1611", variant="degraded")
    problems = degraded.pairing_problems()
    assert len(problems) == 1 and "'0003.png'" in problems[0] and "infrared_noise" in problems[0]
    assert clipset.clip("0111_1716", variant="degraded").pairing_problems() == []
    assert clipset.clip("0114_1611", variant="clean").pairing_problems() == []


def test_missing_clean_frame_is_reported_on_the_degraded_clip(tmp_path):
    make_m3svd(tmp_path, CLIPS[:1], n=3)
    (tmp_path / "test" / "visible_Enhance" / CLIPS[0] / "0002.png").unlink()
    problems = open_dataset(tmp_path, strict=False).clip(CLIPS[0], variant="degraded").pairing_problems()
    assert any("clean VIS" in p and "'0002.png'" in p for p in problems)


def test_clip_missing_from_one_folder(tmp_path):
    make_m3svd(tmp_path, CLIPS, n=2)
    for f in (tmp_path / "test" / "visible_Blur" / CLIPS[1]).iterdir():
        f.unlink()
    (tmp_path / "test" / "visible_Blur" / CLIPS[1]).rmdir()
    with pytest.raises(DataError, match=rf"clip {CLIPS[1]}: found in .*infrared_noise but not in .*visible_Blur"):
        open_dataset(tmp_path)
    problems = open_dataset(tmp_path, strict=False).clip(CLIPS[1], variant="degraded").pairing_problems()
    assert any("holds no frames" in p for p in problems)


def test_select_errors_suggest_names(tmp_path):
    make_m3svd(tmp_path, CLIPS, n=1)
    clipset = open_dataset(tmp_path)
    with pytest.raises(DataError, match=r"no split 'tset'; found test \(did you mean 'test'\?\)"):
        clipset.select("tset")
    with pytest.raises(DataError, match="no 'noisy' variant.*found clean, degraded"):
        clipset.select(variant="noisy")
    with pytest.raises(DataError, match=r"no clip '0111_1717' \(did you mean '0111_1716'\?\)"):
        clipset.clip("0111_1717")


# -- the real shared data ------------------------------------------------------------------------------------
def test_real_m3svd_frames(m3svd_frames):
    clipset = open_dataset(m3svd_frames)
    assert clipset.layout == "m3svd" and clipset.names == ["0111_1716", "0114_1611", "0115_1831"]
    assert clipset.splits == ["test"] and len(clipset.clips) == 6
    for clip in clipset.select("test", "degraded"):
        assert len(clip) == 20 and clip.reference is clipset.clip(clip.name, variant="clean")
        assert clip.pairing_problems() == []
    clean = clipset.clip("0114_1611", variant="clean")
    assert clean.size == (480, 640) and not clean.lossy
    assert clean.ir_source.paths[0].name == "0000.png" and clean.ir_source.paths[-1].name == "0019.png"
    degraded = clipset.clip("0114_1611", variant="degraded")
    assert np.abs(degraded.ir(0).astype(int) - clean.ir(0)).mean() > 5  # stripe noise, not the clean frame


def test_real_m3svd_videos(m3svd_videos):
    clipset = open_dataset(m3svd_videos)
    assert clipset.layout == "m3svd-video" and clipset.splits == ["test"] and clipset.variants == ["clean"]
    assert {c.name: len(c) for c in clipset.clips} == {"0111_1716": 151, "0117_1605": 407, "0117_1620": 590}
    assert all(c.lossy and c.fps == pytest.approx(30) and c.pairing_problems() == [] for c in clipset.clips)


def test_real_tno(tno):
    clipset = open_dataset(tno)
    assert clipset.layout == "tno"
    assert {c.name: len(c) for c in clipset.clips} == {"Duine": 23, "Nato_camp": 32, "Tree": 19}
    clip = clipset.clip("Nato_camp")
    assert clip.size == (270, 360) and clip.ir(0).ndim == 2 and clip.vi(31).shape == (270, 360, 3)
    assert clip.ir_source.paths[0].name == "1800i.bmp" and clip.vi_source.paths[0].name == "1800v.bmp"


def test_real_roadscene_and_vifb():
    from conftest import shared

    roadscene = open_dataset(shared("roadscene"))
    assert roadscene.layout == "roadscene" and len(roadscene.clips) == 221
    clip = roadscene.clips[0]
    assert clip.ir(0).shape == clip.vi(0).shape[:2]
    vifb = open_dataset(shared("vifb"))
    assert vifb.layout == "vifb" and len(vifb.clips) == 21
    for name in ("walking2", "carShadow"):  # single-channel and 3-equal-channel IR alike come out grey
        clip = vifb.clip(name)
        assert clip.ir(0).ndim == 2 and clip.vi(0).shape == (*clip.ir(0).shape, 3)
    assert vifb.clip("carShadow").size == (276, 768)
