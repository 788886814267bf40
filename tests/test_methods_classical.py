"""Classical baselines: what each rule promises on real frames and on inputs where the answer is known."""

import cv2
import numpy as np
import pytest
from synthetic import protocol_file

from m3svd import methods, protocols
from m3svd.data import open_dataset
from m3svd.evaluate import EvaluationError, MethodSpec, evaluate
from m3svd.methods.base import rgb_to_ycbcr

VISIBLE_ONLY = ["clahe", "gf-detail"]  # single-visible-image baselines: inputs = ("vi",)
CLASSICAL = ["ir", "vi", "average", "max", "laplacian", "dwt", "gff", "gff-temporal", *VISIBLE_ONLY]


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


# -- single-visible-image baselines (the visible-only track) ----------------------------------------------------------
def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float) @ np.array([0.299, 0.587, 0.114])


def _local_contrast(grey: np.ndarray, size: int = 15) -> float:
    """Mean local standard deviation over ``size``×``size`` windows: what CLAHE is meant to raise."""
    mean = cv2.blur(grey, (size, size))
    return float(np.sqrt(np.maximum(cv2.blur(grey * grey, (size, size)) - mean * mean, 0)).mean())


@pytest.mark.parametrize("name", VISIBLE_ONLY + ["vi"])
def test_visible_only_baselines_need_no_infrared_and_ignore_it(name, frames):
    ir, vi = frames
    method = methods.create(name)
    assert method.inputs == ("vi",)
    fused = method.fuse(None, vi).fused
    assert fused.shape == vi.shape and fused.dtype == np.uint8
    assert np.array_equal(fused, method.fuse(ir, vi).fused)  # IR, where a fusion protocol passes it, is unused
    assert np.array_equal(fused, methods.create(name).fuse(None, vi.copy()).fused)  # deterministic


@pytest.mark.parametrize("name", VISIBLE_ONLY)
def test_visible_only_baselines_keep_grey_grey_and_change_the_frame(name, frames):
    ir, vi = frames
    grey = np.repeat(ir[..., None], 3, axis=-1)
    fused = methods.create(name).fuse(None, grey).fused
    assert (fused[..., 0] == fused[..., 1]).all() and (fused[..., 1] == fused[..., 2]).all()
    assert np.abs(fused.astype(int) - grey).mean() > 1  # an enhancement, not a copy


@pytest.mark.parametrize("name", VISIBLE_ONLY)
def test_visible_only_baselines_keep_the_visible_chroma(name, frames):
    _, vi = frames
    fused = methods.create(name).fuse(None, vi).fused
    chroma_in, chroma_out = rgb_to_ycbcr(vi)[..., 1:], rgb_to_ycbcr(fused)[..., 1:]
    unclipped = (fused > 2).all(axis=-1) & (fused < 253).all(axis=-1)  # clipping to 0–255 may bend the chroma
    assert np.abs(chroma_in - chroma_out)[unclipped].mean() < 1.0


def test_clahe_raises_local_contrast_of_a_low_contrast_frame():
    """A dim, flat-looking frame (texture squeezed into 100–125): CLAHE spreads each tile's histogram."""
    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.uniform(0, 1, (240, 320)), (0, 0), 3)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    y = np.rint(100 + 25 * texture).astype(np.uint8)
    vi = np.repeat(y[None, ..., None], 3, axis=-1)
    fused = _luma(methods.create("clahe").fuse(None, vi).fused[0])
    before, after = _local_contrast(y.astype(float)), _local_contrast(fused)
    assert after > 1.5 * before, (before, after)
    # a tighter clip limit limits the gain, and options are checked
    limited = _luma(methods.create("clahe", clip_limit=1.0).fuse(None, vi).fused[0])
    assert before <= _local_contrast(limited) < after
    with pytest.raises(methods.MethodError, match="no option 'clip'"):
        methods.create("clahe", clip=2)


def test_guided_detail_enhancement_boosts_detail_and_keeps_flat_areas():
    """Fine texture on one half, a flat grey on the other: the texture's amplitude grows by about the boost,
    the flat half stays as it was (no halo from the step between them beyond the filter radius)."""
    rng = np.random.default_rng(1)
    y = np.full((96, 192), 120.0)
    y[:, :96] += 8 * rng.standard_normal((96, 96))
    vi = np.repeat(np.clip(np.rint(y), 0, 255).astype(np.uint8)[None, ..., None], 3, axis=-1)
    fused = _luma(methods.create("gf-detail").fuse(None, vi).fused[0])
    textured_in, textured_out = y[:, :80].std(), fused[:, :80].std()
    assert textured_out > 3 * textured_in
    assert np.abs(fused[:, 120:] - 120).max() <= 1
    none = _luma(methods.create("gf-detail", boost=1.0).fuse(None, vi).fused[0])
    assert np.abs(none - _luma(vi[0])).max() <= 1  # boost 1 puts base and detail back together


@pytest.mark.parametrize("inputs", [("ir", "vi"), ("vi",)])
@pytest.mark.parametrize("name", VISIBLE_ONLY)
def test_visible_only_baselines_evaluate_on_the_sample(name, inputs, tmp_path):
    """On the built-in sample as given, and as a visible-only protocol (the IR stream withheld)."""
    path = protocol_file(tmp_path / "p.toml", id=f"sample-{len(inputs)}", layouts=("sample",), folders=("sample",),
                         split=None, frames=(0, 3), inputs=inputs, image=("en", "ssim", "qabf"))
    run = evaluate(protocols.load(path), tmp_path / "out", method=MethodSpec(name), progress=False)
    rows = run.results
    assert set(rows["method"]) == {name} and set(rows["frame"]) == {0, 1, 2}
    assert set(rows["metric"]) == {"en", "ssim", "qabf"} and rows["value"].notna().all()
    fused = sorted((tmp_path / "out" / "fused").rglob("*.png"))
    assert len(fused) == 3


def test_the_visible_row_runs_on_visible_only_and_infrared_methods_are_still_refused(tmp_path):
    path = protocol_file(tmp_path / "p.toml", id="sample-vis", layouts=("sample",), folders=("sample",),
                         split=None, frames=(0, 2), inputs=("vi",), image=("en",))
    protocol = protocols.load(path)
    rows = evaluate(protocol, tmp_path / "vi", method=MethodSpec("vi"), progress=False).results
    assert set(rows["frame"]) == {0, 1}
    with pytest.raises(EvaluationError, match="'ir' needs infrared input"):
        evaluate(protocol, tmp_path / "ir", method=MethodSpec("ir"), progress=False)


def test_haar_is_pywavelets_haar():
    """The dwt baseline's Haar level is PyWavelets' (details up to sign, values up to rounding) and inverts exactly
    on integer frames; it is kept hand-written because the rounding differs (see ``haar_dwt``)."""
    import pywt

    from m3svd.methods.classical import haar_dwt, haar_idwt

    x = np.random.default_rng(0).integers(0, 256, (48, 64)).astype(np.float64)
    approx, details = haar_dwt(x)
    ref_approx, ref_details = pywt.dwt2(x, "haar")
    assert np.allclose(approx, ref_approx, rtol=0, atol=1e-12)
    for mine, theirs in zip(details, ref_details, strict=True):
        assert np.allclose(np.abs(mine), np.abs(theirs), rtol=0, atol=1e-12)
    assert np.array_equal(haar_idwt(approx, details), x)
