"""VideoFusion's training recipe: the released ``train_VideoFusion.yml`` and losses, as the code runs them.

- Data: windows of ``clip_frames`` consecutive frames starting at every frame index (one sample per start), one
  random ``patch``×``patch`` crop shared by all frames and all four streams, no augmentation (the released
  ``augment`` call is commented out). Inputs are the clean clips degraded by :mod:`m3svd.data.degrade`
  (``degradation="m3svd"``: the measured M3SVD-like stripes/noise and blur, default; ``"temcoco"``), or the
  dataset's own degraded variant (``"dataset"``, what the authors trained on); targets are the clean frames.
  The official loader redraws a start when fewer than ``clip_frames`` frames remain; here only full windows exist.
- Loss: L_fusion(F, IR, VI) + L_fid(IR_rec, IR) + L_fid(VI_rec, VI) + 10·Σ L_var over (IR_rec, IR), (VI_rec, VI),
  (F, IR), (F, VI), with the released weights (:data:`FUSION_WEIGHTS`).
- AdamW (lr 1e-4, weight decay 1e-5, betas 0.9/0.999); BasicSR's linear warm-up over 5000 iterations, then cosine
  annealing over a 500 000-iteration period to 1e-6, set per iteration (a pure function of the iteration, so a
  resumed run continues exactly); gradient-norm clipping at 0.01 as released; float32.
- ``config="full"``: the released network, 6-frame 128×128 clips, 3 clips per process (the authors ran 4 GPUs
  under ``torchrun``: 12 clips per step). ``config="small"``: the 16-feature network on 4-frame 32×32 clips, one
  per step, without warm-up, for CPU smoke runs.

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) each process joins the process group, trains its own share
of every global batch through DistributedDataParallel, and rank 0 alone writes checkpoints and logs (its own
share's loss).
Determinism: the network is initialised from ``seed``; iteration ``i`` always sees the same items (flat index over
per-epoch permutations drawn from ``(seed, epoch)``; crops from the dataset's ``(seed, epoch, index)``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from m3svd.files import atomic_json
from m3svd.methods.base import MethodError
from m3svd.methods.losses import colour_loss, max_gradient_loss, max_intensity_loss, sobel, ssim, ycbcr
from m3svd.methods.nets import TrainingLog, atomic_save, optimise, resume_state

CONFIGS = {
    "full": {"clip_frames": 6, "patch": 128, "warmup": 5000, "batch_size": 3},  # batch per process (GPU)
    "small": {"clip_frames": 4, "patch": 32, "warmup": 0, "batch_size": 1},
}
LR, WEIGHT_DECAY, ETA_MIN, PERIOD, CLIP_NORM = 1e-4, 1e-5, 1e-6, 500_000, 0.01
FUSION_WEIGHTS = {"int": 15.0, "consist": 1.0, "ir_compose": 0.8, "color": 100.0, "grad": 1.0}
FIDELITY_WEIGHT, VARIATION_WEIGHT = 10.0, 10.0
DEGRADATIONS = ("m3svd", "temcoco", "dataset")
CHECKPOINT = "checkpoint.pt"


# -- losses -------------------------------------------------------------------------------------------------------
def fusion_loss(fused: torch.Tensor, ir: torch.Tensor, vi: torch.Tensor) -> torch.Tensor:
    """``Fusion_loss`` on ``(N, 3, H, W)``: SSIM + intensity + consistency + colour + gradient terms."""
    w = FUSION_WEIGHTS
    y_f, cb_f, cr_f = ycbcr(fused)
    y_vi, cb_vi, cr_vi = ycbcr(vi)
    y_ir = ycbcr(ir)[0]
    sobel_f, sobel_vi, sobel_ir = sobel(y_f), sobel(y_vi), sobel(y_ir)
    return ((1 - ssim(vi, fused)) + (1 - ssim(y_ir, y_f))
            + w["int"] * max_intensity_loss(y_f, y_vi, y_ir)
            + w["consist"] * (F.l1_loss(y_vi, y_f) + w["ir_compose"] * F.l1_loss(y_ir, y_f))
            + w["color"] * colour_loss(cb_f, cr_f, cb_vi, cr_vi)
            + w["grad"] * max_gradient_loss(sobel_f, sobel_vi, sobel_ir))


def fidelity_loss(restored: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """10·L1 on RGB + 10·L1 on the Sobel magnitudes of luminance, ``(N, 3, H, W)``."""
    gx_r, gy_r = sobel(ycbcr(restored)[0])
    gx_t, gy_t = sobel(ycbcr(reference)[0])
    return FIDELITY_WEIGHT * (F.l1_loss(restored, reference) + F.l1_loss(gx_r, gx_t) + F.l1_loss(gy_r, gy_t))


def variation_loss(video: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """L_var: L1 between the frame differences of ``(B, T, C, H, W)`` videos."""
    return F.l1_loss(video[:, 1:] - video[:, :-1], reference[:, 1:] - reference[:, :-1])


def losses(out: dict, ir_ref: torch.Tensor, vi_ref: torch.Tensor) -> dict[str, torch.Tensor]:
    """The released total, by term. ``out`` from the network; references ``(B, T, 3, H, W)`` (IR as 3 channels)."""
    flat = {k: v.flatten(0, 1) for k, v in out.items()}
    ir, vi = ir_ref.flatten(0, 1), vi_ref.flatten(0, 1)
    variation = sum(variation_loss(a, b) for a, b in ((out["ir"], ir_ref), (out["vi"], vi_ref),
                                                      (out["fusion"], ir_ref), (out["fusion"], vi_ref)))
    return {"fusion": fusion_loss(flat["fusion"], ir, vi), "fidelity_ir": fidelity_loss(flat["ir"], ir),
            "fidelity_vi": fidelity_loss(flat["vi"], vi), "variation": VARIATION_WEIGHT * variation}


def learning_rate(iteration: int, warmup: int, base: float = LR) -> float:
    """BasicSR's schedule at 1-based ``iteration``: linear warm-up, then the cosine (its scheduler one step behind)."""
    if iteration < warmup:
        return base * iteration / warmup
    return ETA_MIN + 0.5 * (base - ETA_MIN) * (1 + math.cos(math.pi * ((iteration - 1) % PERIOD) / PERIOD))


# -- data -----------------------------------------------------------------------------------------------------------
def build_dataset(root, split, clip_frames: int, patch: int, seed: int, degradation: str):
    """``(dataset, split used)``: clean clips degraded with the toolkit's M3SVD-like or TemCoCo parameters, or the
    dataset's own degraded variant (``degradation="dataset"``)."""
    from m3svd.data import M3SVD
    from m3svd.data.degrade import TEMCOCO, DegradationParams, training_clips

    if degradation not in DEGRADATIONS:
        raise MethodError(f"degradation must be one of {', '.join(DEGRADATIONS)}, found {degradation!r}")
    params = {"m3svd": DegradationParams(), "temcoco": TEMCOCO, "dataset": None}[degradation]
    clips, split = training_clips(root, split, params, seed)
    dataset = M3SVD(clips, split=split, variant="degraded", frames=clip_frames, stride=1, crop=patch,
                    seed=seed)
    return dataset, split


def batch(dataset, iteration: int, batch_size: int, seed: int, device, rank: int = 0, world: int = 1) -> dict:
    """This rank's share of global batch ``iteration`` (0-based): IR tensors expanded to 3 channels."""
    n = len(dataset)
    items = []
    first = (iteration * world + rank) * batch_size
    for flat in range(first, first + batch_size):
        epoch, pos = divmod(flat, n)
        dataset.set_epoch(epoch)
        items.append(dataset[int(np.random.default_rng([seed, epoch]).permutation(n)[pos])])
    out = {k: torch.stack([it[k] for it in items]).to(device) for k in ("ir", "vi", "ir_ref", "vi_ref")}
    out["ir"], out["ir_ref"] = (out[k].expand(-1, -1, 3, -1, -1) for k in ("ir", "ir_ref"))
    return out


def initial_network(config: str, seed: int):
    """The network every run of ``(config, seed)`` starts from."""
    from m3svd.methods.videofusion.arch import build

    torch.manual_seed(seed)
    return build(config)


# -- the loop -------------------------------------------------------------------------------------------------------
def _distributed(device: str):
    """``(rank, world, device)``; joins the process group only under a multi-process launcher."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, device
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if str(device).startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if str(device).startswith("cuda") else "gloo")
    return dist.get_rank(), world, device


def train(root, out, *, split: str = "train", iterations: int, seed: int = 0, resume: bool = True,
          device: str = "cpu", config: str = "full", progress: bool = True, batch_size: int | None = None,
          clip_frames: int | None = None, patch: int | None = None, degradation: str = "m3svd",
          save_every: int = 5000, lr: float = LR) -> Path:
    """Train VideoFusion from scratch (or resume ``out/checkpoint.pt``); returns ``out/videofusion.pth``.

    The weights are saved as the official container ``{'params': state_dict}``, so the method loads them like the
    authors' file. Per-iteration losses go to ``out/train_log.jsonl``; ``out/videofusion.json`` labels the weights
    as toolkit-trained, with their recipe and data. ``lr`` replaces the released peak learning rate (1e-4), for
    short experiments only.
    """
    from m3svd.methods.videofusion.arch import SIZE_MULTIPLE

    if config not in CONFIGS:
        raise MethodError(f"config must be one of {', '.join(CONFIGS)}, found {config!r}")
    clip_frames = int(clip_frames or CONFIGS[config]["clip_frames"])
    patch = int(patch or CONFIGS[config]["patch"])
    warmup = CONFIGS[config]["warmup"]
    batch_size = int(batch_size or CONFIGS[config]["batch_size"])
    if patch % SIZE_MULTIPLE or clip_frames < 2:
        raise MethodError(f"patch must be a multiple of {SIZE_MULTIPLE} and clip_frames at least 2 (the temporal "
                          f"loss), found patch={patch}, clip_frames={clip_frames}")
    if iterations < 1 or batch_size < 1 or save_every < 1:
        raise MethodError("iterations, batch_size and save_every must be positive")
    rank, world, device = _distributed(device)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dataset, split = build_dataset(root, split, clip_frames, patch, seed, degradation)
    recipe = {"config": config, "clip_frames": clip_frames, "patch": patch, "batch_size": batch_size,
              "world_size": world, "lr": lr, "seed": seed, "degradation": degradation, "split": split,
              "root": str(root)}

    net = initial_network(config, seed).to(device).train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=WEIGHT_DECAY)
    start = 0
    ckpt_path = out / CHECKPOINT
    if resume and (state := resume_state(ckpt_path, recipe, device)) is not None:
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
    model = net
    if world > 1:
        ids = [torch.device(device).index] if str(device).startswith("cuda") else None
        # the unused attn.norm LayerNorms never get a gradient, so DDP must be told to expect unused parameters
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids, find_unused_parameters=True)

    log = TrainingLog(out, start, iterations, "videofusion train", progress, write=rank == 0)
    for iteration in range(start, iterations):
        rate = learning_rate(iteration + 1, warmup, lr)
        for group in optimiser.param_groups:
            group["lr"] = rate
        data = batch(dataset, iteration, batch_size, seed, device, rank, world)
        terms = losses(model(data["ir"], data["vi"]), data["ir_ref"], data["vi_ref"])
        loss = sum(terms.values())
        optimise(loss, optimiser, "videofusion", iteration, CLIP_NORM, net.parameters())
        log.record({"iteration": iteration + 1, "loss": loss.item(), "lr": rate,
                    **{k: v.item() for k, v in terms.items()}})
        if rank == 0:
            if (iteration + 1) % save_every == 0 or iteration + 1 == iterations:
                atomic_save({"model": net.state_dict(), "optimizer": optimiser.state_dict(),
                             "iteration": iteration + 1, "recipe": recipe}, ckpt_path)
    log.close()

    weights = out / "videofusion.pth"
    if rank == 0:
        atomic_save({"params": net.state_dict()}, weights)
        label = {"method": "videofusion", "trained_by": "m3svd toolkit recipe (not the authors' checkpoint)",
                 "iterations": iterations, **recipe, "final": log.last or None,
                 "schedule": f"AdamW lr {lr} wd {WEIGHT_DECAY}, warm-up {warmup}, cosine to {ETA_MIN} over "
                             f"{PERIOD}, grad-norm clip {CLIP_NORM}"}
        atomic_json(out / "videofusion.json", label)
    if world > 1:
        torch.distributed.barrier()
    return weights
