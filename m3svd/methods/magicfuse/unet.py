"""IKR and CKG: the LDM-style ``DiffusionUNet`` without text context, key-compatible with ``ikr.pth`` and
``ckg.pth``. Both attention layers of each transformer block are self-attention.

As in the official code, GroupNorm, the nearest upsampling and the timestep embedding run in float32 whatever the
input dtype (so bf16 autocast changes only convolutions, linear layers and attention); float64 stays float64, the
goldens' reference patches, so a float64 run can be checked against the float64 reference. Upsampling goes to the
size of the matching skip tensor, so odd latent sizes work.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

IKR = {"MODEL_CHANNELS": 64, "CHANNEL_MULT": [1, 2, 4, 4], "NUM_RES_BLOCKS": 2, "ATTENTION_RESOLUTIONS": [4, 8],
       "NUM_HEADS": 4, "IN_CHANNELS": 16, "OUT_CHANNELS": 8}
CKG = {**IKR, "MODEL_CHANNELS": 256, "ATTENTION_RESOLUTIONS": [4], "NUM_HEADS": 8}
# The conformance goldens' small configurations (magicfuse_small_meta.json).
IKR_SMALL = {**IKR, "MODEL_CHANNELS": 32, "CHANNEL_MULT": [1, 1, 2], "NUM_RES_BLOCKS": 1,
             "ATTENTION_RESOLUTIONS": [2, 4]}
CKG_SMALL = {**IKR_SMALL, "ATTENTION_RESOLUTIONS": [2], "NUM_HEADS": 8}


def wide(dtype: torch.dtype) -> torch.dtype:
    """The dtype the official code forces (float32), except that float64 is kept."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def timestep_embedding(t: torch.Tensor, dim: int, dtype: torch.dtype = torch.float32,
                       max_period: float = 10000.0) -> torch.Tensor:
    """``[cos(t·f), sin(t·f)]`` with ``f_i = exp(−ln(max_period)·i/half)``, in float32 (or float64)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=wide(dtype), device=t.device) / half)
    args = t[:, None].to(wide(dtype)) * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class GroupNorm32(nn.GroupNorm):
    def forward(self, x):
        return super().forward(x.to(wide(x.dtype))).type(x.dtype)


def norm(channels: int) -> GroupNorm32:
    return GroupNorm32(32, channels)


class ResBlock(nn.Module):
    def __init__(self, cin: int, emb: int, cout: int):
        super().__init__()
        self.in_layers = nn.Sequential(norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb, cout))
        self.out_layers = nn.Sequential(norm(cout), nn.SiLU(), nn.Dropout(0.0), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip_connection = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x, emb):
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class Attention(nn.Module):
    """Multi-head self-attention, ``softmax(q·kᵀ/√d)·v``, bias-free q/k/v."""

    def __init__(self, dim: int, heads: int, d_head: int):
        super().__init__()
        inner = heads * d_head
        self.heads, self.scale = heads, d_head**-0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(0.0))

    def forward(self, x):
        b, n, _ = x.shape

        def split(t):
            return t.reshape(b, n, self.heads, -1).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x))
        attn = (q @ k.transpose(-1, -2) * self.scale).softmax(dim=-1)
        return self.to_out((attn @ v).transpose(1, 2).reshape(b, n, -1))


class GEGLU(nn.Module):
    def __init__(self, dim: int, inner: int):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int = 4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, d_head: int):
        super().__init__()
        self.attn1 = Attention(dim, heads, d_head)
        self.ff = FeedForward(dim)
        self.attn2 = Attention(dim, heads, d_head)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x)) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(self, channels: int, heads: int):
        super().__init__()
        d_head = channels // heads
        self.norm = norm(channels)
        self.proj_in = nn.Conv2d(channels, heads * d_head, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(heads * d_head, heads, d_head)])
        self.proj_out = nn.Conv2d(heads * d_head, channels, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        for block in self.transformer_blocks:
            t = block(t)
        return self.proj_out(t.transpose(1, 2).reshape(b, -1, h, w)) + x


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, size):
        return self.conv(F.interpolate(x.to(wide(x.dtype)), size=size, mode="nearest").type(x.dtype))


class Block(nn.ModuleList):
    """One input/middle/output block: layers get the embedding (ResBlock) or the skip size (Upsample) they need."""

    def forward(self, x, emb, size=None):
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, Upsample):
                x = layer(x, size)
            else:
                x = layer(x)
        return x


class DiffusionUNet(nn.Module):
    """ε-prediction UNet; ``forward(cat[cond, x_t], t)`` with ``t`` a float tensor ``(B,)``."""

    def __init__(self, cfg: dict):
        super().__init__()
        mc, heads = cfg["MODEL_CHANNELS"], cfg["NUM_HEADS"]
        mult, n_res, attn = cfg["CHANNEL_MULT"], cfg["NUM_RES_BLOCKS"], set(cfg["ATTENTION_RESOLUTIONS"])
        emb = 4 * mc
        self.model_channels = mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.input_blocks = nn.ModuleList([Block([nn.Conv2d(cfg["IN_CHANNELS"], mc, 3, padding=1)])])
        chans, ch, ds = [mc], mc, 1
        for level, m in enumerate(mult):
            for _ in range(n_res):
                layers = [ResBlock(ch, emb, m * mc)]
                ch = m * mc
                if ds in attn:
                    layers.append(SpatialTransformer(ch, heads))
                self.input_blocks.append(Block(layers))
                chans.append(ch)
            if level != len(mult) - 1:
                self.input_blocks.append(Block([Downsample(ch)]))
                chans.append(ch)
                ds *= 2
        self.middle_block = Block([ResBlock(ch, emb, ch), SpatialTransformer(ch, heads), ResBlock(ch, emb, ch)])
        self.output_blocks = nn.ModuleList()
        for level, m in reversed(list(enumerate(mult))):
            for i in range(n_res + 1):
                layers = [ResBlock(ch + chans.pop(), emb, m * mc)]
                ch = m * mc
                if ds in attn:
                    layers.append(SpatialTransformer(ch, heads))
                if level and i == n_res:
                    layers.append(Upsample(ch))
                    ds //= 2
                self.output_blocks.append(Block(layers))
        self.out = nn.Sequential(norm(ch), nn.SiLU(), nn.Conv2d(mc, cfg["OUT_CHANNELS"], 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        dtype = self.time_embed[0].weight.dtype
        emb = self.time_embed(timestep_embedding(t, self.model_channels, dtype).to(dtype))
        hs, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            hs.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = torch.cat([h, hs.pop()], dim=1)
            h = block(h, emb, hs[-1].shape[-2:] if hs else None)
        return self.out(h)
