"""Classical baselines: what each rule promises on real frames and on inputs where the answer is known."""

import numpy as np
import pytest

from m3svd import methods
from m3svd.data import open_dataset

CLASSICAL = ["ir", "vi", "average", "max", "laplacian", "dwt", "gff", "gff-temporal"]


@pytest.fixture(scope="module")
def frames():
    """Two real 640×480 M3SVD frames, cropped to keep the test fast (odd sizes on purpose)."""
    from tests.conftest import shared

    clip = open_dataset(shared("m3svd")).select(variant="clean")[0]
    ir, vi = clip.frames(0, 3)
    return ir[:, 100:221, 200:359], vi[:, 100:221, 200:359]


def test_registry_has_every_classical_baseline():
    names = [m.name for m in methods.list()]
    assert set(CLASSICAL) <= set(names)
    with pytest.raises(methods.MethodError, match="did you mean 'gff'"):
        methods.get("gf")


@pytest.mark.parametrize("name", CLASSICAL)
def test_fused_is_rgb_uint8_of_the_input_size(name, frames):
    ir, vi = frames
    fused = methods.create(name).fuse(ir, vi).fused
    assert fused.shape == vi.shape and fused.dtype == np.uint8


@pytest.mark.parametrize("name", ["average", "max", "laplacian", "dwt", "gff", "gff-temporal"])
def test_identical_grey_sources_fuse_to_themselves(name, frames):
    ir, _ = frames
    grey_vi = np.repeat(ir[..., None], 3, axis=-1)
    fused = methods.create(name).fuse(ir, grey_vi).fused
    assert np.abs(fused.astype(int) - grey_vi).max() <= 1
    assert (fused[..., 0] == fused[..., 1]).all() and (fused[..., 1] == fused[..., 2]).all()


def test_sanity_rows_and_pixel_rules(frames):
    ir, vi = frames
    assert (methods.create("ir").fuse(ir, vi).fused == ir[..., None]).all()
    assert (methods.create("vi").fuse(ir, vi).fused == vi).all()
    y = vi.astype(float) @ np.array([0.299, 0.587, 0.114])
    fused_max = methods.create("max").fuse(ir, vi).fused.astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(fused_max - np.maximum(ir, y)).mean() < 1.0  # luminance rule; chroma rounding only


def test_multiscale_rules_keep_the_stronger_detail():
    """A sharp IR edge and a flat visible frame: the detail-selecting rules keep the edge, the average halves it."""
    ir = np.zeros((1, 64, 64), np.uint8)
    ir[:, :, 33:] = 200  # an odd column, so the edge falls inside a Haar block
    vi = np.full((1, 64, 64, 3), 100, np.uint8)
    avg = methods.create("average").fuse(ir, vi).fused[0, :, :, 0].astype(float)
    assert avg[:, 33].mean() - avg[:, 32].mean() == pytest.approx(100, abs=1)
    for name in ("laplacian", "dwt", "gff"):
        fused = methods.create(name).fuse(ir, vi).fused[0, :, :, 0].astype(float)
        assert fused[:, 33].mean() - fused[:, 32].mean() > 120, name


def test_temporal_gff_flickers_less_than_gff_on_noisy_saliency():
    """Independent noise each frame flips GFF's binary weight maps; the temporal variant smooths them."""
    rng = np.random.default_rng(0)
    base_ir = rng.integers(60, 200, (48, 48)).astype(float)
    base_vi = rng.integers(60, 200, (48, 48)).astype(float)
    ir = np.clip(base_ir + rng.normal(0, 6, (12, 48, 48)), 0, 255).astype(np.uint8)
    vi = np.repeat(np.clip(base_vi + rng.normal(0, 6, (12, 48, 48)), 0, 255).astype(np.uint8)[..., None], 3, -1)

    def flicker(name):
        fused = methods.create(name).fuse(ir, vi).fused[..., 0].astype(float)
        return np.abs(np.diff(fused, axis=0)).mean()

    assert flicker("gff-temporal") < flicker("gff")


def test_options_are_checked_and_change_the_result(frames):
    ir, vi = frames
    with pytest.raises(methods.MethodError, match="no option 'level'"):
        methods.create("laplacian", level=2)
    two = methods.create("laplacian", levels=1).fuse(ir, vi).fused
    four = methods.create("laplacian", levels=4).fuse(ir, vi).fused
    assert not np.array_equal(two, four)


def test_mismatched_window_is_a_one_line_error():
    with pytest.raises(methods.MethodError, match=r"expected IR frames \(2, 8, 8\)"):
        methods.create("average").fuse(np.zeros((2, 8, 9), np.uint8), np.zeros((2, 8, 8, 3), np.uint8))
