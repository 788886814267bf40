"""MagicFuse's sampler (``magicfuse_schedule.json``): 25 deterministic DDIM steps for three streams.

IKR and CKG each denoise their own copy of one shared x_T with their own ε; the fused stream has no U-Net and
steps with MKF's ε_fused. Constants are float32 as released: β linear in [0.00085, 0.012] over 1000 steps,
ᾱ = cumprod(1 − β), looked up at index t + 1 of ``[1, ᾱ…]`` so the step after t = 0 has ᾱ = 1. Images are decoded
from the last step's x̂0.

Randomness: everything comes from one CPU ``torch.Generator`` in the authors' CPU order — encoder noise, x_T,
seg state — or is passed in explicitly (the authors drew x_T on the CUDA generator, which a CPU cannot
reproduce). Seeding the generator with 55 reproduces the reference CPU run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

BETA_START, BETA_END, TRAIN_STEPS, STEPS, NUM_CLASSES = 0.00085, 0.012, 1000, 25, 9


def alphas_cumprod_pre() -> torch.Tensor:
    """``[1, ᾱ_0, …, ᾱ_999]`` in float32."""
    betas = torch.linspace(BETA_START, BETA_END, TRAIN_STEPS, dtype=torch.float32)
    return torch.cat([torch.ones(1), torch.cumprod(1 - betas, dim=0)])


def timesteps(steps: int = STEPS) -> list[tuple[int, int]]:
    """``(t, next_t)`` pairs, descending: (960, 920), …, (0, −1) for 25 steps."""
    seq = list(range(0, TRAIN_STEPS, TRAIN_STEPS // steps))
    return list(zip(reversed(seq), reversed([-1] + seq[:-1]), strict=True))


def ddim_step(x: torch.Tensor, eps: torch.Tensor, a_t: torch.Tensor, a_next: torch.Tensor):
    """η = 0 DDIM: ``x̂0 = (x − √(1−ā_t)·ε)/√ā_t`` (no clipping), ``x_next = √ā_next·x̂0 + √(1−ā_next)·ε``."""
    x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return x0, a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps


def to_latent(z: torch.Tensor) -> torch.Tensor:
    return 2 * z - 1


def from_latent(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) / 2).clamp(0, 1)


@dataclass
class Nets:
    """The four frozen-or-trained modules of one MagicFuse configuration."""

    ae: nn.Module  # .encoder, .decoder
    ikr: nn.Module
    ckg: nn.Module
    mkf: nn.Module

    def to(self, device) -> Nets:
        for net in (self.ae, self.ikr, self.ckg, self.mkf):
            net.to(device)
        return self


def draw_noise(image: torch.Tensor, generator: torch.Generator | None):
    """Encoder noise, x_T and seg state for ``image`` ``(B, 3, H, W)``, drawn on the CPU in the authors' order."""
    b, _, h, w = image.shape
    enc = torch.randn((b, 32, h // 4, w // 4), generator=generator)
    x_t = torch.randn((b, 8, h // 4, w // 4), generator=generator)
    seg = torch.randn((b, NUM_CLASSES, h // 4, w // 4), generator=generator)
    return enc, x_t, seg


def _autocast(device: torch.device, bf16: bool):
    """bfloat16 autocast for the networks (meant for CUDA; on a CPU it works but is rarely faster)."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def sample(nets: Nets, image: torch.Tensor, *, generator: torch.Generator | None = None,
           enc_noise: torch.Tensor | None = None, x_T: torch.Tensor | None = None,
           seg_T: torch.Tensor | None = None, steps: int = STEPS, bf16: bool = False,
           trace: bool = False, stop_at: int | None = None) -> dict:
    """Run the three streams on RGB ``image`` in [0, 1]; returns decoded images, seg logits and labels.

    Missing random tensors are drawn from ``generator`` (see :func:`draw_noise`). ``bf16`` autocasts the networks
    to bfloat16 (the DDIM arithmetic stays float32). A float64 ``image`` (with float64 nets) runs in float64 throughout.
    ``trace`` adds per-step ε and seg states. ``stop_at`` (training) ends the chain after the step at that timestep
    and returns its x̂0s undecoded, with gradients if enabled.
    """
    device, dtype = image.device, (torch.float64 if image.dtype == torch.float64 else torch.float32)
    drawn = draw_noise(image, generator) if enc_noise is None or x_T is None or seg_T is None else (None,) * 3
    enc_noise = drawn[0] if enc_noise is None else enc_noise
    x_T = drawn[1] if x_T is None else x_T
    seg = (drawn[2] if seg_T is None else seg_T).to(device, dtype)
    a = alphas_cumprod_pre().to(device, dtype)  # the float32 constants, widened for a float64 run
    with _autocast(device, bf16):
        cond = to_latent(nets.ae.encoder(image, noise=enc_noise)).to(dtype)
    x_ikr = x_ckg = x_fus = x_T.to(device, dtype)
    out: dict = {"t": [], "ikr_eps": [], "ckg_eps": [], "mkf_eps": [], "seg": []} if trace else {}
    for t, t_next in timesteps(steps):
        grad = torch.is_grad_enabled() and stop_at == t
        ctx = contextlib.nullcontext() if grad else torch.no_grad()
        tt = torch.full((image.shape[0],), float(t), device=device)
        a_t, a_next = a[t + 1], a[t_next + 1]
        with ctx, _autocast(device, bf16):
            e_ikr = nets.ikr(torch.cat([cond, x_ikr], 1), tt).to(dtype)
            e_ckg = nets.ckg(torch.cat([cond, x_ckg], 1), tt).to(dtype)
            x0_ikr, x_ikr = ddim_step(x_ikr, e_ikr, a_t, a_next)
            x0_ckg, x_ckg = ddim_step(x_ckg, e_ckg, a_t, a_next)
            e_fus, seg_map, seg = nets.mkf(torch.cat([x0_ikr, x0_ckg, x_fus], 1), e_ikr, e_ckg, tt, seg)
            e_fus, seg_map, seg = e_fus.to(dtype), seg_map.to(dtype), seg.to(dtype)
            x0_fus, x_fus = ddim_step(x_fus, e_fus, a_t, a_next)
        if trace:
            for key, value in (("t", t), ("ikr_eps", e_ikr), ("ckg_eps", e_ckg), ("mkf_eps", e_fus), ("seg", seg)):
                out[key].append(value)
        if stop_at == t:
            return {**out, "ikr_x0": x0_ikr, "ckg_x0": x0_ckg, "mkf_x0": x0_fus, "seg_map": seg_map}
    if stop_at is not None:
        raise ValueError(f"stop_at={stop_at} is not one of the {steps} timesteps")
    with torch.no_grad(), _autocast(device, bf16):
        images = {name: nets.ae.decoder(from_latent(x0)).to(dtype)
                  for name, x0 in (("ikr_img", x0_ikr), ("ckg_img", x0_ckg), ("MagImg", x0_fus))}
    return {**out, **images, "ikr_x0": x0_ikr, "ckg_x0": x0_ckg, "mkf_x0": x0_fus, "seg_map": seg_map,
            "seg_label": seg_map.softmax(dim=1).argmax(dim=1)}
