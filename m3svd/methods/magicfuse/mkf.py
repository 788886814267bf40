"""MKF, the multi-domain knowledge fusion network (``network.py:FusionModule``): the only trained module.

Per DDIM step it predicts the fused stream's noise from both U-Nets' noises and x̂0s, and refines a 9-class
segmentation state. Noise fusion: ``ε_f = w_r·ε_ikr + (1 − w_r)·ε_ckg`` with an unbounded per-channel weight
``w_e``, capped at ``PERSON_CAP`` only where the refined segmentation says "person" (class 2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PERSON_CLASS, PERSON_CAP = 2, 0.4
ATTENTION_CHUNK = 4096  # query rows per chunk: the full (hw)² map at 640×480 would be 1.5 GB per image


def timestep_embedding(t: torch.Tensor, dim: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[sin, cos]`` with ``f_i = exp(−i·ln(10⁴)/(half − 1))`` (the DDPM form, unlike the U-Nets'); float32 unless
    ``dtype`` is float64."""
    dtype = torch.float64 if dtype == torch.float64 else torch.float32
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=dtype, device=t.device) * -(math.log(10000) / (half - 1)))
    args = t.to(dtype)[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _gn(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, channels, eps=1e-6)


class ResnetBlock(nn.Module):
    def __init__(self, channels: int, temb: int):
        super().__init__()
        self.norm1 = _gn(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.temb_proj = nn.Linear(temb, channels)
        self.norm2 = _gn(channels)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x))) + self.temb_proj(F.silu(temb))[:, :, None, None]
        return x + self.conv2(self.dropout(F.silu(self.norm2(h))))


class AttnBlock(nn.Module):
    """Single-head self-attention over all h·w latent positions, computed in chunks of query rows (same maths)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _gn(channels)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(channels, channels, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        y = self.norm(x)
        q = self.q(y).flatten(2).transpose(1, 2)  # b, hw, c
        k, v = self.k(y).flatten(2), self.v(y).flatten(2)  # b, c, hw
        scale = c**-0.5
        out = torch.cat([v @ (q[:, i:i + ATTENTION_CHUNK] @ k * scale).softmax(dim=2).transpose(1, 2)
                         for i in range(0, h * w, ATTENTION_CHUNK)], dim=2)
        return x + self.proj_out(out.reshape(b, c, h, w))


class FusionBlock(nn.Module):
    def __init__(self, channels: int, temb: int, noise_ch: int):
        super().__init__()
        self.res1, self.res2 = ResnetBlock(channels, temb), ResnetBlock(channels, temb)
        self.mlp = nn.Sequential(nn.Conv2d(channels + 2 * noise_ch, 2 * channels, 1), nn.SiLU(),
                                 nn.Conv2d(2 * channels, channels, 1))
        self.att = AttnBlock(channels)

    def forward(self, x, temb, n1, n2):
        a = self.res2(self.res1(x, temb), temb)
        b = self.att(self.mlp(torch.cat([a, n1, n2], dim=1)))
        return b, (a, b)


class FusionModule(nn.Module):
    """``forward(x, n1, n2, t, seg) -> (ε_fused, seg_map ×4, seg_next)``; ``x = cat[x̂0_ikr, x̂0_ckg, x_fused]``."""

    def __init__(self, in_ch: int = 8, channels: int = 96, num_class: int = 9, num_blocks: int = 5):
        super().__init__()
        self.channels = channels
        temb = 4 * channels
        self.time_embed = nn.Sequential(nn.Linear(channels, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.inconv = nn.Sequential(nn.Conv2d(3 * in_ch, channels, 3, padding=1), nn.SiLU())
        self.normout = nn.Conv2d(channels, in_ch, 1)
        self.estimate = nn.Sequential(nn.Conv2d(3 * in_ch, channels, 3, padding=1),
                                      nn.Conv2d(channels, in_ch, 3, padding=1))
        self.blocks = nn.ModuleList(FusionBlock(channels, temb, in_ch) for _ in range(num_blocks))
        self.segproj = nn.ModuleList(nn.Conv2d(channels + num_class, num_class, 3, padding=1)
                                     for _ in range(2 * num_blocks))

    def weight(self, x, n1, n2, t):
        """The trunk: the unbounded fusion weight ``w_e`` and the ten feature maps for the segmentation head."""
        dtype = self.time_embed[0].weight.dtype
        temb = self.time_embed(timestep_embedding(t, self.channels, dtype).to(dtype))
        h, feats = self.inconv(x), []
        for block in self.blocks:
            h, pair = block(h, temb, n1, n2)
            feats += pair
        return self.estimate(torch.cat([self.normout(h), n1, n2], dim=1)), feats

    def forward(self, x, n1, n2, t, seg):
        w_e, feats = self.weight(x, n1, n2, t)
        for proj, feat in zip(self.segproj, feats, strict=True):
            seg = proj(torch.cat([feat, seg.to(feat.dtype)], dim=1))
        seg_map = F.interpolate(seg, scale_factor=4, mode="bilinear", align_corners=False)
        return fuse_noise(w_e, n1, n2, seg), seg_map, seg


def fuse_noise(w_e: torch.Tensor, n1: torch.Tensor, n2: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """``w_r = min(w_e, 0.4)`` on person pixels (argmax of ``seg``), ``w_e`` elsewhere; mix the two noises."""
    person = (seg.argmax(dim=1, keepdim=True) == PERSON_CLASS).to(w_e.dtype)
    w_r = person * w_e.clamp(max=PERSON_CAP) + (1 - person) * w_e
    return w_r * n1 + (1 - w_r) * n2
