"""Training MKF, MagicFuse's only trained module, with the recipe the released ``train.py`` intends.

The released script does not run (missing ``model_noz0``, renamed sampler methods); this is its loop made to run:

- Frozen AE, IKR and CKG; per iteration one visible frame ``vis`` (the dataset's degraded visible stream, as the
  method sees it), one shared x_T and seg state, and a timestep ``select`` uniform over the 25 DDIM steps. The
  chain runs from 960 down to ``select`` without gradients except at that step, where it stops.
- The x̂0 of the IKR ("visible"), CKG ("infrared") and fused streams are decoded by the frozen decoder. Losses:
  ``6·L1(max(Y_ikr, Y_ckg), Y_f) + 10·L1(max(∇Y_ikr, ∇Y_ckg), ∇Y_f) + 5·L1(Cr_ikr, Cr_f) + 5·L1(Cb_ikr, Cb_f)``
  (∇ = |Sobel_x| + |Sobel_y|, zero padding) ``+ CE(seg_map, label)`` with the released class weights. The
  "infrared" reference is CKG's pseudo-IR: no real infrared frame is used.
- SGD lr 1e-3, momentum 0.9, weight decay 1e-4; lr halved every 10 epochs (epoch = one pass over the frames).
- Augmentation: horizontal flip (p 0.5) and a random ``patch`` crop, shared with the label; the released 10°
  rotation is left out (the reason: its zero fill invents "unlabelled" pixels), and labels are never resampled.

M3SVD has **no segmentation labels**: the semantic term needs ``labels=DIR`` holding ``<clip>/<frame:04d>.png``
class maps (values 0–8, MSRS classes) and is off otherwise, which the run's ``magicfuse.json`` records.
``config="full"`` needs ``weights=FOLDER`` with the authors' ``ae.pth``, ``ikr.pth``, ``ckg.pth`` (and trains a
fresh 96-channel MKF, 480×640 crops); ``config="small"`` uses the conformance goldens' small networks, seeded random
frozen U-Nets (and the AE from ``weights`` when given, else random), 64×64 crops: a CPU smoke run, not a model.

Determinism: iteration ``i`` draws its frame, flip, crop, timestep and noise from ``(seed, i)`` alone, so a resumed
run continues exactly; checkpoints are written atomically (``nets.atomic_save``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from m3svd.files import atomic_json
from m3svd.methods.base import MethodError
from m3svd.methods.nets import TrainingLog, atomic_save, optimise, resume_state

CONFIGS = {"full": {"patch": (480, 640)}, "small": {"patch": (64, 64)}}
LOSS_WEIGHTS = {"intensity": 6.0, "gradient": 10.0, "cr": 5.0, "cb": 5.0, "seg": 1.0}
CLASS_WEIGHTS = [0.4, 0.8, 1.0, 2.0, 4.0, 1.8, 1.8, 1.5, 1.5]
LR, MOMENTUM, WEIGHT_DECAY, LR_GAMMA, LR_EPOCHS = 1e-3, 0.9, 1e-4, 0.5, 10
CHECKPOINT = "checkpoint.pt"


# -- losses -----------------------------------------------------------------------------------------------------
def ycrcb(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``utils/loss.py``'s conversion: Y = .299R + .587G + .114B, Cr = (R − Y)·0.713 + 0.5, Cb = (B − Y)·0.564 + 0.5."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return y, (r - y) * 0.713 + 0.5, (b - y) * 0.564 + 0.5


def sobel(y: torch.Tensor) -> torch.Tensor:
    """``|Sobel_x| + |Sobel_y|`` of ``(N, 1, H, W)`` with zero padding."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=y.dtype, device=y.device)
    return F.conv2d(y, kx[None, None], padding=1).abs() + F.conv2d(y, kx.t()[None, None], padding=1).abs()


def losses(ikr: torch.Tensor, ckg: torch.Tensor, fused: torch.Tensor, seg_map: torch.Tensor | None = None,
           label: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Unweighted terms on decoded RGB images in [0, 1]; ``seg`` only when a label map is given."""
    y_v, cr_v, cb_v = ycrcb(ikr)
    y_i, _, _ = ycrcb(ckg)
    y_f, cr_f, cb_f = ycrcb(fused)
    terms = {"intensity": F.l1_loss(y_f, torch.maximum(y_v, y_i)),
             "gradient": F.l1_loss(sobel(y_f), torch.maximum(sobel(y_v), sobel(y_i))),
             "cr": F.l1_loss(cr_f, cr_v), "cb": F.l1_loss(cb_f, cb_v)}
    if label is not None:
        weight = torch.tensor(CLASS_WEIGHTS, dtype=seg_map.dtype, device=seg_map.device)
        terms["seg"] = F.cross_entropy(seg_map, label, weight=weight)
    return terms


# -- networks and data ----------------------------------------------------------------------------------------------
def frozen_nets(config: str, weights: Path | None, seed: int, device: str):
    """AE, IKR and CKG (frozen) and a freshly initialised MKF seeded by ``seed``."""
    from m3svd.methods.magicfuse import builders
    from m3svd.methods.magicfuse import weights as files
    from m3svd.methods.magicfuse.sampler import Nets

    build = builders(config)
    if config == "full":
        # without a folder, the weights registry's files (IKR and CKG placed by hand: `m3svd weights ls`)
        paths = (files.locate(weights, parts=("ae", "ikr", "ckg")) if weights is not None
                 else files.from_registry(parts=("ae", "ikr", "ckg")))
        frozen = files.load({k: build[k] for k in paths}, paths, device)
    else:
        torch.manual_seed(seed + 1)
        frozen = {k: build[k]().eval().requires_grad_(False).to(device) for k in ("ae", "ikr", "ckg")}
        if weights is not None:
            frozen.update(files.load({"ae": build["ae"]}, files.locate(weights, parts=("ae",)), device))
    torch.manual_seed(seed)
    return Nets(mkf=build["mkf"]().to(device).train(), **frozen)


def build_dataset(root, split: str):
    from m3svd.data import M3SVD, open_dataset

    clipset = open_dataset(root) if not hasattr(root, "clips") else root
    if clipset.layout == "sample":
        split = None  # the built-in sample has one split; it is not M3SVD test data
    variant = "degraded" if any(c.variant == "degraded" for c in clipset.clips) else "clean"
    return M3SVD(clipset, split=split, variant=variant, frames=1, crop=None, return_references=False)


def _item(dataset, labels: Path | None, iteration: int, seed: int, patch: tuple[int, int], device):
    """Frame, flip and crop of iteration ``iteration``: ``(vis (1,3,h,w), label (1,h,w) or None)``."""
    from m3svd.data.frames import read_image

    rng = np.random.default_rng([seed, iteration])
    n = len(dataset)
    epoch, pos = divmod(iteration, n)
    item = dataset[int(np.random.default_rng([seed, epoch]).permutation(n)[pos])]
    vis = item["vi"]  # (1, 3, H, W)
    label = None
    if labels is not None:
        path = labels / item["clip"] / f"{item['start']:04d}.png"
        if not path.is_file():
            raise MethodError(f"{path}: no label map for frame {item['start']} of clip {item['clip']}")
        label = torch.from_numpy(read_image(path).astype(np.int64))[None]
    h, w = vis.shape[-2:]
    ph, pw = patch
    if ph > h or pw > w:
        raise MethodError(f"training crop {ph}×{pw} is larger than the frames ({h}×{w})")
    top, left = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    flip = bool(rng.random() < 0.5)
    crops = [t[..., top:top + ph, left:left + pw] for t in (vis, label) if t is not None]
    if flip:
        crops = [t.flip(-1) for t in crops]
    return crops[0].to(device), (crops[1].to(device) if label is not None else None)


def step_loss(nets, vis: torch.Tensor, label, select: int, generator: torch.Generator) -> tuple:
    """One training evaluation: chain down to ``select``, decode the three x̂0s, weighted total and its terms."""
    from m3svd.methods.magicfuse.sampler import from_latent, sample

    out = sample(nets, vis, generator=generator, stop_at=select)
    with torch.no_grad():
        ikr, ckg = nets.ae.decoder(from_latent(out["ikr_x0"])), nets.ae.decoder(from_latent(out["ckg_x0"]))
    fused = nets.ae.decoder(from_latent(out["mkf_x0"]))
    terms = losses(ikr, ckg, fused, out["seg_map"], label)
    return sum(LOSS_WEIGHTS[k] * v for k, v in terms.items()), terms


def iteration_inputs(dataset, labels, iteration: int, seed: int, patch, device):
    """Everything random about iteration ``iteration``: the item, its timestep and its noise generator."""
    from m3svd.methods.magicfuse.sampler import timesteps

    vis, label = _item(dataset, labels, iteration, seed, patch, device)
    steps = [t for t, _ in timesteps()]
    select = steps[int(np.random.default_rng([seed, iteration, 1]).integers(len(steps)))]
    generator = torch.Generator().manual_seed(int(np.random.default_rng([seed, iteration, 2]).integers(2**62)))
    return vis, label, select, generator


# -- the loop -----------------------------------------------------------------------------------------------------
def train(root, out, *, split: str = "train", iterations: int, seed: int = 0, resume: bool = True,
          device: str = "cpu", config: str = "full", progress: bool = True, weights=None, labels=None,
          patch: tuple[int, int] | None = None, lr: float = LR, save_every: int = 1000) -> Path:
    """Train MKF (or resume ``out/checkpoint.pt``); returns ``out/model.pth``, a plain MKF state dict.

    Put it in a weights folder in place of the authors' ``model.pth``, or pass ``--option mkf=PATH``. Per-iteration
    losses go to ``out/train_log.jsonl``; ``out/magicfuse.json`` labels the weights with their recipe.
    """
    if config not in CONFIGS:
        raise MethodError(f"config must be one of {', '.join(CONFIGS)}, found {config!r}")
    if iterations < 1 or save_every < 1:
        raise MethodError("iterations and save_every must be positive")
    weights = Path(weights) if weights else None
    labels = Path(labels) if labels else None
    patch = tuple(patch or CONFIGS[config]["patch"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recipe = {"config": config, "seed": seed, "split": split, "root": str(root), "patch": list(patch), "lr": lr,
              "labels": str(labels) if labels else None, "weights": str(weights) if weights else None}
    nets = frozen_nets(config, weights, seed, device)
    dataset = build_dataset(root, split)
    epoch_len = len(dataset)
    optimiser = torch.optim.SGD(nets.mkf.parameters(), lr=lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    start, ckpt = 0, out / CHECKPOINT
    if resume and (state := resume_state(ckpt, recipe, device)) is not None:
        nets.mkf.load_state_dict(state["mkf"])
        optimiser.load_state_dict(state["optimizer"])
        start = int(state["iteration"])
    log = TrainingLog(out, start, iterations, "magicfuse train", progress)
    for iteration in range(start, iterations):
        for group in optimiser.param_groups:
            group["lr"] = lr * LR_GAMMA ** (iteration // (LR_EPOCHS * epoch_len))
        vis, label, select, generator = iteration_inputs(dataset, labels, iteration, seed, patch, device)
        loss, terms = step_loss(nets, vis, label, select, generator)
        optimise(loss, optimiser, "magicfuse", iteration)
        log.record({"iteration": iteration + 1, "loss": loss.item(), "t": select,
                    "lr": optimiser.param_groups[0]["lr"], **{k: v.item() for k, v in terms.items()}})
        if (iteration + 1) % save_every == 0 or iteration + 1 == iterations:
            atomic_save({"mkf": nets.mkf.state_dict(), "optimizer": optimiser.state_dict(),
                         "iteration": iteration + 1, "recipe": recipe}, ckpt)
    log.close()
    path = out / "model.pth"
    atomic_save(nets.mkf.state_dict(), path)
    label_info = {"method": "magicfuse", "trained": "MKF only (AE, IKR, CKG frozen)",
                  "trained_by": "m3svd toolkit recipe (not the authors' checkpoint)", "iterations": iterations,
                  "semantic_loss": labels is not None, **recipe, "final": log.last or None,
                  "schedule": f"SGD lr {lr} momentum {MOMENTUM} wd {WEIGHT_DECAY}, x{LR_GAMMA} every {LR_EPOCHS} "
                              f"epochs of {epoch_len} frames"}
    atomic_json(out / "magicfuse.json", label_info)
    return path
