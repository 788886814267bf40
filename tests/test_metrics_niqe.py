"""NIQE: MATLAB ``imresize``, the pristine-model file (found or named in one line), fitting, and its direction.

No lineage's golden files hold NIQE values. The score is checked against one value recorded from basicsr 1.4.2's
``niqe()`` (its sdist run outside the repository, its ``imresize`` switched to float64 tensors; in its own float32 it
gives 23.355609374506674, 1.1e-8 away) on a real M3SVD frame and a closed-form model; by hand, the same port agreed
to 7.7e-14 over the VIFB fused images.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.io import savemat

from m3svd import metrics
from m3svd.data import open_dataset
from m3svd.data.frames import to_grey
from m3svd.metrics import MetricError
from m3svd.metrics import niqe as N

BASICSR_NIQE = 23.355609114641076  # basicsr 1.4.2 niqe(), float64 resize, on the frame and model below


def test_score_equals_basicsr_on_a_real_frame():
    import cv2
    from conftest import shared

    frame = cv2.imread(str(shared("m3svd", "test") / "visible_Enhance" / "0114_1611" / "0000.png"))[..., ::-1]
    grey = to_grey(np.ascontiguousarray(frame)).astype(np.float64)
    i = np.arange(36)
    model = N.Params(mu=0.5 + 0.05 * i, cov=0.1 * 0.5 ** np.abs(i[:, None] - i[None, :]))  # any SPD model will do
    assert grey.shape == (480, 640)
    assert N.score(grey, model) == pytest.approx(BASICSR_NIQE, rel=1e-13)


def test_imresize_half_equals_torch_antialiased_bicubic_away_from_the_borders():
    """PyTorch's antialiased bicubic is the same kernel (a = −0.5, stretched ×2); only borders differ (MATLAB
    mirrors the image, torch renormalises the truncated kernel)."""
    x = np.random.default_rng(0).random((96, 130))
    ours = N.matlab_imresize(x, 0.5)
    theirs = F.interpolate(torch.from_numpy(x)[None, None], scale_factor=0.5, mode="bicubic", antialias=True,
                           align_corners=False)[0, 0].numpy()
    assert ours.shape == (48, 65)
    np.testing.assert_allclose(ours[4:-4, 4:-4], theirs[4:-4, 4:-4], rtol=0, atol=1e-12)
    assert np.allclose(N.matlab_imresize(np.full((20, 30), 7.0), 0.5), 7.0)  # weights sum to 1, borders too


def test_a_missing_model_is_one_line_naming_the_file_and_where_it_ships(tmp_path, monkeypatch):
    monkeypatch.delenv(N.PARAMS_ENV, raising=False)
    monkeypatch.setenv("M3SVD_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("M3SVD_ROOT", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    frames = np.zeros((1, 192, 192), np.uint8)
    with pytest.raises(MetricError, match=r"niqe_pris_params\.npz.*basicsr 1\.4\.2 sdist") as error:
        metrics.get("niqe")(frames)
    assert "\n" not in str(error.value)


def _grey(clip, a, b):
    ir, vi = clip.frames(a, b)
    return to_grey(vi).astype(np.float64)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A pristine model fitted to the visible frames of two M3SVD clips, saved as basicsr's .npz and as .mat."""
    from conftest import shared

    clips = open_dataset(shared("m3svd")).select("test", "clean")
    params = N.fit_params(list(_grey(clips[0], 0, 20)[::2]) + list(_grey(clips[1], 0, 20)[::2]))
    folder = tmp_path_factory.mktemp("niqe")
    np.savez(folder / "niqe_pris_params.npz", mu_pris_param=params.mu[None], cov_pris_param=params.cov,
             gaussian_window=N.gaussian_7x7())
    savemat(folder / "model.mat", {"mu_prisparam": params.mu[None], "cov_prisparam": params.cov})
    return params, folder, clips[2]


def test_blur_and_noise_score_worse_than_clean_frames_of_an_unseen_clip(fitted):
    params, _, unseen = fitted
    clean = _grey(unseen, 0, 4)
    rng = np.random.default_rng(1)
    import cv2

    for frame in clean:
        base = N.score(frame, params)
        blurred = N.score(cv2.GaussianBlur(frame, (0, 0), 2.5), params)
        noisy = N.score(np.clip(frame + rng.normal(0, 20, frame.shape), 0, 255).round(), params)
        assert base < blurred and base < noisy, (base, blurred, noisy)


def test_model_files_load_from_env_or_weights_folder_and_give_the_fitted_scores(fitted, monkeypatch):
    params, folder, unseen = fitted
    frame = _grey(unseen, 0, 1)[0]
    expected = N.score(frame, params)
    assert N.score(frame, N.load_params(folder / "model.mat")) == pytest.approx(expected, rel=1e-12)
    monkeypatch.setenv("M3SVD_WEIGHTS", str(folder))
    monkeypatch.delenv(N.PARAMS_ENV, raising=False)
    metric = metrics.get("niqe")
    assert metric.kind == "no-reference" and metric.lower_better
    uint8 = np.round(frame).astype(np.uint8)[None]
    assert metric(uint8) == pytest.approx(expected, rel=1e-12)  # no sources needed
    ir, vi = unseen.frames(0, 1)
    assert metric(uint8, ir=ir, vi=vi) == pytest.approx(expected, rel=1e-12)  # and ignored when given
    np.savez(folder / "bad.npz", mu=np.zeros(36))
    monkeypatch.setenv(N.PARAMS_ENV, str(folder / "bad.npz"))
    with pytest.raises(MetricError, match="not a NIQE pristine model"):
        metric(uint8)


def test_frames_too_small_for_two_blocks_say_so():
    with pytest.raises(MetricError, match="holds 1 whole 96×96 block"):
        N.features(np.zeros((100, 150)))


def test_a_protocol_can_name_niqe_beside_the_image_metrics(fitted, tmp_path, monkeypatch, m3svd_frames):
    from synthetic import protocol_file

    from m3svd import protocols
    from m3svd.evaluate import MethodSpec, evaluate

    params, folder, _ = fitted
    monkeypatch.setenv(N.PARAMS_ENV, str(folder / "niqe_pris_params.npz"))
    protocol = protocols.load(protocol_file(tmp_path / "niqe.toml", frames=[0, 2], clips=["0115_1831"],
                                            image=["en", "niqe"]))
    run = evaluate(protocol, tmp_path / "out", method=MethodSpec("vi"), root=m3svd_frames, flow_cache=False)
    rows = run.results[run.results["metric"] == "niqe"].sort_values("frame")
    assert set(rows["kind"]) == {"no-reference"} and not rows["higher_is_better"].any()
    clip = open_dataset(m3svd_frames).clip("0115_1831", "test", "clean")
    expected = [N.score(f, params) for f in _grey(clip, 0, 2).round()]
    np.testing.assert_allclose(rows["value"], expected, rtol=1e-12)
