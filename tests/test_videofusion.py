"""VideoFusion: the released key layout, the conformance golden (float32 and float64), the inference protocol
(windows, padding, the saved-frame stretch, restored outputs), options and errors, evaluation end to end and a
few training iterations on the built-in sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import golden_model
from synthetic import make_m3svd, protocol_file

from m3svd import methods, protocols
from m3svd.data.frames import to_grey
from m3svd.evaluate import MethodSpec, evaluate
from m3svd.methods.base import MethodError, Window
from m3svd.methods.videofusion import CHECKPOINT, CHECKPOINT_URL, git_blob_sha1, stretch_per_frame, tiles
from m3svd.methods.videofusion.arch import build


@pytest.fixture(scope="module")
def io():
    from safetensors.torch import load_file

    return load_file(str(golden_model("videofusion_small_io.safetensors")))


@pytest.fixture(scope="module")
def small_weights() -> Path:
    return golden_model("videofusion_small.safetensors")


@pytest.fixture(scope="module")
def method(small_weights):
    return methods.create("videofusion", weights=small_weights)


def _uint8_inputs(io):
    """The golden's float inputs are k/255 (official reader), so the uint8 frames are recovered exactly."""
    ir = (io["in.x_ir"][0] * 255).round()
    vi = (io["in.x_vi"][0] * 255).round()
    assert torch.equal(ir / 255, io["in.x_ir"][0]) and torch.equal(ir[:, 0], ir[:, 2])
    return ir[:, 0].to(torch.uint8).numpy(), vi.to(torch.uint8).permute(0, 2, 3, 1).numpy()


# -- architecture ---------------------------------------------------------------------------------------------
def test_released_configuration_matches_the_checkpoint_layout():
    listing = json.loads(golden_model("videofusion_full_keys.json").read_text())["released_config"]
    with torch.device("meta"):
        state = build("full").state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == [
        (e["key"], tuple(e["shape"])) for e in listing["state_dict"]]
    assert len(state) == 464 and sum(v.numel() for v in state.values()) == listing["parameter_count"] == 6_750_742
    assert all(k in state for k in listing["params_never_used_in_forward"])  # the unused attn.norm LayerNorms


def test_small_configuration_reproduces_the_golden_in_float32(io, small_weights):
    from safetensors.torch import load_file

    net = build("small").eval()
    net.load_state_dict(load_file(str(small_weights)), strict=True)
    assert sum(p.numel() for p in net.parameters()) == 1_715_126
    with torch.no_grad():
        out = net(io["in.x_ir"], io["in.x_vi"])
    for k in ("fusion", "ir", "vi"):
        assert out[k].dtype == torch.float32 and out[k].shape == (1, 4, 3, 32, 48)
        assert (out[k] - io[f"out.{k}"]).abs().max().item() <= 1e-5


def test_small_configuration_reproduces_the_golden_in_float64(io, small_weights):
    from safetensors.torch import load_file

    net = build("small").double().eval()
    net.load_state_dict(load_file(str(small_weights)), strict=True)
    with torch.no_grad():
        out = net(io["in.x_ir"].double(), io["in.x_vi"].double())
    for k in ("fusion", "ir", "vi"):
        assert (out[k] - io[f"out_f64.{k}"]).abs().max().item() <= 1e-9


# -- the method ---------------------------------------------------------------------------------------------------
def test_method_pads_reflectively_and_crops_back(io, method):
    out = method.forward(io["in.x_ir"][0, ..., :30, :46], io["in.x_vi"][0, ..., :30, :46])
    for k in ("fusion", "ir", "vi"):
        assert out[k].shape == (4, 3, 30, 46)
        assert (out[k] - io[f"out_pad.{k}"][0]).abs().max().item() <= 1e-5


def test_fuse_gives_the_official_saved_frames(io, method):
    ir, vi = _uint8_inputs(io)
    fusion = method.fuse(ir, vi)
    saved = {k: io[f"saved_bgr_u8.{k}"].numpy()[..., ::-1] for k in ("fusion", "ir", "vi")}  # BGR → RGB
    assert fusion.fused.shape == vi.shape and fusion.fused.dtype == np.uint8
    assert np.abs(fusion.fused.astype(int) - saved["fusion"]).max() <= 1  # per-frame min–max stretch
    assert fusion.fused.min() == 0 and fusion.fused.max() == 255
    assert np.abs(fusion.vi.astype(int) - saved["vi"]).max() <= 1
    grey = np.stack([to_grey(np.ascontiguousarray(f)) for f in saved["ir"]])
    assert fusion.ir.shape == ir.shape and np.abs(fusion.ir.astype(int) - grey).max() <= 1
    plain = methods.create("videofusion", weights=method.weights, stretch="none").fuse(ir, vi).fused
    expected = (io["out.fusion"][0] * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.abs(plain.astype(int) - expected).max() <= 1 and plain.max() < 200  # no stretch: range (0.39, 0.6)


def test_windows_are_the_official_clips(method):
    assert methods.get("videofusion").temporal_window == 7 and method.plan(10) == [Window(0, 7, 0, 3),
                                                                                    Window(3, 10, 3, 10)]
    longer = methods.create("videofusion", weights=method.weights, frames=25)
    assert longer.plan(60) == [Window(0, 25, 0, 25), Window(25, 50, 25, 35), Window(35, 60, 35, 60)]
    assert longer.plan(5) == [Window(0, 5, 0, 5)]


def test_boundary_frames_depend_on_the_window(io, method):
    """Zero temporal padding and self-neighbours at clip ends: a frame's output depends on its window (spec §5.7)."""
    x_ir, x_vi = io["in.x_ir"][0], io["in.x_vi"][0]
    whole = method.forward(x_ir, x_vi)["fusion"]
    tail = method.forward(x_ir[1:], x_vi[1:])["fusion"]
    assert (whole[1] - tail[0]).abs().max().item() > 1e-4


def test_autocast_and_tiling_stay_close(io, small_weights):
    x_ir, x_vi = io["in.x_ir"][0], io["in.x_vi"][0]
    for options, bound in (({"autocast": "bf16"}, 1e-2), ({"autocast": "fp16"}, 2e-3),
                           ({"tile": 24, "tile_overlap": 8}, 5e-2), ({"tile": 48}, 1e-5)):
        out = methods.create("videofusion", weights=small_weights, **options).forward(x_ir, x_vi)
        errors = [(out[k] - io[f"out.{k}"][0]).abs().max().item() for k in ("fusion", "ir", "vi")]
        assert max(errors) <= bound, (options, errors)
    assert tiles(40, 16, 4) == [(0, 16), (12, 28), (24, 40)] and tiles(12, 16, 4) == [(0, 12)]


def test_stretch_per_frame_uses_all_channels():
    x = torch.tensor([[0.2, 0.4], [0.3, 0.6]]).reshape(2, 1, 1, 2).expand(2, 3, 1, 2)
    y = stretch_per_frame(x)
    assert torch.allclose(y[:, 0, 0], torch.tensor([[0.0, 1.0], [0.0, 1.0]]))
    assert torch.equal(stretch_per_frame(torch.full((1, 3, 2, 2), 0.5)), torch.zeros(1, 3, 2, 2))


def test_weights_are_required_and_checked(tmp_path):
    with pytest.raises(MethodError, match=rf"{CHECKPOINT}.*{CHECKPOINT_URL}.*m3svd train --method videofusion"):
        methods.create("videofusion")
    with pytest.raises(MethodError, match="not found.*net_g_latest.pth"):
        methods.create("videofusion", weights=tmp_path / "missing.pth")
    torch.manual_seed(0)
    state = build("small").state_dict()
    del state["fusion_1.cross_transformer.attn.norm.body.weight"]  # the unused norm is still required
    torch.save({"params": state}, tmp_path / "bad.pth")
    with pytest.raises(MethodError, match="missing key 'fusion_1.cross_transformer.attn.norm.body.weight'"):
        methods.create("videofusion", weights=tmp_path / "bad.pth")
    for bad in ({"frames": 0}, {"stretch": "global"}, {"autocast": "int8"}, {"tile": 30}, {"window": 3}):
        with pytest.raises(MethodError, match="videofusion|no option"):
            methods.create("videofusion", weights=tmp_path / "bad.pth", **bad)


def test_git_blob_id(tmp_path, method):
    (tmp_path / "f").write_bytes(b"hello\n")
    assert git_blob_sha1(tmp_path / "f") == "ce013625030ba8dba906f756967f9e9ca394464a"  # `git hash-object`
    assert method.official_checkpoint is False and method.arch == "small"


def test_evaluate_end_to_end_with_saved_weights(tmp_path, capsys):
    """A random 16-feature network saved as the official container, on a short synthetic degraded clip."""
    make_m3svd(tmp_path / "data", clips=("0111_1716",), n=5, h=30, w=42)
    torch.manual_seed(0)
    weights = tmp_path / "vf-small.pth"
    torch.save({"params": build("small").state_dict()}, weights)
    protocol_path = protocol_file(tmp_path / "short.toml", frames="all", variant="degraded", image=["en", "ssim"],
                                  restoration=["psnr"])
    spec = MethodSpec("videofusion", weights=str(weights), options=(("frames", 3),))
    run = evaluate(protocols.load(protocol_path), tmp_path / "out", method=spec, root=tmp_path / "data")
    rows = pd.concat(pd.read_parquet(p) for p in (tmp_path / "out" / "clips").glob("*.parquet"))
    assert set(rows["metric"]) >= {"en", "ssim", "restored_ir_psnr", "restored_vi_psnr"}
    assert sorted(set(rows["frame"])) == [0, 1, 2, 3, 4]
    assert (rows["weights_sha256"] == methods.create("videofusion", weights=weights).weights_sha256).all()
    assert np.isfinite(rows["value"]).all() and run is not None
    assert len(list((tmp_path / "out" / "fused" / "0111_1716").glob("*.png"))) == 5
    assert set(rows["method_options"]) == {json.dumps({"autocast": "none", "frames": 3, "stretch": "per_frame_minmax",
                                                       "tile": 0, "tile_overlap": 32})}

    from m3svd.cli import main

    assert main(["evaluate", "--method", "videofusion", "--weights", str(weights), "--protocol", str(protocol_path),
                 "--root", str(tmp_path / "data"), "--out", str(tmp_path / "cli"), "--option", "frames=3",
                 "--no-progress"]) == 0
    cli_rows = pd.read_parquet(tmp_path / "cli" / "clips" / "0111_1716.parquet")
    assert cli_rows["value"].tolist() == rows["value"].tolist()  # the same frames, the same scores


# -- training ---------------------------------------------------------------------------------------------------
def test_training_lowers_the_loss_and_resumes_exactly(tmp_path):
    from m3svd.methods.nets import load_state_dict
    from m3svd.methods.videofusion import train as recipe

    kwargs = {"config": "small", "progress": False, "batch_size": 2, "patch": 24}
    recipe.train("sample", tmp_path / "a", iterations=2, **kwargs)
    resumed = recipe.train("sample", tmp_path / "a", iterations=4, **kwargs)
    straight = recipe.train("sample", tmp_path / "b", iterations=4, **kwargs)
    log = [json.loads(line) for line in (tmp_path / "a" / "train_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == [1, 2, 3, 4]
    final, reference = (load_state_dict(p, "VideoFusion", "test") for p in (resumed, straight))
    assert final.keys() == reference.keys() and all(torch.equal(v, reference[k]) for k, v in final.items())
    label = json.loads((tmp_path / "a" / "videofusion.json").read_text())
    assert label["trained_by"].startswith("m3svd toolkit") and label["config"] == "small"

    dataset, split = recipe.build_dataset("sample", "train", 4, 24, 0, "m3svd")
    assert split is None  # the synthetic sample has no splits: every clip, and the label says so
    before, after = recipe.initial_network("small", 0).eval(), build("small").eval()
    after.load_state_dict(final)
    with torch.no_grad():
        for i in range(4):  # every batch the run saw scores lower after it
            data = recipe.batch(dataset, i, 2, 0, "cpu")
            scores = [sum(recipe.losses(net(data["ir"], data["vi"]), data["ir_ref"], data["vi_ref"]).values())
                      for net in (before, after)]
            assert scores[1] < scores[0], (i, scores)
    fused = methods.create("videofusion", weights=resumed, frames=2).fuse(*_tiny_clip())
    assert fused.fused.shape == (2, 20, 28, 3)
    with pytest.raises(MethodError, match="batch_size=2, not 1"):
        recipe.train("sample", tmp_path / "a", iterations=5, **{**kwargs, "batch_size": 1})


def test_cli_trains_the_small_configuration(tmp_path, capsys):
    from m3svd.cli import main

    assert main(["train", "--method", "videofusion", "--root", "sample", "--config", "small", "--iterations", "1",
                 "--out", str(tmp_path), "--no-progress"]) == 0
    assert "videofusion.pth" in capsys.readouterr().out
    assert methods.create("videofusion", weights=tmp_path / "videofusion.pth").arch == "small"


def test_schedule_and_losses_follow_the_recipe():
    from m3svd.methods.videofusion import train as recipe

    assert recipe.learning_rate(1, 5000) == pytest.approx(2e-8)  # linear warm-up from the first iteration
    # after the warm-up the cosine resumes where the per-iteration scheduler stands: 4999 steps in
    assert recipe.learning_rate(5000, 5000) == pytest.approx(1e-6 + 0.5 * 99e-6 * (1 + np.cos(np.pi * 4999 / 5e5)))
    assert recipe.learning_rate(250_001, 5000) == pytest.approx(0.5e-4 + 0.5e-6)  # half period
    assert recipe.learning_rate(3, 0) == pytest.approx(1e-4, rel=1e-9)
    x = torch.rand(1, 3, 3, 20, 20)
    assert recipe.variation_loss(x, x + 0.3).item() == pytest.approx(0, abs=1e-6)  # same differences
    assert recipe.ssim(x[0], x[0]).item() == pytest.approx(1.0)
    grey = x[:, :, :1].expand(-1, -1, 3, -1, -1)
    terms = recipe.losses({"fusion": x, "ir": grey, "vi": x}, grey, x)
    assert terms["fidelity_ir"] == 0 and terms["fidelity_vi"] == 0 and terms["fusion"] > 0


def _tiny_clip():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (2, 20, 28), dtype=np.uint8), rng.integers(0, 256, (2, 20, 28, 3), dtype=np.uint8)


def test_trains_on_a_layout_without_splits(tmp_path, tno):
    """TNO has no train/test split: every clip trains (the data the toolkit's own weights are meant to use)."""
    from m3svd.methods.videofusion import train as recipe

    weights = recipe.train(tno, tmp_path, iterations=1, config="small", patch=24, progress=False)
    assert methods.create("videofusion", weights=weights).weights_sha256
