"""TemCoCo's training recipe: losses, optimiser and schedule as the released ``train.py`` really runs.

- Data: windows of ``clip_frames`` consecutive frames with one random ``patch``×``patch`` crop shared by all frames
  and both modalities, no augmentation. Inputs are the clean clips degraded by :mod:`m3svd.data.degrade` with
  TemCoCo's parameters (``degradation="temcoco"``, seeded per clip) or the dataset's own degraded variant
  (``"dataset"``); targets are the clean frames.
- Loss: 1·SSIM + 10·intensity-max + 1·pixel + 20·colour + 10·gradient + 2·temporal, plus with ``distill`` the
  DINOv2 ViT-L/14 semantic terms (IR and VIS) and the VGG19 relu3_1 visual term (VIS only: the IR term is a
  no-op line in the released code). Teachers see the raw [0, 1] clean frames, unnormalised, as released.
- Adam, lr 5e-4, betas (0.9, 0.999); lr ×0.95 every 200 iterations (the yml's AdamW/cosine are not used);
  gradient-norm clipping 1.0; a checkpoint every ``save_every`` iterations (1000 as released).
- ``config="full"``: the released recipe (10 frames, 224 crops; batch 3 per GPU there, pass ``batch_size=3``).
  ``config="small"``: the same network and losses on 4-frame 32×32 windows, for CPU smoke runs.

Determinism: the network is initialised from ``seed``; iteration ``i`` always trains on the same items
(flat index ``i·batch + j`` over per-epoch permutations drawn from ``(seed, epoch)``, crops from the dataset's
``(seed, epoch, index)``), so a resumed run continues exactly where the checkpoint left off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from m3svd.files import atomic_json
from m3svd.methods.base import MethodError
from m3svd.methods.losses import colour_loss, max_gradient_loss, max_intensity_loss, sobel, ycbcr
from m3svd.methods.nets import TrainingLog, atomic_save, optimise, resume_state

CONFIGS = {
    "full": {"clip_frames": 10, "patch": 224},
    "small": {"clip_frames": 4, "patch": 32},
}
WEIGHTS = {"ssim": 1.0, "intensity": 10.0, "pixel": 1.0, "colour": 20.0, "gradient": 10.0, "temporal": 2.0,
           "semantic": 1.0, "visual": 1.0}
LR, LR_GAMMA, LR_STEP, CLIP_NORM = 5e-4, 0.95, 200, 1.0
DINOV2_WEIGHTS = "dinov2_vitl14_pretrain.pth"
DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth"
VGG19_WEIGHTS = "vgg19-dcbb9e9d.pth"
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
CHECKPOINT = "checkpoint.pt"


# -- losses -----------------------------------------------------------------------------------------------
def _gaussian_window(size: int, sigma: float, dtype, device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(target: torch.Tensor, x: torch.Tensor, window: int = 13, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM without padding; the dynamic range L is read from ``target`` (255 or 1, −1 offset), as released.

    The same formula as :func:`m3svd.methods.losses.ssim`, kept apart on purpose: it squares by multiplication, and
    autograd then sums the gradients in another order (last-bit differences), so sharing it would change training.
    """
    high = 255.0 if target.max() > 128 else 1.0
    low = -1.0 if target.min() < -0.5 else 0.0
    c1, c2 = (0.01 * (high - low)) ** 2, (0.03 * (high - low)) ** 2
    w = _gaussian_window(window, sigma, x.dtype, x.device).expand(x.shape[1], 1, window, window)

    def blur(z):
        return F.conv2d(z, w, groups=x.shape[1])

    mu1, mu2 = blur(target), blur(x)
    s11 = blur(target * target) - mu1 * mu1
    s22 = blur(x * x) - mu2 * mu2
    s12 = blur(target * x) - mu1 * mu2
    value = ((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (s11 + s22 + c2))
    return value.mean()


def temporal_loss(y_f: torch.Tensor, y_ir: torch.Tensor) -> torch.Tensor:
    """``cos_consist``: 1 − cosine between the fused and clean-IR frame differences, over all pixels, mean over t."""
    if y_f.shape[1] < 2:
        return y_f.new_zeros(())
    d_f = (y_f[:, 1:] - y_f[:, :-1]).flatten(2)
    d_ir = (y_ir[:, 1:] - y_ir[:, :-1]).flatten(2)
    return (1 - F.cosine_similarity(d_f, d_ir, dim=2)).mean()


def fusion_losses(fused: torch.Tensor, vi: torch.Tensor, ir: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spatial and temporal terms (unweighted). ``fused``, ``vi`` ``(B, T, 3, H, W)``; ``ir`` ``(B, T, 1, H, W)``."""
    b, t = fused.shape[:2]
    y_f, cb_f, cr_f = ycbcr(fused.flatten(0, 1))
    y_vi, cb_vi, cr_vi = ycbcr(vi.flatten(0, 1))
    y_ir = ir.flatten(0, 1)
    sobel_f, sobel_vi, sobel_ir = sobel(y_f), sobel(y_vi), sobel(y_ir)
    return {
        "ssim": (1 - ssim(y_vi, y_f)) + (1 - ssim(y_ir, y_f)),
        "intensity": max_intensity_loss(y_f, y_vi, y_ir),
        "pixel": F.l1_loss(y_f, y_vi) + F.l1_loss(y_f, y_ir),
        "colour": colour_loss(cb_f, cr_f, cb_vi, cr_vi),
        "gradient": max_gradient_loss(sobel_f, sobel_vi, sobel_ir),
        "temporal": temporal_loss(y_f.view(b, t, -1), y_ir.view(b, t, -1)),
    }


# -- teachers -----------------------------------------------------------------------------------------------
class VGG19Relu31(nn.Module):
    """torchvision ``vgg19().features[:12]`` (conv1_1 … relu3_1), same indices, so its state dict loads."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for item in (64, 64, "M", 128, 128, "M", 256):
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                cin = int(item)
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        return self.features(x)


def load_vgg19(path) -> nn.Module:
    if isinstance(path, nn.Module):
        return path
    if path is None:  # torchvision's file from the weights registry, downloaded and verified on first use
        from m3svd.methods.nets import registry_weights

        path = registry_weights("vgg19")[0]
    path = Path(path)
    if not path.is_file():
        raise MethodError(f"{path}: VGG19 weights not found (expected torchvision's {VGG19_WEIGHTS}, {VGG19_URL})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = VGG19Relu31()
    wanted = net.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise MethodError(f"{path}: not torchvision VGG19 weights: missing {missing[0]!r} of shape "
                          f"{tuple(wanted[missing[0]].shape)}")
    net.load_state_dict({k: state[k] for k in wanted}, strict=True)
    return net


def load_dinov2(path) -> nn.Module:
    """DINOv2 ViT-L/14 from a local clone of facebookresearch/dinov2 (``torch.hub`` ``source="local"``)."""
    if isinstance(path, nn.Module):
        return path
    where = (f"pass dinov2=DIR, a local clone of https://github.com/facebookresearch/dinov2 holding {DINOV2_WEIGHTS} "
             f"({DINOV2_URL})")
    if path is None:
        raise MethodError(f"distillation needs DINOv2 ViT-L/14: {where}, or train with distill=False")
    repo = Path(path)
    if not (repo / "hubconf.py").is_file():
        raise MethodError(f"{repo}: no hubconf.py, not a dinov2 clone; {where}")
    weights = repo / DINOV2_WEIGHTS
    if not weights.is_file():  # the weights registry's (torch's hub cache or the weights cache; verified)
        from m3svd.methods.nets import registry_weights

        weights = registry_weights("dinov2-vitl14")[0]
    net = torch.hub.load(str(repo), "dinov2_vitl14", source="local", pretrained=False)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return net


class Teachers(nn.Module):
    """Frozen DINOv2 and VGG19 giving the distillation targets for clean ``(N, 3, H, W)`` frames."""

    def __init__(self, dinov2: nn.Module, vgg19: nn.Module):
        super().__init__()
        self.dinov2, self.vgg19 = dinov2.eval().requires_grad_(False), vgg19.eval().requires_grad_(False)

    @torch.no_grad()
    def semantic(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``(N, 1024, H/16, W/16)`` of ``x`` resized to ``(H//16·14, W//16·14)`` (224 → 196 → 14×14)."""
        gh, gw = x.shape[-2] // 16, x.shape[-1] // 16
        resized = F.interpolate(x, size=(gh * 14, gw * 14), mode="bilinear", align_corners=False)
        tokens = self.dinov2.forward_features(resized)["x_norm_patchtokens"]
        return tokens.reshape(x.shape[0], gh, gw, -1).permute(0, 3, 1, 2)

    @torch.no_grad()
    def visual(self, x: torch.Tensor) -> torch.Tensor:
        return self.vgg19(x)


def load_teachers(dinov2, vgg19) -> Teachers:
    """Both distillation backbones, or one line naming every one that is missing and where to get it."""
    loaded, problems = [], []
    for loader, where in ((load_dinov2, dinov2), (load_vgg19, vgg19)):
        try:
            loaded.append(loader(where))
        except MethodError as error:
            problems.append(str(error))
    if problems:
        raise MethodError("; ".join(problems))
    return Teachers(*loaded)


def distill_losses(teachers: Teachers, ir_feat, vi_feat, ir_ref, vi_ref) -> dict[str, torch.Tensor]:
    """Semantic MSE for both modalities and visual MSE for VIS only (the released ``train.py``)."""
    ir3 = ir_ref.flatten(0, 1).expand(-1, 3, -1, -1)
    vi = vi_ref.flatten(0, 1)
    b, t = vi_ref.shape[:2]
    vis_student = vi_feat[1].transpose(1, 2).flatten(0, 1)  # (B, 256, T, h, w) → (B·T, 256, h, w)
    return {
        "semantic": F.mse_loss(vi_feat[0], teachers.semantic(vi)) + F.mse_loss(ir_feat[0], teachers.semantic(ir3)),
        "visual": F.mse_loss(vis_student, teachers.visual(vi)),
    }


# -- data -----------------------------------------------------------------------------------------------------
def build_dataset(root, split, clip_frames: int, patch: int | None, seed: int, degradation: str):
    """``(dataset, split used)``: clean clips degraded as TemCoCo's scripts do, or the dataset's own degraded
    variant (``degradation="dataset"``)."""
    from m3svd.data import M3SVD
    from m3svd.data.degrade import TEMCOCO, training_clips

    if degradation not in ("temcoco", "dataset"):
        raise MethodError(f"degradation must be 'temcoco' or 'dataset', found {degradation!r}")
    clips, split = training_clips(root, split, TEMCOCO if degradation == "temcoco" else None, seed)
    return M3SVD(clips, split=split, variant="degraded", frames=clip_frames, crop=patch, seed=seed), split


def _batch(dataset, iteration: int, batch_size: int, seed: int, device) -> dict[str, torch.Tensor]:
    n = len(dataset)
    items = []
    for flat in range(iteration * batch_size, (iteration + 1) * batch_size):
        epoch, pos = divmod(flat, n)
        dataset.set_epoch(epoch)
        items.append(dataset[int(np.random.default_rng([seed, epoch]).permutation(n)[pos])])
    return {k: torch.stack([it[k] for it in items]).to(device) for k in ("ir", "vi", "ir_ref", "vi_ref")}


# -- checkpoints ----------------------------------------------------------------------------------------------
def train(root, out, *, split: str = "train", iterations: int, batch_size: int = 1, clip_frames: int | None = None,
          patch: int | None = None, seed: int = 0, resume: bool = True, device: str = "cpu", config: str = "small",
          distill: bool = False, dinov2=None, vgg19=None, progress: bool = True, save_every: int = 1000,
          degradation: str = "temcoco", lr: float = LR) -> Path:
    """Train TemCoCo from scratch (or resume ``out/checkpoint.pt``); returns the final plain state dict ``.pth``.

    ``dinov2``/``vgg19``: local paths (a dinov2 clone directory; torchvision's VGG19 ``.pth``) or modules, needed
    only with ``distill=True``. ``lr`` is the released 5e-4; smaller values are for smoke tests only (from a random
    initialisation the output is negative, the clamped-Y losses give no gradient, and the first 5e-4 steps
    oscillate). Per-iteration losses go to ``out/train_log.jsonl``; ``out/temcoco.json`` labels the weights with
    their recipe and data.
    """
    from m3svd.methods.temcoco.arch import SIZE_MULTIPLE, Fusion

    if config not in CONFIGS:
        raise MethodError(f"config must be one of {', '.join(CONFIGS)}, found {config!r}")
    clip_frames = int(clip_frames or CONFIGS[config]["clip_frames"])
    patch = int(patch or CONFIGS[config]["patch"])
    if patch % SIZE_MULTIPLE:
        raise MethodError(f"patch must be a multiple of {SIZE_MULTIPLE} (the semantic branch), found {patch}")
    if iterations < 1 or batch_size < 1 or save_every < 1:
        raise MethodError("iterations, batch_size and save_every must be positive")
    teachers = load_teachers(dinov2, vgg19).to(device) if distill else None

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset, split = build_dataset(root, split, clip_frames, patch, seed, degradation)
    recipe = {"config": config, "clip_frames": clip_frames, "patch": patch, "batch_size": batch_size, "seed": seed,
              "distill": bool(distill), "degradation": degradation, "split": split, "root": str(root), "lr": lr}

    torch.manual_seed(seed)
    net = Fusion().to(device).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, step_size=LR_STEP, gamma=LR_GAMMA)
    start = 0
    ckpt_path = out / CHECKPOINT
    if resume and (state := resume_state(ckpt_path, recipe, device)) is not None:
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        start = int(state["iteration"])

    def save(iteration: int) -> None:
        atomic_save({"model": net.state_dict(), "optimizer": optimiser.state_dict(),
                      "scheduler": schedule.state_dict(), "iteration": iteration, "recipe": recipe}, ckpt_path)

    log = TrainingLog(out, start, iterations, "temcoco train", progress)
    for iteration in range(start, iterations):
        batch = _batch(dataset, iteration, batch_size, seed, device)
        fused, ir_feat, vi_feat = net(batch["ir"].expand(-1, -1, 3, -1, -1), batch["vi"])
        terms = fusion_losses(fused.transpose(1, 2), batch["vi_ref"], batch["ir_ref"])
        if teachers is not None:
            terms.update(distill_losses(teachers, ir_feat, vi_feat, batch["ir_ref"], batch["vi_ref"]))
        loss = sum(WEIGHTS[k] * v for k, v in terms.items())
        optimise(loss, optimiser, "temcoco", iteration, CLIP_NORM, net.parameters())
        schedule.step()
        log.record({"iteration": iteration + 1, "loss": loss.item(), "lr": schedule.get_last_lr()[0],
                    **{k: v.item() for k, v in terms.items()}})
        if (iteration + 1) % save_every == 0 or iteration + 1 == iterations:
            save(iteration + 1)
    log.close()

    weights = out / "temcoco.pth"
    atomic_save(net.state_dict(), weights)
    label = {"method": "temcoco", "trained_by": "m3svd toolkit recipe (not the authors' checkpoint)",
             "iterations": max(start, iterations), **recipe, "final": log.last or None,
             "schedule": f"Adam lr {lr}, x{LR_GAMMA} every {LR_STEP} iterations, grad-norm clip {CLIP_NORM}"}
    atomic_json(out / "temcoco.json", label)
    return weights
