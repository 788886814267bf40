"""`m3svd check`: passes on the real clips, and catches (and measures) shifted, offset and damaged copies."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from m3svd.data.checks import FAIL, INCONCLUSIVE, OK, check_clip, check_dataset
from m3svd.data.clip import Clip
from m3svd.data.frames import ArrayFrames
from m3svd.data.layouts import open_dataset


def _shift(frames: np.ndarray, dx: float, dy: float) -> np.ndarray:
    matrix = np.float32([[1, 0, dx], [0, 1, dy]])
    h, w = frames.shape[1:3]
    return np.stack([cv2.warpAffine(f, matrix, (w, h), borderMode=cv2.BORDER_REFLECT) for f in frames])


@pytest.fixture(scope="module")
def night_market():
    """Clip 0115_1831 (20 lossless frames, well-textured) as arrays."""
    from conftest import shared

    clip = open_dataset(shared("m3svd")).clip("0115_1831", variant="clean")
    return clip.frames()


@pytest.mark.parametrize("layout", ["m3svd", "m3svd_videos", "tno"])
def test_real_clips_pass(layout):
    from conftest import shared

    report = check_dataset(open_dataset(shared(layout)), show_progress=False)
    assert report.ok, report.format()
    for clip in report.clips:
        assert clip.check("integrity").status in (OK, "warn")
        if clip.variant == "clean":
            assert clip.check("registration").status in (OK, INCONCLUSIVE)
            assert clip.check("sync").status in (OK, INCONCLUSIVE)
            assert clip.check("sync").values["offset_frames"] == 0 or clip.check("sync").status == INCONCLUSIVE


def test_real_clips_measure_what_the_spec_measured():
    """Median residual shifts are small on M3SVD and a few pixels on TNO's Nato_camp (spec §4, §12.1)."""
    from conftest import shared

    m3svd = check_dataset(open_dataset(shared("m3svd")), show_progress=False)
    for clip in m3svd.clips:
        if clip.variant == "clean":
            assert clip.check("registration").values["magnitude_px"] <= 1.5
    tno = check_dataset(open_dataset(shared("tno")), show_progress=False)
    nato = next(c for c in tno.clips if c.clip == "Nato_camp").check("registration").values
    assert 3.5 < nato["shift_px"][0] < 5.0 and abs(nato["shift_px"][1]) < 1.0


@pytest.mark.parametrize("dx, dy", [(1, 0), (0, 2), (-4, 0), (8, -8)])
def test_injected_shift_is_measured(night_market, dx, dy):
    ir, vi = night_market
    base = check_clip(Clip("base", ArrayFrames(ir), ArrayFrames(vi))).check("registration").values["shift_px"]
    check = check_clip(Clip("shifted", ArrayFrames(ir), ArrayFrames(_shift(vi, dx, dy)))).check("registration")
    estimate = np.subtract(check.values["shift_px"], base)
    assert np.allclose(estimate, (dx, dy), atol=0.25), estimate
    assert check.status == (OK if np.hypot(*check.values["shift_px"]) <= 2 else FAIL)
    if max(abs(dx), abs(dy)) >= 4:
        assert check.status == FAIL and f"{check.values['shift_px'][0]:+.2f}" in check.message


@pytest.mark.parametrize("clip_name, offset", [("0111_1716", 1), ("0115_1831", 2), ("0111_1716", 5), ("0115_1831", -3)])
def test_injected_frame_offset_is_measured(clip_name, offset):
    """VIS ``offset`` frames ahead (positive) or behind (negative) of IR is reported as exactly that."""
    from conftest import shared

    ir, vi = open_dataset(shared("m3svd")).clip(clip_name, variant="clean").frames()
    n, k = len(ir), abs(offset)
    ir, vi = (ir[: n - k], vi[k:]) if offset > 0 else (ir[k:], vi[: n - k])
    check = check_clip(Clip("offset", ArrayFrames(ir), ArrayFrames(vi))).check("sync")
    assert check.status == FAIL
    assert check.values["offset_frames"] == -offset
    assert f"{k} frame(s) {'ahead of' if offset > 0 else 'behind'} IR" in check.message


def test_offset_on_tno_sequence():
    from conftest import shared

    ir, vi = open_dataset(shared("tno")).clip("Duine").frames()
    check = check_clip(Clip("offset", ArrayFrames(ir[:-2]), ArrayFrames(vi[2:]))).check("sync")
    assert (check.status, check.values["offset_frames"]) == (FAIL, -2)


@pytest.fixture
def damaged_copy(tmp_path):
    """A copy of clip 0111_1716 in the four-folder layout, to be damaged by the test."""
    from conftest import shared

    source = shared("m3svd", "test")
    for folder in ("infrared_Enhance", "visible_Enhance", "infrared_noise", "visible_Blur"):
        shutil.copytree(source / folder / "0111_1716", tmp_path / "test" / folder / "0111_1716")
    return tmp_path


def _clip_report(root, variant):
    report = check_dataset(open_dataset(root, strict=False), show_progress=False)
    assert not report.ok
    return next(c for c in report.clips if c.variant == variant)


def test_missing_frame_is_named(damaged_copy):
    (damaged_copy / "test" / "visible_Blur" / "0111_1716" / "0007.png").unlink()
    clip = _clip_report(damaged_copy, "degraded")
    check = clip.check("integrity")
    assert check.status == FAIL and "'0007.png'" in check.message and "VIS" in check.message


def test_corrupt_frame_is_named(damaged_copy):
    (damaged_copy / "test" / "infrared_Enhance" / "0111_1716" / "0012.png").write_bytes(b"\x89PNG truncated")
    clip = _clip_report(damaged_copy, "clean")
    check = clip.check("integrity")
    assert check.status == FAIL and "IR frame 12 does not decode" in check.message and "0012.png" in check.message


def test_grey_ir_with_unequal_channels_and_frozen_run_are_reported(damaged_copy):
    ir_dir = damaged_copy / "test" / "infrared_Enhance" / "0111_1716"
    frame = cv2.imread(str(ir_dir / "0003.png"))
    frame[..., 0] = 0
    cv2.imwrite(str(ir_dir / "0003.png"), frame)
    vi_dir = damaged_copy / "test" / "visible_Enhance" / "0111_1716"
    for name in ("0010.png", "0011.png"):
        shutil.copy(vi_dir / "0009.png", vi_dir / name)
    report = check_dataset(open_dataset(damaged_copy), show_progress=False)
    clean = next(c for c in report.clips if c.variant == "clean").check("integrity")
    assert clean.status == FAIL and "3 channels that are not identical" in clean.message
    assert clean.values["frozen_runs"] == {"VIS": [[9, 3]]}


def test_size_mismatch_between_modalities():
    ir = np.zeros((6, 48, 64), np.uint8)
    vi = np.zeros((6, 40, 64, 3), np.uint8)
    check = check_clip(Clip("sizes", ArrayFrames(ir), ArrayFrames(vi))).check("integrity")
    assert check.status == FAIL and "IR 64×48" in check.message and "VIS 64×40" in check.message


def test_sample_passes_and_report_round_trips_through_json():
    """The built-in sample is registered and synchronised by construction."""
    import json

    data = json.loads(check_dataset(open_dataset("sample"), show_progress=False).to_json())
    assert data["ok"] and data["layout"] == "sample" and data["toolkit_version"]
    clean = next(c for c in data["clips"] if c["variant"] == "clean")
    statuses = {c["name"]: c["status"] for c in clean["checks"]}
    assert statuses == {"integrity": OK, "registration": OK, "sync": OK}
