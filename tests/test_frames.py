"""Frame sources: natural order, grey/RGB conversion, image decoding, exact video frame counts and seeking."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
from synthetic import make_m3svd, noise, smooth, write_image, write_video

from m3svd.data import open_dataset
from m3svd.data.clip import Clip
from m3svd.data.frames import BT601, ArrayFrames, ImageFiles, VideoFile, list_images, natural_key, read_image, to_grey
from m3svd.errors import DataError

REAL_LENGTHS = {"0111_1716": 151, "0117_1605": 407, "0117_1620": 590}


# -- natural order -----------------------------------------------------------------------------------------
def test_natural_key_orders_numbers_by_value():
    for names in (
        ["1.png", "2.png", "9.png", "10.png", "11.png", "100.png"],
        ["0000.png", "0001.png", "0009.png", "0010.png", "0019.png"],
        ["000001.png", "000002.png", "000010.png", "000100.png"],
    ):
        assert sorted(random.Random(0).sample(names, len(names)), key=natural_key) == names
    assert sorted(["frame_10.jpg", "frame_9.jpg"], key=natural_key) == ["frame_9.jpg", "frame_10.jpg"]
    assert sorted(["B2.png", "a10.png", "a2.png"], key=natural_key) == ["a2.png", "a10.png", "B2.png"]


def test_list_images_sorts_naturally_and_skips_other_files(tmp_path):
    for i in (10, 2, 1, 11, 3):
        write_image(tmp_path / f"{i}.png", noise(i))
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "sub.png").mkdir()
    write_image(tmp_path / "12.JPG", noise(12))
    assert [p.name for p in list_images(tmp_path)] == ["1.png", "2.png", "3.png", "10.png", "11.png", "12.JPG"]


@pytest.mark.parametrize(
    "name",
    [lambda i: f"{i:04d}.png", lambda i: f"{i + 1:06d}.png", lambda i: f"{i + 1}.jpg", lambda i: f"{i + 1}.bmp"],
    ids=["4-digit-0-based", "6-digit-1-based", "unpadded-jpg", "unpadded-bmp"],
)
def test_frame_naming_conventions_keep_temporal_order(tmp_path, name):
    n = 12  # unpadded 1..12 puts 10, 11, 12 after 9 only with natural order
    frames = make_m3svd(tmp_path, clips=("c",), n=n, name=name, folders=("infrared_Enhance", "visible_Enhance"))
    (clip,) = open_dataset(tmp_path).clips
    assert len(clip) == n
    lossy = name(0).endswith(".jpg")
    for i in (0, 1, 9, 10, n - 1):
        if lossy:  # JPEG: order is still recoverable, the closest stored frame is frame i
            dists = [np.abs(clip.vi(i).astype(int) - f.astype(int)).mean() for f in frames[1, "c"]]
            assert int(np.argmin(dists)) == i
        else:
            np.testing.assert_array_equal(clip.ir(i), frames[0, "c"][i])
            np.testing.assert_array_equal(clip.vi(i), frames[1, "c"][i])
    assert clip.lossy is lossy


# -- grey and RGB ------------------------------------------------------------------------------------------
def test_ir_stored_as_three_identical_channels_is_exact_grey(tmp_path):
    grey = noise(1)
    path = write_image(tmp_path / "ir.png", np.repeat(grey[..., None], 3, 2))
    assert read_image(path).shape == (48, 64, 3)
    out = to_grey(read_image(path))
    assert out.dtype == np.uint8 and out.shape == grey.shape
    np.testing.assert_array_equal(out, grey)


def test_to_grey_uses_bt601_when_channels_differ():
    rgb = noise(2, 3)
    expected = np.rint(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    np.testing.assert_array_equal(to_grey(rgb), expected)
    np.testing.assert_allclose(BT601.sum(), 1.0)
    assert to_grey(np.array([[[255, 0, 0]]], np.uint8))[0, 0] == 76  # red, not blue: channels are RGB


def test_single_channel_png_is_grey_ir_and_replicated_vis(tmp_path):
    grey = noise(3)
    write_image(tmp_path / "ir" / "0.png", grey)
    write_image(tmp_path / "vi" / "0.png", grey)
    assert read_image(tmp_path / "ir" / "0.png").shape == grey.shape
    (clip,) = open_dataset(tmp_path).clips
    np.testing.assert_array_equal(clip.ir(0), grey)
    vi = clip.vi(0)
    assert vi.shape == (*grey.shape, 3)
    for c in range(3):
        np.testing.assert_array_equal(vi[..., c], grey)


def test_read_image_returns_rgb_drops_alpha_and_rejects_16_bit(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 255  # blue in OpenCV order
    import cv2

    cv2.imwrite(str(tmp_path / "blue.png"), bgr)
    np.testing.assert_array_equal(read_image(tmp_path / "blue.png")[0, 0], [0, 0, 255])
    bgra = np.dstack([bgr, np.full((4, 5), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), bgra)
    np.testing.assert_array_equal(read_image(tmp_path / "alpha.png")[0, 0], [0, 0, 255])
    cv2.imwrite(str(tmp_path / "deep.png"), np.full((4, 5), 1000, np.uint16))
    with pytest.raises(DataError, match=r"deep\.png.*8-bit.*uint16"):
        read_image(tmp_path / "deep.png")


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n truncated", b"GIF89a not a png"])
def test_corrupt_image_is_data_error_naming_the_file(tmp_path, content):
    path = tmp_path / "0007.png"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"0007\.png"):
        read_image(path)
    with pytest.raises(DataError, match=r"0007\.png"):
        ImageFiles([path]).read(0)


def test_sources_check_indices():
    frames = ArrayFrames(np.stack([noise(i) for i in range(3)]))
    np.testing.assert_array_equal(frames.read(-1), noise(2))
    with pytest.raises(IndexError, match="frame 3 out of range.*3 frames"):
        frames.read(3)
    with pytest.raises(DataError, match="uint8"):
        ArrayFrames(np.zeros((2, 4, 4), np.float32))


# -- video: synthetic ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fps", [30, 22])
def test_video_reports_container_fps_and_exact_count(tmp_path, fps):
    path = write_video(tmp_path / "ir.mp4", [smooth(i) for i in range(12)], fps=fps)
    video = VideoFile(path)
    assert len(video) == 12
    assert video.fps == pytest.approx(fps)
    assert video.lossy
    clip = Clip("c", video, VideoFile(path))
    assert clip.fps == pytest.approx(fps) and clip.lossy and len(clip) == 12
    frame = video.read(5)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert np.abs(frame.astype(int) - smooth(5)).mean() < 3  # frame 5 is frame 5, not a neighbour
    assert np.abs(frame.astype(int) - smooth(6)).mean() > 3


def test_lossy_video_ir_converts_to_grey(tmp_path):
    frames = [np.repeat(smooth(i)[..., :1], 3, 2) for i in range(4)]
    path = write_video(tmp_path / "ir.mp4", frames)
    clip = Clip("c", VideoFile(path), VideoFile(path))
    ir = clip.ir(2)
    assert ir.shape == (48, 64) and ir.dtype == np.uint8
    assert np.abs(ir.astype(int) - frames[2][..., 0]).mean() < 3


def test_corrupt_video_is_data_error_naming_the_file(tmp_path):
    good = write_video(tmp_path / "good.mp4", [smooth(i) for i in range(6)]).read_bytes()
    corrupt = {"garbage.mp4": b"not a video" * 50, "cut.mp4": good[: len(good) // 2], "empty.mp4": b""}
    for name, content in corrupt.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError, match=name.replace(".", r"\.")):
            len(VideoFile(path))
        with pytest.raises(DataError, match=name.replace(".", r"\.")):
            VideoFile(path).read(0)


def test_video_index_out_of_range(tmp_path):
    video = VideoFile(write_video(tmp_path / "v.mp4", [smooth(i) for i in range(5)]))
    with pytest.raises(IndexError, match="frame 5 out of range.*5 frames"):
        video.read(5)
    np.testing.assert_array_equal(video.read(-1), video.read(4))


def test_pickled_video_reads_in_the_copy(tmp_path):
    video = VideoFile(write_video(tmp_path / "v.mp4", [smooth(i) for i in range(8)]))
    fresh = pickle.loads(pickle.dumps(video))  # before anything was opened
    np.testing.assert_array_equal(fresh.read(3), video.read(3))
    copy = pickle.loads(pickle.dumps(video))  # after: an open decoder and a lock are not pickled
    assert len(copy) == 8 and copy._pts == video._pts
    for i in (7, 0, 4):
        np.testing.assert_array_equal(copy.read(i), video.read(i))
    video.close()
    np.testing.assert_array_equal(video.read(6), copy.read(6))  # reopens after close


# -- video: the real M3SVD mp4s --------------------------------------------------------------------------
@pytest.mark.parametrize("stream", ["infrared", "visible"])
def test_real_mp4_exact_frame_counts(m3svd_videos, stream):
    for name, n in REAL_LENGTHS.items():
        video = VideoFile(m3svd_videos / "test" / stream / f"{name}.mp4")
        assert len(video) == n, name
        assert video.fps == pytest.approx(30.0)


def test_real_mp4_random_access_equals_sequential(m3svd_videos):
    path = m3svd_videos / "test" / "infrared" / "0111_1716.mp4"
    wanted = [150, 0, 77, 13, 12, 149, 1, 150, 40]
    sequential = VideoFile(path)
    expected = {i: f for i, f in ((i, sequential.read(i)) for i in range(151)) if i in wanted}
    video = VideoFile(path)
    for i in wanted:
        np.testing.assert_array_equal(video.read(i), expected[i], err_msg=f"frame {i}")
    with pytest.raises(IndexError):
        video.read(151)


def test_real_mp4_matches_lossless_png_frames(m3svd_videos, m3svd_frames):
    video = open_dataset(m3svd_videos).clip("0111_1716")
    frames = open_dataset(m3svd_frames).clip("0111_1716", variant="clean")
    assert video.lossy and not frames.lossy
    for i in (0, 19):
        assert np.abs(video.ir(i).astype(int) - frames.ir(i)).mean() < 5
        assert np.abs(video.vi(i).astype(int) - frames.vi(i)).mean() < 5
    assert np.abs(video.vi(0).astype(int) - frames.vi(5)).mean() > 5  # frame 0 is PNG 0000, not a later one
    raw = video.ir_source.read(0)
    assert not (raw[..., 0] == raw[..., 1]).all()  # chroma loss: the 3 decoded channels differ, converted to grey
    assert video.ir(0).ndim == 2
