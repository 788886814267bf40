"""MagicFuse: released key layouts, the released autoencoder and the small-configuration goldens (README §3 of
``../shared/golden/models``), the sampler's constants and noise-fusion rule, the method end to end on the
visible-only protocol, and MKF training."""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import golden_model
from synthetic import make_m3svd

from m3svd import methods, protocols
from m3svd.evaluate import MethodSpec, evaluate
from m3svd.methods.base import MethodError
from m3svd.methods.magicfuse import builders, to_uint8
from m3svd.methods.magicfuse import weights as files
from m3svd.methods.magicfuse.mkf import fuse_noise
from m3svd.methods.magicfuse.sampler import Nets, alphas_cumprod_pre, sample, timesteps
from m3svd.methods.nets import load_state_dict

AE_SHA256 = "19c745812f113909290240ab2eb9e6d8e1bb5b60d82f1144f92f6bba34660323"




@pytest.fixture(scope="module")
def io() -> dict:
    from safetensors.torch import load_file

    return load_file(str(golden_model("magicfuse_small_io.safetensors")))


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    """The golden small IKR/CKG/MKF (dequantised) and the released AE as a flat weights folder."""
    state = load_state_dict(golden_model("magicfuse_small.safetensors"), "golden", "shared golden")
    folder = tmp_path_factory.mktemp("magicfuse-small")
    for part, (name, _, _) in files.FILES.items():
        if part == "ae":
            shutil.copy(golden_model("magicfuse_ae.pth"), folder / name)
        else:
            torch.save({k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")}, folder / name)
    return folder


@pytest.fixture(scope="module")
def small_nets(small_folder) -> Nets:
    return Nets(**files.load(builders("small"), files.locate(small_folder)))


def max_err(a, b) -> float:
    return (a.double() - b.double()).abs().max().item()


# -- key layouts and the released autoencoder -----------------------------------------------------------------------
def test_released_layouts_equal_the_full_key_listing_built_on_meta():
    listing = json.loads(golden_model("magicfuse_full_keys.json").read_text())["components"]
    build = builders("full")
    with torch.device("meta"):
        ae = build["ae"]()
        nets = {"AE.encoder": ae.encoder, "AE.decoder": ae.decoder, "IKR": build["ikr"](), "CKG": build["ckg"](),
                "MKF": build["mkf"]()}
    for name, net in nets.items():
        expected = {e["key"]: tuple(e["shape"]) for e in listing[name]["state_dict"]}
        assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == expected, name
        assert sum(p.numel() for p in net.parameters()) == listing[name]["parameter_count"], name
        assert all(p.is_meta for p in net.parameters())
    assert len(nets["IKR"].state_dict()) == 556 and len(nets["CKG"].state_dict()) == 426
    assert sum(p.numel() for p in nets["CKG"].parameters()) == 517_670_920


def test_released_autoencoder_loads_strictly_and_reproduces_the_golden(io):
    path = golden_model("magicfuse_ae.pth")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == AE_SHA256
    ae = files.load({"ae": builders("full")["ae"]}, {"ae": path})["ae"]
    x = io["ae.in_rgb_u8"].permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        # the encoder's own noise: the first CPU draw after seeding 55, as in the authors' quicktest
        drawn = ae.encoder(x, generator=torch.Generator().manual_seed(55))
        z0 = ae.encoder(x, noise=torch.zeros_like(io["ae.enc_noise"]))
        recon = ae.decoder(io["ae.z"])
    assert max_err(drawn, io["ae.z"]) <= 1e-5
    assert max_err(z0, io["ae.z_noise0"]) <= 1e-5
    assert max_err(recon, io["ae.recon"]) <= 1e-4
    assert max_err(drawn, z0) > 1e-4  # the noise really enters


def test_autoencoder_files_with_wrong_keys_fail_in_one_line(tmp_path):
    state = torch.load(golden_model("magicfuse_ae.pth"), weights_only=True)
    del state["decoder"]["deconv.0.bias"]
    torch.save(state, tmp_path / "ae.pth")
    with pytest.raises(MethodError, match=r"missing key 'decoder\.deconv\.0\.bias'"):
        files.load({"ae": builders("full")["ae"]}, {"ae": tmp_path / "ae.pth"})


# -- small-configuration unit goldens -------------------------------------------------------------------------------
def test_small_unets_match_their_unit_goldens(small_nets, io):
    x = io["unit.unet_in"].repeat(2, 1, 1, 1)
    with torch.no_grad():
        for part in ("ikr", "ckg"):
            assert max_err(getattr(small_nets, part)(x, io["unit.t"]), io[f"unit.{part}_eps"]) <= 1e-4, part


def test_small_mkf_matches_its_unit_golden(small_nets, io):
    meta = json.loads(golden_model("magicfuse_small_meta.json").read_text())["unit_golden"]["mkf_seg_map_stats"]
    args = [io[f"unit.mkf_{k}"] for k in ("x", "n1", "n2")] + [io["unit.t"]]
    with torch.no_grad():
        w_e, _ = small_nets.mkf.weight(*args)
        noise, seg_map, seg = small_nets.mkf(*args, io["unit.mkf_seg_in"])
    assert max_err(w_e, io["unit.mkf_w_e"]) <= 1e-4
    assert max_err(noise, io["unit.mkf_noise"]) <= 1e-4
    assert max_err(seg, io["unit.mkf_seg"]) <= 1e-4
    assert seg_map.shape == tuple(meta["shape"])
    np.testing.assert_allclose(seg_map.flatten()[meta["sample_flat_index"]], meta["sample_values"], atol=1e-4)


def test_noise_fusion_caps_the_visible_share_on_person_pixels_only():
    w_e = torch.full((1, 8, 2, 2), 0.9)
    w_e[:, :, 1, 1] = 0.1
    seg = torch.zeros(1, 9, 2, 2)
    seg[0, 2, 0, :] = 1.0  # top row "person"
    n1, n2 = torch.ones(1, 8, 2, 2), torch.zeros(1, 8, 2, 2)
    w_r = fuse_noise(w_e, n1, n2, seg)  # = w_r itself with these noises
    assert torch.allclose(w_r[0, :, 0, :], torch.tensor(0.4))
    assert torch.allclose(w_r[0, :, 1, 0], torch.tensor(0.9)) and torch.allclose(w_r[0, :, 1, 1], torch.tensor(0.1))


# -- schedule and pipeline golden -----------------------------------------------------------------------------------
def test_schedule_is_the_released_one():
    schedule = json.loads(golden_model("magicfuse_schedule.json").read_text())
    pairs = timesteps()
    assert [t for t, _ in pairs] == schedule["timesteps_descending"]
    assert [n for _, n in pairs] == schedule["next_timesteps"]
    a = alphas_cumprod_pre()
    assert a.dtype == torch.float32 and a[0] == 1.0
    assert torch.equal(a[1:], torch.tensor(schedule["alphas_cumprod_float32_all"], dtype=torch.float32))
    for step in schedule["steps"]:
        assert a[step["t"] + 1].item() == step["alpha_bar_t"] and a[step["next_t"] + 1].item() == step["alpha_bar_next"]


def test_pipeline_reproduces_the_golden_run_step_by_step(small_nets, io):
    with torch.no_grad():
        out = sample(small_nets, io["pipe.in"], generator=torch.Generator().manual_seed(55), trace=True)
        again = sample(small_nets, io["pipe.in"], generator=torch.Generator().manual_seed(55))
    assert out["t"] == io["pipe.step_t"].tolist()
    for key in ("ikr_eps", "ckg_eps", "mkf_eps", "seg"):
        assert max_err(torch.cat(out[key]), io[f"pipe.step_{key}"]) <= 1e-4, key
    for key in ("ikr_x0", "ckg_x0", "mkf_x0"):
        assert max_err(out[key], io[f"pipe.{key}"]) <= 1e-3, key
    for key in ("ikr_img", "ckg_img", "MagImg", "seg_map"):
        assert max_err(out[key], io[f"pipe.{key}"]) <= 1e-4, key
    assert torch.equal(out["seg_label"], io["pipe.seg_label"])
    assert torch.equal(again["MagImg"], out["MagImg"])  # seeded: bit-identical rerun


def test_float64_pipeline_matches_the_float64_reference(small_nets, io):
    nets = Nets(*(copy.deepcopy(getattr(small_nets, k)).double() for k in ("ae", "ikr", "ckg", "mkf")))
    noise = {k: io[f"pipe.{k}"].double() for k in ("enc_noise", "x_T", "seg_T")}
    with torch.no_grad():
        out = sample(nets, io["pipe.in"].double(), **noise)
    for key in ("ikr_img", "ckg_img", "MagImg", "mkf_x0"):
        assert out[key].dtype == torch.float64 and max_err(out[key], io[f"pipe_f64.{key}"]) <= 1e-8, key


def test_bfloat16_autocast_stays_close_to_the_float32_golden(small_nets, io):
    with torch.no_grad():
        out = sample(small_nets, io["pipe.in"], generator=torch.Generator().manual_seed(55), bf16=True)
    assert out["MagImg"].dtype == torch.float32 and torch.isfinite(out["MagImg"]).all()
    error = (out["MagImg"] - io["pipe.MagImg"]).abs()
    assert 0 < error.mean() < 0.02  # bf16 really ran, and stayed near float32
    assert (out["seg_label"] == io["pipe.seg_label"]).float().mean() > 0.95


def test_method_fuses_the_golden_crop_as_the_authors_save_it(small_folder, io):
    method = methods.create("magicfuse", weights=small_folder, config="small")
    assert method.inputs == ("vi",) and method.temporal_window == 1
    vi = np.rint(io["pipe.in"][0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    fusion = method.fuse(None, vi[None])
    expected = to_uint8(io["pipe.MagImg"])
    assert fusion.fused.shape == (1, 64, 64, 3) and fusion.fused.dtype == np.uint8
    assert np.abs(fusion.fused[0].astype(int) - expected).max() <= 1
    assert np.abs(fusion.vi[0].astype(int) - to_uint8(io["pipe.ikr_img"])).max() <= 1
    assert fusion.ir.shape == (1, 64, 64)
    odd = method.fuse(None, np.stack([vi[:62, :58]] * 2))  # padded to multiples of 4 and cropped back
    assert odd.fused.shape == (2, 62, 58, 3)
    assert np.array_equal(odd.fused[0], odd.fused[1])  # per frame, same seed: no dependence on the window


def test_missing_weights_name_every_file_and_where_it_is_published(small_folder, tmp_path):
    with pytest.raises(MethodError) as error:
        methods.create("magicfuse")
    message = str(error.value)
    assert all(name in message for name in ("ae.pth", "ikr.pth", "ckg.pth", "model.pth", "pan.baidu.com"))
    assert "\n" not in message
    partial = tmp_path / "pretrained"
    (partial / "IKR").mkdir(parents=True)
    shutil.copy(small_folder / "ikr.pth", partial / "IKR" / "ikr.pth")  # the authors' layout is found
    with pytest.raises(MethodError, match="lacks: ae.pth") as error:
        methods.create("magicfuse", weights=partial, config="small")
    assert "ikr.pth" not in str(error.value) and "ckg.pth" in str(error.value)
    with pytest.raises(MethodError, match=r"ikr\.pth: key 'time_embed\.0\.weight' has shape \(128, 32\)"):
        methods.create("magicfuse", weights=small_folder)  # small weights, full configuration
    for name in ("ae.pth", "ckg.pth"):
        shutil.copy(small_folder / name, partial / name)
    shutil.copy(small_folder / "model.pth", tmp_path / "ours.pth")  # e.g. from `m3svd train --method magicfuse`
    method = methods.create("magicfuse", weights=partial, config="small", mkf=str(tmp_path / "ours.pth"))
    assert method.paths["mkf"] == tmp_path / "ours.pth" and len(method.weights_sha256) == 64


# -- end to end -----------------------------------------------------------------------------------------------------
def test_visible_only_protocol_end_to_end_with_test_made_weights(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "weights"
    folder.mkdir()
    for part, build in builders("small").items():
        net = build()
        state = net.state_dict() if part != "ae" else {"encoder": net.encoder.state_dict(),
                                                       "decoder": net.decoder.state_dict()}
        torch.save(state, folder / files.FILES[part][0])
    make_m3svd(tmp_path / "data", clips=("0111_1716",), n=3, split="test", folders=(
        "infrared_Enhance", "visible_Enhance", "infrared_noise", "visible_Blur"))
    protocol = protocols.load("m3svd-visible-only")
    spec = MethodSpec("magicfuse", weights=str(folder), options=(("config", "small"),))
    run = evaluate(protocol, tmp_path / "out", method=spec, root=tmp_path / "data")
    rows = run.results
    assert set(rows["clip"]) == {"0111_1716"} and set(rows["frame"]) == {0, 1, 2}
    assert set(rows["method"]) == {"magicfuse"} and rows["weights_sha256"].nunique() == 1
    assert {"psnr", "ssim", "qabf"} <= set(rows["metric"]) and rows["value"].notna().any()
    assert len(list((tmp_path / "out" / "fused" / "0111_1716").glob("*.png"))) == 3
    again = evaluate(protocol, tmp_path / "out", method=spec, root=tmp_path / "data")
    assert again.results.equals(rows)


# -- training -------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_mkf_training_lowers_the_loss_and_resumes_exactly(tmp_path):
    from m3svd.methods.magicfuse.train import build_dataset, frozen_nets, iteration_inputs, step_loss, train

    root = tmp_path / "data"
    make_m3svd(root, clips=("0111_1716",), n=2, split="train", h=64, w=80)
    (tmp_path / "ae").mkdir()
    shutil.copy(golden_model("magicfuse_ae.pth"), tmp_path / "ae" / "ae.pth")  # the released AE; random U-Nets, MKF
    kwargs = {"split": "train", "seed": 3, "device": "cpu", "config": "small", "progress": False, "lr": 1e-2,
              "weights": tmp_path / "ae"}
    full = train(root, tmp_path / "full", iterations=4, **kwargs)
    train(root, tmp_path / "half", iterations=2, **kwargs)
    resumed = train(root, tmp_path / "half", iterations=4, **kwargs)
    trained = torch.load(full, weights_only=True)
    assert all(torch.equal(v, torch.load(resumed, weights_only=True)[k]) for k, v in trained.items())
    log = [json.loads(line) for line in (tmp_path / "full" / "train_log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log] == list(range(1, 5))
    label = json.loads((tmp_path / "full" / "magicfuse.json").read_text())
    assert label["semantic_loss"] is False and label["trained"].startswith("MKF only")
    # the same four inputs scored by the initial and by the trained MKF
    nets, dataset = frozen_nets("small", tmp_path / "ae", 3, "cpu"), build_dataset(root, "train")

    def losses():
        return [step_loss(nets, *iteration_inputs(dataset, None, i, 3, (64, 64), "cpu"))[0].item() for i in range(4)]

    before = losses()
    assert before[0] == pytest.approx(log[0]["loss"], rel=1e-6)
    nets.mkf.load_state_dict(trained)
    after = losses()
    assert np.mean(after) < 0.99 * np.mean(before)


def test_cli_train_passes_the_frozen_weights_folder(tmp_path, capsys):
    """`m3svd train --weights` reaches a recipe that takes frozen networks, and is refused by one that does not."""
    from m3svd.cli import main

    assert main(["train", "--method", "magicfuse", "--root", "sample", "--config", "full", "--iterations", "1",
                 "--out", str(tmp_path / "mf"), "--weights", str(tmp_path / "empty"), "--no-progress"]) != 0
    assert "ae.pth" in capsys.readouterr().err
    assert main(["train", "--method", "videofusion", "--root", "sample", "--iterations", "1",
                 "--out", str(tmp_path / "vf"), "--weights", str(tmp_path), "--no-progress"]) != 0
    assert "takes no --weights" in capsys.readouterr().err
