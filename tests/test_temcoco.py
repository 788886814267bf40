"""TemCoCo port: released key layout, golden agreement, deformable convolution, windowing, method, training."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import golden_model

from m3svd.methods.base import MethodError, plan_windows
from m3svd.methods.temcoco import CHECKPOINT, CHECKPOINT_URL, TemCoCo, deform, official_windows
from m3svd.methods.temcoco.arch import Branch_Seg, Fusion, relative_position_index


@pytest.fixture(scope="module")
def small():
    """The small golden: dequantised weights loaded strictly into the released architecture, and its io tensors."""
    from safetensors.torch import load_file

    from m3svd.methods.nets import load_state_dict

    weights = golden_model("temcoco_small.safetensors")
    net = Fusion()
    net.load_state_dict(load_state_dict(weights, "TemCoCo", "golden"), strict=True)
    return net.eval(), load_file(str(golden_model("temcoco_small_io.safetensors"))), weights


# -- 1. key layout ------------------------------------------------------------------------------------------------
def test_released_state_dict_equals_the_official_key_list_in_order_shape_and_dtype():
    listing = json.loads(golden_model("temcoco_full_keys.json").read_text())["released_config"]
    with torch.device("meta"):
        state = Fusion().state_dict()
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()]
    assert ours == [(e["key"], e["shape"], e["dtype"]) for e in listing["state_dict"]]
    assert len(ours) == 371 == listing["num_state_dict_entries"]
    params = sum(v.numel() for k, v in state.items() if not k.endswith("relative_position_index"))
    assert params == listing["parameter_count"] == 19_213_417


def test_relative_position_index_is_the_spec_formula():
    coords = [(d, h, w) for d in range(2) for h in range(8) for w in range(8)]
    expected = [[(a[0] - b[0] + 1) * 225 + (a[1] - b[1] + 7) * 15 + (a[2] - b[2] + 7) for b in coords] for a in coords]
    assert relative_position_index().tolist() == expected


# -- 2. golden agreement --------------------------------------------------------------------------------------------
def test_float32_outputs_match_the_official_code(small):
    net, io, _ = small
    with torch.no_grad():
        fused, ir_feat, vi_feat = net(io["in.ir"], io["in.vis"])
        fused3 = net(io["in.ir"][:, :3], io["in.vis"][:, :3])[0]
    errors = {"fused": fused - io["out.fused"], "T3": fused3 - io["out_T3.fused"]}
    for name, feats in (("ir_feat", ir_feat), ("vi_feat", vi_feat)):
        errors[f"{name}.seg_out"] = feats[0] - io[f"out.{name}.seg_out"]
        errors[f"{name}.visual_out"] = feats[1] - io[f"out.{name}.visual_out"]
    worst = {k: v.abs().max().item() for k, v in errors.items()}
    assert max(worst.values()) < 1e-5, worst
    # what test_folder.py writes: clamp, RGB→BGR, ×255, round
    saved = fused[0].permute(1, 2, 3, 0).clamp(0, 1).mul(255).round().to(torch.uint8).flip(-1)
    assert (saved.int() - io["saved_bgr_u8.fused"].int()).abs().max() <= 1
    with pytest.raises(ValueError, match="multiples of 16"):
        net(io["in.ir"][..., :24], io["in.vis"][..., :24])


def test_float64_outputs_match_the_reference_to_1e_9(small):
    net, io, _ = small
    net64 = Fusion().double().eval()
    net64.load_state_dict(net.state_dict())
    ir, vis = io["in.ir"].double(), io["in.vis"].double()
    with torch.no_grad():
        fused = net64(ir, vis)[0]
        fused3 = net64(ir[:, :3], vis[:, :3])[0]
    assert (fused - io["out_f64.fused"]).abs().max() < 1e-9
    assert (fused3 - io["out_T3_f64.fused"]).abs().max() < 1e-9


def test_branch_seg_reshape_quirk_reinterprets_memory_instead_of_permuting():
    """The up-sampled ``((b t), c, h, w)`` map is re-read as ``(b, c, t, h, w)``: new (c2, t2) = old (t, c) with
    ``t·C + c = c2·T + t2`` — reproduced because the released weights were trained with it."""
    b, t, c, h, w = 1, 3, 4, 8, 8
    branch = Branch_Seg(nf=c, seg_channels=8).eval()
    known = torch.arange(b * t * c * h * w, dtype=torch.float32).reshape(b * t, c, h, w)
    seen = {}

    class Known(torch.nn.Module):  # stand-in for the transposed conv
        def forward(self, _):
            return known

    class Record(torch.nn.Module):
        def forward(self, z):
            seen["input"] = z
            return z

    branch.up, branch.conv2 = Known(), Record()
    with torch.no_grad():
        branch(torch.rand(b, c, t, h, w))
    mixed = seen["input"][:, :c]
    for c2 in range(c):
        for t2 in range(t):
            old_t, old_c = divmod(c2 * t + t2, c)
            assert torch.equal(mixed[0, c2, t2], known[old_t, old_c])
    assert not torch.equal(mixed, known.reshape(b, t, c, h, w).transpose(1, 2))  # not the "fixed" permute


# -- deformable convolution -------------------------------------------------------------------------------------
def _deform_loop(x, offset, weight, stride, padding, dilation, mask=None):
    """Direct per-output-pixel definition (torchvision / BasicSR DCN semantics), float64 Python loops."""
    x, offset, weight = x.double().numpy(), offset.double().numpy(), weight.double().numpy()
    b, c, h, w = x.shape
    out_ch, cpg, kh, kw = weight.shape
    groups, dgroups = c // cpg, offset.shape[1] // (2 * kh * kw)
    ho, wo = offset.shape[2:]

    def bilinear(img, y, x_):
        if not (-1 < y < h and -1 < x_ < w):
            return 0.0
        y0, x0 = math.floor(y), math.floor(x_)
        total = 0.0
        for yy, xx in ((y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)):
            if 0 <= yy < h and 0 <= xx < w:
                total += (1 - abs(y - yy)) * (1 - abs(x_ - xx)) * img[yy, xx]
        return total

    out = np.zeros((b, out_ch, ho, wo))
    for n in range(b):
        for o in range(out_ch):
            g = o // (out_ch // groups)
            for oy in range(ho):
                for ox in range(wo):
                    acc = 0.0
                    for ci in range(cpg):
                        ch = g * cpg + ci
                        dg = ch // (c // dgroups)
                        for i in range(kh):
                            for j in range(kw):
                                k = i * kw + j
                                dy = offset[n, dg * 2 * kh * kw + 2 * k, oy, ox]
                                dx = offset[n, dg * 2 * kh * kw + 2 * k + 1, oy, ox]
                                v = bilinear(x[n, ch], oy * stride - padding + i * dilation + dy,
                                             ox * stride - padding + j * dilation + dx)
                                if mask is not None:
                                    v *= mask[n, dg * kh * kw + k, oy, ox].item()
                                acc += weight[o, ci, i, j] * v
                    out[n, o, oy, ox] = acc
    return torch.from_numpy(out)


DEFORM_CASES = [  # (channels, out, groups, offset groups, H, W, stride, padding, dilation, offset std, mask)
    (8, 8, 2, 4, 5, 6, 1, 1, 1, 2.0, False),  # TemCoCo's shape of use, scaled down
    (4, 6, 1, 2, 6, 5, 2, 2, 2, 3.0, True),
]


@pytest.mark.parametrize("case", DEFORM_CASES)
def test_pure_torch_deform_conv_matches_the_per_pixel_definition(case):
    c, out_ch, groups, dgroups, h, w, stride, padding, dilation, std, with_mask = case
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, c, h, w, generator=gen, dtype=torch.float64)
    weight = torch.randn(out_ch, c // groups, 3, 3, generator=gen, dtype=torch.float64)
    ho = (h + 2 * padding - dilation * 2 - 1) // stride + 1
    wo = (w + 2 * padding - dilation * 2 - 1) // stride + 1
    offset = torch.randn(2, dgroups * 18, ho, wo, generator=gen, dtype=torch.float64) * std
    offset[:, ::7] = offset[:, ::7].round()  # integer displacements: corners exactly on the border
    mask = torch.rand(2, dgroups * 9, ho, wo, generator=gen, dtype=torch.float64) if with_mask else None
    ours = deform.deform_conv2d_torch(x, offset, weight, None, stride, padding, dilation, mask)
    reference = _deform_loop(x, offset, weight, stride, padding, dilation, mask)
    assert (ours - reference).abs().max() < 1e-12
    assert ours.abs().max() > 1  # the samples are not all zero


def test_deform_conv_dispatch_matches_torchvision_when_installed():
    if not deform.HAVE_TORCHVISION:
        pytest.skip("torchvision is not installed: the pure-torch path is used (and tested above)")
    from torchvision.ops import deform_conv2d

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 32, 9, 13, generator=gen, dtype=torch.float64)
    weight = torch.randn(32, 8, 3, 3, generator=gen, dtype=torch.float64)
    offset = torch.randn(1, 144, 9, 13, generator=gen, dtype=torch.float64) * 3
    expected = deform_conv2d(x, offset, weight, padding=1)
    assert (deform.deform_conv2d_torch(x, offset, weight, padding=1) - expected).abs().max() < 1e-12


def test_gpu_matches_the_golden_and_the_cpu_deform_conv(small):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    net, io, _ = small
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # TF32 is not float32
    try:
        gpu = Fusion().cuda().eval()
        gpu.load_state_dict(net.state_dict())
        with torch.no_grad():
            fused = gpu(io["in.ir"].cuda(), io["in.vis"].cuda())[0].cpu()
        gen = torch.Generator().manual_seed(2)
        x = torch.randn(1, 16, 7, 9, generator=gen, dtype=torch.float64)
        weight = torch.randn(16, 8, 3, 3, generator=gen, dtype=torch.float64)
        offset = torch.randn(1, 36, 7, 9, generator=gen, dtype=torch.float64) * 3
        on_cpu = deform.deform_conv2d_torch(x, offset, weight, padding=1)
        on_gpu = deform.deform_conv2d_torch(x.cuda(), offset.cuda(), weight.cuda(), padding=1).cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    assert (fused - io["out.fused"]).abs().max() < 1e-5
    assert (on_gpu - on_cpu).abs().max() < 1e-12


# -- 3. windowing and the method ------------------------------------------------------------------------------------
def _tiles(windows, n):
    kept = [f for wd in windows for f in range(wd.keep_start, wd.keep_stop)]
    inside = all(wd.start <= wd.keep_start <= wd.keep_stop <= wd.stop for wd in windows)
    return kept == list(range(n)) and inside


def test_official_windows_reproduce_test_folder_clips():
    windows = official_windows(205)  # 205 frames tile exactly into 8 clips of 30, stride 25
    assert [(wd.start, wd.stop) for wd in windows] == [(25 * k, 25 * k + 30) for k in range(8)]
    assert windows[-1].keep_stop == 205 and windows[0].keep_stop == 25  # a later clip wins the overlap
    tail = official_windows(200)  # 7 full clips, then one holding only the last (200 − 5) mod 25 = 20 frames
    assert [(wd.start, wd.stop) for wd in tail] == [(25 * k, 25 * k + 30) for k in range(7)] + [(180, 200)]
    assert official_windows(20) == [type(windows[0])(0, 20, 0, 20)]
    assert all(_tiles(official_windows(n), n) for n in range(1, 130))


def test_default_plan_is_end_aligned_30_5():
    method = TemCoCo.__new__(TemCoCo)
    method.config = dict(TemCoCo.options)
    assert method.plan(200) == plan_windows(200, 30, 5)
    assert (method.plan(200)[-1].start, method.plan(200)[-1].stop) == (170, 200)
    method.config.update(window=4, overlap=1)
    assert method.plan(10) == plan_windows(10, 4, 1) and _tiles(method.plan(10), 10)


def test_missing_or_wrong_weights_give_one_line(tmp_path):
    with pytest.raises(MethodError, match=f"{CHECKPOINT} is not in the weights cache and M3SVD_OFFLINE=1.*"
                                          f"{CHECKPOINT_URL}.*--weights PATH") as error:
        TemCoCo()
    assert "\n" not in str(error.value)
    with pytest.raises(MethodError, match=f"weights file not found.*{CHECKPOINT}"):
        TemCoCo(weights=tmp_path / "absent.pth")
    torch.save({"params": {"conv.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(MethodError, match="not TemCoCo weights: missing key"):
        TemCoCo(weights=tmp_path / "other.pth")
    with pytest.raises(MethodError, match="overlap < window"):
        TemCoCo(weights=tmp_path / "other.pth", window=4, overlap=4)


def test_method_fuse_reproduces_the_official_saved_frames(small):
    """uint8 RGB in → the golden frames ``test_folder.py`` saves (BGR there), and padding to 16 is cropped back."""
    net, io, weights = small
    method = TemCoCo(weights=weights)
    ir = (io["in.ir"][0, :, 0] * 255).round().to(torch.uint8).numpy()
    vi = (io["in.vis"][0].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    assert torch.equal(torch.from_numpy(ir).float().div(255)[None, :, None].expand(-1, -1, 3, -1, -1), io["in.ir"])
    assert torch.equal(torch.from_numpy(vi).permute(0, 3, 1, 2).float().div(255)[None], io["in.vis"])
    fused = method.fuse(ir, vi).fused
    assert fused.shape == (4, 32, 48, 3) and fused.dtype == np.uint8
    assert np.abs(fused.astype(int) - io["saved_bgr_u8.fused"].numpy()[..., ::-1]).max() <= 1
    cropped = method.fuse(ir[:2, :30, :45], vi[:2, :30, :45]).fused
    assert cropped.shape == (2, 30, 45, 3)
    # reflection-padded to 32×48, fused, cropped back
    pad = (0, 3, 0, 2)
    padded = [torch.nn.functional.pad(x[:, :2, :, :30, :45][0], pad, mode="reflect")[None] for x in (io["in.ir"],
                                                                                                    io["in.vis"])]
    with torch.no_grad():
        expected = net(*padded)[0][0, :, :, :30, :45].clamp(0, 1).mul(255).round().permute(1, 2, 3, 0)
    assert np.array_equal(cropped, expected.to(torch.uint8).numpy())


def test_evaluate_end_to_end_with_weights_the_test_makes(tmp_path):
    from synthetic import make_m3svd, protocol_file

    from m3svd import protocols
    from m3svd.evaluate import MethodSpec, evaluate

    make_m3svd(tmp_path / "data", clips=("0111_1716",), n=5, h=40, w=56)  # padded to 48×64 inside
    protocol_path = protocol_file(tmp_path / "short.toml", folders=["data"], frames="all", variant="degraded",
                                  image=["en", "ssim"])
    torch.manual_seed(0)
    weights = tmp_path / "temcoco-random.pth"
    torch.save(Fusion().state_dict(), weights)
    spec = MethodSpec("temcoco", weights=str(weights), options=(("overlap", 1), ("window", 3)))
    run = evaluate(protocols.load(protocol_path), tmp_path / "out", method=spec, root=tmp_path / "data")
    assert len(sorted((tmp_path / "out" / "fused" / "0111_1716").glob("*.png"))) == 5
    table = run.results
    assert set(table["metric"]) == {"en", "ssim"} and sorted(set(table["frame"])) == list(range(5))
    assert len(table) == 10 and (table["method"] == "temcoco").all()
    assert (table["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()).all()
    options = json.loads(table["method_options"].iloc[0])
    assert options == {"overlap": 1, "window": 3, "windowing": "end-aligned"}


# -- 4. training ----------------------------------------------------------------------------------------------------
def _fixed_sample_crop():
    """Frames 8–11 of the built-in sample, one 32×32 crop: a one-item dataset, so every iteration sees one batch."""
    from m3svd.data import open_dataset
    from m3svd.data.clip import Clip
    from m3svd.data.frames import ArrayFrames
    from m3svd.data.layouts import ClipSet

    sample = open_dataset("sample")
    clean = sample.select(variant="clean")[0]
    ir, vi = clean.frames(8, 12)
    crop = (slice(None), slice(100, 132), slice(140, 172))
    clip = Clip("sample-crop", ArrayFrames(np.ascontiguousarray(ir[crop])), ArrayFrames(np.ascontiguousarray(vi[crop])),
                variant="clean", layout="sample")
    return ClipSet(sample.root, "sample", [clip])


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_training_loss_falls_and_resume_continues_from_the_checkpoint(tmp_path):
    from m3svd.methods.temcoco import train as tr

    data, out = _fixed_sample_crop(), tmp_path / "run"
    kwargs = dict(clip_frames=4, patch=32, lr=2e-4, progress=False, save_every=3)
    tr.train(data, out, iterations=5, **kwargs)
    first = _log(out)
    losses = [row["loss"] for row in first]
    assert len(losses) == 5 and all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses  # one batch
    assert losses[-1] < 0.99 * losses[0], losses
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] == 5

    # resuming to 6 iterations runs only the 6th, from the saved weights and optimiser
    state = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    net = Fusion()
    net.load_state_dict(state)
    batch = tr._batch(tr.build_dataset(data, "train", 4, 32, 0, "temcoco")[0], 5, 1, 0, "cpu")
    with torch.no_grad():
        fused = net(batch["ir"].expand(-1, -1, 3, -1, -1), batch["vi"])[0]
    expected = sum(tr.WEIGHTS[k] * v for k, v in tr.fusion_losses(fused.transpose(1, 2), batch["vi_ref"],
                                                                     batch["ir_ref"]).items()).item()
    weights = tr.train(data, out, iterations=6, **kwargs)
    resumed = _log(out)
    assert resumed[:5] == first and [row["iteration"] for row in resumed] == [1, 2, 3, 4, 5, 6]
    assert resumed[5]["loss"] == pytest.approx(expected, rel=1e-5)
    assert json.loads((out / "temcoco.json").read_text())["iterations"] == 6
    with pytest.raises(MethodError, match="checkpoint was trained with patch=32, not 48"):
        tr.train(data, out, iterations=7, **{**kwargs, "patch": 48})
    assert TemCoCo(weights=weights).identity()["weights"] == "temcoco.pth"  # loads strictly as a method


def test_training_runs_on_the_builtin_sample(tmp_path):
    from m3svd.methods.temcoco.train import train

    weights = train("sample", tmp_path, iterations=1, progress=False)
    row = _log(tmp_path)[0]
    assert row["iteration"] == 1 and math.isfinite(row["loss"]) and row["lr"] == 5e-4
    assert {"ssim", "intensity", "pixel", "colour", "gradient", "temporal"} <= set(row)
    assert set(torch.load(weights, weights_only=True)) == set(Fusion().state_dict())


def test_distillation_names_every_missing_backbone(tmp_path):
    from m3svd.methods.temcoco.train import DINOV2_URL, VGG19_URL, train

    with pytest.raises(MethodError, match=f"DINOv2 ViT-L/14.*{DINOV2_URL}.*VGG19.*{VGG19_URL}"):
        train("sample", tmp_path, iterations=1, distill=True, progress=False)
    with pytest.raises(MethodError, match="no hubconf.py, not a dinov2 clone.*absent.pth: VGG19 weights not found"):
        train("sample", tmp_path, iterations=1, distill=True, dinov2=tmp_path, vgg19=tmp_path / "absent.pth",
              progress=False)


def test_trains_on_a_layout_without_splits(tmp_path, tno):
    """TNO has no train/test split: every clip trains."""
    from m3svd.methods.temcoco.train import train

    weights = train(tno, tmp_path, iterations=1, patch=32, progress=False)
    assert _log(tmp_path)[0]["iteration"] == 1
    assert TemCoCo(weights=weights).weights_sha256
