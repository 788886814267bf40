"""Training datasets: item shapes, crops shared by every stream, determinism across workers, sharding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from synthetic import make_m3svd, make_videos, noise, write_image
from torch.utils.data import DataLoader

from m3svd.data import open_dataset
from m3svd.data.torch_dataset import M3SVD, ShardedM3SVD
from m3svd.errors import DataError

CLIPS = ("0111_1716", "0114_1611", "0115_1831")


@pytest.fixture
def tree(tmp_path):
    """3 clips × 10 frames, 48×64, all four streams (random pixels, so every crop location is unique)."""
    make_m3svd(tmp_path, CLIPS, n=10)
    return tmp_path


def _uint8(t: torch.Tensor) -> np.ndarray:
    """``T×C×h×w`` float in [0, 1] back to ``T×h×w(×3)`` uint8."""
    return t.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).squeeze(-1).numpy()


def _locations(full: np.ndarray, crop: np.ndarray) -> set[tuple[int, int]]:
    """Every (top, left) where ``crop`` occurs exactly in ``full``."""
    scores = cv2.matchTemplate(full.astype(np.float32), crop.astype(np.float32), cv2.TM_SQDIFF) / crop.size
    h, w = crop.shape[:2]
    candidates = zip(*np.nonzero(scores < 0.5), strict=True)  # float32 sums: confirm each exactly
    return {(int(r), int(c)) for r, c in candidates if np.array_equal(full[r : r + h, c : c + w], crop)}


def _crops(ds, indices=range(6)):
    return [ds[i]["ir"] for i in indices]


def test_item_shapes_dtype_and_range(tree):
    ds = M3SVD(tree, split="test", frames=3, crop=(16, 24))
    item = ds[0]
    assert set(item) == {"ir", "vi", "clip", "start"}
    assert item["ir"].shape == (3, 1, 16, 24) and item["vi"].shape == (3, 3, 16, 24)
    for key in ("ir", "vi"):
        assert item[key].dtype == torch.float32 and 0 <= item[key].min() and item[key].max() <= 1
        assert item[key].max() > 0.9  # scaled by 255, not left in 0..255 nor squashed
    assert item["clip"] == CLIPS[0] and item["start"] == 0
    full = M3SVD(tree, split="test", frames=2)[1]
    assert full["ir"].shape == (2, 1, 48, 64) and full["vi"].shape == (2, 3, 48, 64)
    clip = ds.clips[0]
    np.testing.assert_array_equal(_uint8(full["vi"]), np.stack([clip.vi(2), clip.vi(3)]))


def test_degraded_items_carry_references_cropped_at_the_same_place(tree):
    ds = M3SVD(tree, split="test", variant="degraded", frames=3, stride=2, crop=16, seed=3)
    assert all(c.variant == "degraded" for c in ds.clips)
    seen = set()
    for index in (0, 5, len(ds) - 1):
        item = ds[index]
        assert set(item) == {"ir", "vi", "ir_ref", "vi_ref", "clip", "start"}
        assert item["ir_ref"].shape == (3, 1, 16, 16) and item["vi_ref"].shape == (3, 3, 16, 16)
        clip = next(c for c in ds.clips if c.name == item["clip"])
        ir, vi = clip.frames(item["start"], item["start"] + 3)
        ir_ref, vi_ref = clip.reference.frames(item["start"], item["start"] + 3)
        streams = [(ir, item["ir"]), (vi, item["vi"]), (ir_ref, item["ir_ref"]), (vi_ref, item["vi_ref"])]
        (where,) = _locations(ir[0], _uint8(item["ir"])[0])  # random pixels: exactly one match
        for full, crop in streams:
            for t, frame in enumerate(_uint8(crop)):
                assert where in _locations(full[t], frame), (index, t)
        seen.add(where)
    assert len(seen) > 1  # crops move between items


def test_real_degraded_items_share_one_crop(m3svd_frames):
    ds = M3SVD(m3svd_frames, split="test", variant="degraded", frames=2, stride=10, crop=64, seed=1)
    assert len(ds) == 6
    item = ds[3]
    clip = ds.clips[ds.windows[3].clip]
    assert item["clip"] == clip.name and item["start"] == 10
    i = item["start"] + 1
    sources = {"ir": clip.ir(i), "vi": clip.vi(i), "ir_ref": clip.reference.ir(i), "vi_ref": clip.reference.vi(i)}
    common = set.intersection(*(_locations(full, _uint8(item[key])[1]) for key, full in sources.items()))
    assert len(common) == 1


def test_same_seed_same_crops_other_seed_or_epoch_other_crops(tree):
    make = lambda seed: M3SVD(tree, split="test", frames=2, crop=16, seed=seed)  # noqa: E731
    a, b, c = make(0), make(0), make(1)
    for x, y in zip(_crops(a), _crops(b), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    assert any(not torch.equal(x, y) for x, y in zip(_crops(a), _crops(c), strict=True))
    epoch0 = _crops(a)
    a.set_epoch(1)
    epoch1 = _crops(a)
    assert any(not torch.equal(x, y) for x, y in zip(epoch0, epoch1, strict=True))
    a.set_epoch(0)
    assert all(torch.equal(x, y) for x, y in zip(epoch0, _crops(a), strict=True))  # f(seed, epoch, index)
    torch.manual_seed(123)
    np.random.seed(123)
    assert all(torch.equal(x, y) for x, y in zip(epoch0, _crops(a), strict=True))  # global RNG state is not used


def test_identical_batches_with_0_and_2_workers(tree):
    ds = M3SVD(tree, split="test", variant="degraded", frames=2, stride=3, crop=16, seed=7)
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=3, num_workers=workers, timeout=60 if workers else 0)
        batches[workers] = list(loader)
    assert len(batches[0]) == len(batches[2]) == -(-len(ds) // 3)
    for b0, b2 in zip(batches[0], batches[2], strict=True):
        assert b0["clip"] == b2["clip"] and torch.equal(b0["start"], b2["start"])
        for key in ("ir", "vi", "ir_ref", "vi_ref"):
            assert torch.equal(b0[key], b2[key]), key


def test_video_clips_load_in_worker_processes(tmp_path):
    base = tmp_path / "Video" / "test"
    make_videos([(base / "infrared", base / "visible")], clips=("0111_1716", "0117_1605"), n=8)
    ds = M3SVD(tmp_path, split="test", frames=4, stride=2, crop=16)
    ds[len(ds) - 1]  # open a decoder in the parent: forked workers must not share it
    single = list(DataLoader(ds, batch_size=2, num_workers=0))
    multi = list(DataLoader(ds, batch_size=2, num_workers=2, timeout=60))  # a hang fails
    assert len(single) == len(multi) == 3
    for b0, b2 in zip(single, multi, strict=True):
        assert torch.equal(b0["ir"], b2["ir"]) and torch.equal(b0["vi"], b2["vi"])


@pytest.mark.parametrize(
    ("frames", "stride", "per_clip"), [(7, None, 1), (7, 1, 4), (3, 2, 4), (10, None, 1), (1, 1, 10), (4, 3, 3)]
)
def test_window_count_and_starts(tree, frames, stride, per_clip):
    ds = M3SVD(tree, split="test", frames=frames, stride=stride)
    assert len(ds) == 3 * per_clip
    step = stride or frames
    assert [w.start for w in ds.windows[:per_clip]] == list(range(0, per_clip * step, step))
    assert all(w.start + frames <= 10 for w in ds.windows)
    assert [ds.clips[w.clip].name for w in ds.windows] == [name for name in CLIPS for _ in range(per_clip)]


def test_bad_arguments(tree):
    with pytest.raises(DataError, match=r"no window of 11 frames.*longest 10 frames"):
        M3SVD(tree, split="test", frames=11)
    with pytest.raises(DataError, match="did you mean 'test'"):
        M3SVD(tree, split="tests")
    with pytest.raises(ValueError, match="frames must be >= 1"):
        M3SVD(tree, split="test", frames=0)
    with pytest.raises(ValueError, match="crop must be positive"):
        M3SVD(tree, split="test", crop=0)
    with pytest.raises(DataError, match=r"crop 64×64 is larger than the frames \(48×64\)"):
        M3SVD(tree, split="test", crop=64)[0]


def test_clipset_and_layouts_without_splits(tree, tmp_path):
    assert len(M3SVD(open_dataset(tree), split="test", frames=5)) == 6
    make_m3svd(tmp_path / "flat", ("a", "b"), n=4, split=None)
    assert len(M3SVD(tmp_path / "flat", frames=2)) == 4  # default split="train": no splits here, so every clip
    for i in range(4):
        write_image(tmp_path / "generic" / "ir" / f"{i}.png", noise([i, 0]))
        write_image(tmp_path / "generic" / "vi" / f"{i}.png", noise([i, 1], 3))
    assert len(M3SVD(tmp_path / "generic", frames=2)) == 2  # generic clips are "clean", the default variant


def test_degraded_without_reference_is_an_error(tmp_path):
    make_m3svd(tmp_path, ("a",), n=3, folders=("infrared_Enhance", "visible_Enhance", "infrared_noise", "visible_Blur"))
    for f in ("infrared_Enhance", "visible_Enhance"):
        for p in sorted((tmp_path / "test" / f / "a").iterdir()):
            p.unlink()
        (tmp_path / "test" / f / "a").rmdir()
    with pytest.raises(DataError, match="degraded clips without clean references: a"):
        M3SVD(tmp_path, split="test", variant="degraded", frames=2)
    assert "ir_ref" not in M3SVD(tmp_path, split="test", variant="degraded", frames=2, return_references=False)[0]


def test_transforms_are_applied(tree):
    ds = M3SVD(tree, split="test", frames=2, transforms=lambda item: {**item, "flipped": item["ir"].flip(-1)})
    item = ds[0]
    assert torch.equal(item["flipped"], item["ir"].flip(-1))


# -- sharding --------------------------------------------------------------------------------------------------
def _key(item) -> tuple[str, int]:
    return item["clip"], int(item["start"])


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_partition_the_windows(tree, world_size):
    ds = M3SVD(tree, split="test", frames=2, stride=1, crop=8)  # 27 windows
    shards = [ShardedM3SVD(ds, rank=r, world_size=world_size) for r in range(world_size)]
    indices = [s.indices() for s in shards]
    assert {len(i) for i in indices} == {len(ds) // world_size} and all(len(s) == len(ds) // world_size for s in shards)
    flat = [i for share in indices for i in share]
    assert len(flat) == len(set(flat))  # disjoint
    assert len(set(flat)) == len(ds) - len(ds) % world_size  # union = all but the tail that does not divide
    keys = [_key(item) for item in shards[0]]
    assert keys == [_key(ds[i]) for i in indices[0]]


def test_ranks_cover_everything_when_it_divides(tree):
    ds = M3SVD(tree, split="test", frames=2, stride=2)  # 15 windows
    union = set().union(*(ShardedM3SVD(ds, rank=r, world_size=3).indices() for r in range(3)))
    assert union == set(range(len(ds)))
    unshuffled = ShardedM3SVD(ds, rank=1, world_size=3, shuffle=False).indices()
    assert unshuffled == list(range(1, 15, 3))
    assert ShardedM3SVD(ds, rank=0, world_size=1).indices() != list(range(15))  # shuffled by default


def test_shuffle_follows_epoch_and_is_the_same_on_every_rank(tree):
    ds = M3SVD(tree, split="test", frames=2, stride=1)
    shards = [ShardedM3SVD(ds, rank=r, world_size=2) for r in range(2)]
    before = [s.indices() for s in shards]
    shards[0].set_epoch(1)  # one dataset behind both ranks here; in training each rank calls set_epoch
    after = [s.indices() for s in shards]
    assert before != after and not set(after[0]) & set(after[1])
    assert ds.epoch == 1


def test_workers_split_a_rank(tree):
    ds = M3SVD(tree, split="test", frames=2, stride=1, crop=8)
    shard = ShardedM3SVD(ds, rank=1, world_size=2)
    expected = [_key(ds[i]) for i in shard.indices()]
    seen = [_key(item) for item in DataLoader(shard, batch_size=None, num_workers=2, timeout=60)]
    assert sorted(seen) == sorted(expected) and len(set(seen)) == len(seen)


def test_rank_defaults_and_validation(tree):
    ds = M3SVD(tree, split="test", frames=5)
    shard = ShardedM3SVD(ds)  # torch.distributed not initialised: one rank
    assert (shard.rank, shard.world_size) == (0, 1) and sorted(shard.indices()) == list(range(len(ds)))
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\)"):
        ShardedM3SVD(ds, rank=2, world_size=2)
