"""The method interface: window plans, options, identity and the colour rule."""

import numpy as np
import pytest

from m3svd.methods import MethodError, plan_windows
from m3svd.methods.base import Method, rgb_to_ycbcr, with_visible_chroma


@pytest.mark.parametrize("n,size,overlap", [(1, 7, 0), (7, 7, 0), (20, 7, 0), (100, 30, 5), (31, 30, 5), (590, 25, 0)])
def test_kept_ranges_tile_the_clip_once_and_come_from_the_last_window(n, size, overlap):
    windows = plan_windows(n, size, overlap)
    kept = [i for w in windows for i in range(w.keep_start, w.keep_stop)]
    assert kept == list(range(n))
    for w in windows:
        assert w.start <= w.keep_start <= w.keep_stop <= w.stop and w.stop - w.start == min(size, n)
        later = [v for v in windows if v.start > w.start]
        assert all(i < v.start for v in later for i in range(w.keep_start, w.keep_stop))
    assert windows[-1].stop == n


def test_last_window_is_aligned_to_the_end():
    assert [(w.start, w.stop) for w in plan_windows(20, 7)] == [(0, 7), (7, 14), (13, 20)]


def test_bad_plan_and_unknown_option_are_one_line_errors():
    with pytest.raises(MethodError, match="overlap 7"):
        plan_windows(10, 7, 7)

    class Tiny(Method):
        name = "tiny"
        options = {"strength": 1.0}

    with pytest.raises(MethodError, match="no option 'strenght'.*strength"):
        Tiny(strenght=2)
    assert Tiny(strength=2).identity() == {"method": "tiny", "method_version": "1", "weights": None,
                                           "weights_sha256": None, "options": {"strength": 2}}


def test_visible_chroma_round_trips_and_keeps_chroma():
    rng = np.random.default_rng(0)
    vi = rng.integers(0, 256, (2, 8, 9, 3), dtype=np.uint8)
    ycbcr = rgb_to_ycbcr(vi)
    assert np.abs(with_visible_chroma(ycbcr[..., 0], vi).astype(int) - vi).max() <= 1
    grey = with_visible_chroma(np.full((2, 8, 9), 100.0), np.full((2, 8, 9, 3), 50, np.uint8))
    assert (grey == 100).all()
