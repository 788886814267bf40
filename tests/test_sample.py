"""The built-in sample: deterministic, with the known answers (boxes, smoke, low light) its truth claims."""

from __future__ import annotations

import numpy as np
import pytest

from m3svd.data import open_dataset
from m3svd.data import sample as sample_module
from m3svd.data.degrade import degrade_clip
from m3svd.data.sample import SAMPLE_DEGRADE_SEED, make_sample, write_sample
from m3svd.errors import DataError


@pytest.fixture(scope="module")
def sample():
    return make_sample()


def _edge(frame: np.ndarray, box) -> float:
    """Strongest gradient inside ``box`` over the channels: large where an object's rim shows."""
    x0, y0, x1, y1 = box
    channels = frame[..., None] if frame.ndim == 2 else frame
    patch = channels[y0:y1, x0:x1].astype(np.float64)
    return max(float(np.hypot(*np.gradient(patch[..., c])).max()) for c in range(patch.shape[2]))


def _grad(frame: np.ndarray) -> np.ndarray:
    grey = frame.astype(np.float64) if frame.ndim == 2 else frame.astype(np.float64).mean(axis=2)
    gy, gx = np.gradient(grey)
    return np.hypot(gx, gy)


def test_same_seed_same_bytes_other_seed_differs(sample):
    again = make_sample()
    assert again.ir.tobytes() == sample.ir.tobytes() and again.vi.tobytes() == sample.vi.tobytes()
    assert again.truth == sample.truth
    other = make_sample(seed=1)
    assert not np.array_equal(other.ir, sample.ir) and not np.array_equal(other.vi, sample.vi)


def test_shapes_dtypes_and_truth(sample):
    assert sample.ir.shape == (32, 240, 320) and sample.ir.dtype == np.uint8
    assert sample.vi.shape == (32, 240, 320, 3) and sample.vi.dtype == np.uint8
    truth = sample.truth
    assert truth["shift_px"] == (0.0, 0.0) and truth["offset_frames"] == 0
    assert len(truth["boxes"]) == 32 and {len(b) for b in truth["boxes"]} == {3}
    for frame_boxes in truth["boxes"]:
        for x0, y0, x1, y1 in frame_boxes:
            assert 0 <= x0 < x1 <= 320 and 0 <= y0 < y1 <= 240
    assert truth["low_light_frames"] == tuple(range(24, 32))
    assert len(truth["hidden_frames"]) >= 3 and not set(truth["hidden_frames"]) & set(truth["low_light_frames"])
    small = make_sample(frames=5, height=48, width=64)
    assert small.ir.shape == (5, 48, 64) and len(small.truth["boxes"]) == 5


def test_boxes_hold_the_warm_objects_in_ir(sample):
    for t, frame_boxes in enumerate(sample.truth["boxes"]):
        for x0, y0, x1, y1 in frame_boxes:
            assert _edge(sample.ir[t], (x0, y0, x1, y1)) > 40
            assert sample.ir[t, y0:y1, x0:x1].max() >= 230  # hot core


def test_smoke_hides_the_object_in_vis_only(sample):
    k = sample.truth["hidden_object"]
    for t in sample.truth["hidden_frames"]:
        box = sample.truth["boxes"][t][k]
        assert _edge(sample.ir[t], box) > 50, f"frame {t}: IR should see through the smoke"
        assert _edge(sample.vi[t], box) < 10, f"frame {t}: VIS should not show the object"
    for t in (0, 5):  # before the smoke
        assert _edge(sample.vi[t], sample.truth["boxes"][t][k]) > 40


def test_low_light_frames_are_darker_in_vis_only(sample):
    low = list(sample.truth["low_light_frames"])
    normal = [t for t in range(32) if t not in low]
    assert sample.vi[low].mean() < 0.35 * sample.vi[normal].mean()
    assert abs(float(sample.ir[low].mean()) - float(sample.ir[normal].mean())) < 5


def test_modalities_share_structure_registered_at_zero_shift(sample):
    """Gradient magnitudes of IR and VIS correlate best without any shift: texture for registration."""
    gi, gv = _grad(sample.ir[0]), _grad(sample.vi[0])
    m = 6
    scores = {
        (dy, dx): np.corrcoef(gi[m:-m, m:-m].ravel(), np.roll(gv, (dy, dx), axis=(0, 1))[m:-m, m:-m].ravel())[0, 1]
        for dy in range(-3, 4)
        for dx in range(-3, 4)
    }
    assert max(scores, key=scores.get) == (0, 0)
    assert scores[(0, 0)] > 0.3


def test_objects_move_with_distinct_changing_speeds(sample):
    centres = np.array([[((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in f] for f in sample.truth["boxes"]])
    speed = np.linalg.norm(np.diff(centres, axis=0), axis=2)  # (T-1, K)
    assert (speed.std(axis=0) > 0.3).all(), "velocities should not be constant"
    assert len({round(float(s), 1) for s in speed.mean(axis=0)}) == 3
    change = np.abs(np.diff(sample.ir.astype(np.int16), axis=0)).mean(axis=(1, 2))
    assert change.min() > 0 and change.std() > 0.05 * change.mean()


def test_open_dataset_sample_clean_and_degraded(sample):
    clipset = open_dataset("sample")
    assert clipset.layout == "sample" and clipset.splits == ["test"] and clipset.names == ["sample"]
    clean, degraded = clipset.clip("sample", variant="clean"), clipset.clip("sample", variant="degraded")
    assert degraded.reference is clean and clean.reference is None
    assert len(clean) == len(degraded) == 32 and clean.fps == degraded.fps == 30.0
    assert not clean.lossy and not degraded.lossy
    assert np.array_equal(clean.ir(5), sample.ir[5]) and np.array_equal(clean.vi(5), sample.vi[5])
    assert degraded.ir(5).shape == (240, 320) and degraded.vi(5).shape == (240, 320, 3)
    assert not np.array_equal(degraded.vi(5), sample.vi[5])
    assert clean.meta["truth"]["hidden_frames"] == sample.truth["hidden_frames"]
    again = open_dataset("sample")
    assert again.clips[0] is not clean and np.array_equal(again.clips[1].ir(3), degraded.ir(3))
    with pytest.raises(ValueError):
        clean.ir(0)[0, 0] = 1  # the cached frames are shared, so they are read-only


def test_write_sample_round_trips_exactly(tmp_path):
    root = write_sample(tmp_path / "out")
    assert root == tmp_path / "out"
    assert sorted(p.name for p in (root / "test").iterdir()) == sorted(sample_module.RELEASE_FOLDERS)
    assert (root / "test" / "infrared_Enhance" / "sample" / "0000.png").is_file()
    written, builtin = open_dataset(root), open_dataset("sample")
    assert written.layout == "m3svd" and written.splits == ["test"]
    for variant in ("clean", "degraded"):
        a, b = written.clip("sample", variant=variant), builtin.clip("sample", variant=variant)
        ir_a, vi_a = a.frames()
        ir_b, vi_b = b.frames()
        assert np.array_equal(ir_a, ir_b) and np.array_equal(vi_a, vi_b), variant
    assert written.clip("sample", variant="degraded").reference is not None


def test_write_sample_other_size_matches_make_sample(tmp_path):
    root = write_sample(tmp_path / "small", frames=3, height=48, width=64, seed=2)
    clean = open_dataset(root).clip("sample", variant="clean")
    made = make_sample(3, 48, 64, seed=2)
    assert np.array_equal(clean.frames()[0], made.ir) and np.array_equal(clean.frames()[1], made.vi)
    degraded = open_dataset(root).clip("sample", variant="degraded")
    expected = degrade_clip(clean, seed=SAMPLE_DEGRADE_SEED)
    assert np.array_equal(degraded.ir(2), expected.ir(2)) and np.array_equal(degraded.vi(2), expected.vi(2))


def test_write_sample_into_existing_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    write_sample(tmp_path / "empty", frames=2, height=32, width=32)
    assert len(open_dataset(tmp_path / "empty").clips) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_write_sample_refuses_non_empty_target(tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="non-empty") as error:
        write_sample(target, frames=2)
    assert "\n" not in str(error.value)
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="found a file"):
        write_sample(tmp_path / "file", frames=2)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_png(path, frame, **options):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(path, frame, **options)

    real = sample_module.write_png
    monkeypatch.setattr(sample_module, "write_png", failing_png)
    with pytest.raises(OSError, match="disk full"):
        write_sample(tmp_path / "out", frames=2, height=32, width=32)
    assert list(tmp_path.iterdir()) == []
