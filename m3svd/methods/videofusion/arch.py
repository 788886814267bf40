"""VideoFusion network (``VideoFusion_Trans``), written from the specification so the authors' checkpoint loads.

Module names, registration order and shapes follow the released state dict exactly (464 entries); the quirks that
matter for checkpoint compatibility and outputs are kept on purpose: an unused ``attn.norm`` in every
cross attention, one shared cross transformer per fusion module, key/value = other − self in the differential
module, a second softmax over the product of the two attention maps in the bi-temporal co-attention with clip-end
frames as their own neighbours, and (tanh + 1)/2 heads with no input residual.

Shapes: inputs and outputs are ``(B, T, 3, H, W)`` RGB in [0, 1] with H and W multiples of :data:`SIZE_MULTIPLE`;
inside, per-frame modules work on ``(B·T, C, h, w)`` and the 3-D stems on ``(B, C, T, h, w)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIZE_MULTIPLE = 4
RELEASED = {"in_channels": 3, "out_channels": 3, "num_features": 32, "num_blocks": (2, 2, 4),
            "num_decoder_blocks": 2, "num_heads": (2, 4, 8), "ffn_expansion_factor": 1}
SMALL = {**RELEASED, "num_features": 16}  # the conformance golden's configuration
CONFIGS = {"full": RELEASED, "small": SMALL}


def _conv(cin: int, cout: int, k: int = 1, bias: bool = False, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias, groups=groups)


class LayerNorm(nn.Module):
    """Restormer's "WithBias" LayerNorm over channels at every pixel (biased variance, eps 1e-5)."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Module()
        self.body.weight = nn.Parameter(torch.ones(dim))
        self.body.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        mu = x.mean(-1, keepdim=True)
        var = x.var(-1, keepdim=True, unbiased=False)
        x = (x - mu) / torch.sqrt(var + 1e-5) * self.body.weight + self.body.bias
        return x.permute(0, 3, 1, 2)


class FeedForward(nn.Module):
    """Gated depth-wise conv feed-forward (GDFN), no biases."""

    def __init__(self, dim: int, expansion: float):
        super().__init__()
        hidden = int(dim * expansion)
        self.project_in = _conv(dim, hidden * 2)
        self.dwconv = _conv(hidden * 2, hidden * 2, 3, groups=hidden * 2)
        self.project_out = _conv(hidden, dim)

    def forward(self, x):
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(F.gelu(x1) * x2)


def _heads(x, heads: int):
    b, c, h, w = x.shape
    return x.reshape(b, heads, c // heads, h * w)


def _attend(q, k, temperature):
    """Channel ("transposed") attention map softmax(q̂·k̂ᵀ·τ) with q and k L2-normalised over pixels."""
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    return ((q @ k.transpose(-2, -1)) * temperature).softmax(dim=-1)


class Attention(nn.Module):
    """MDTA self-attention."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = _conv(dim, dim * 3)
        self.qkv_dwconv = _conv(dim * 3, dim * 3, 3, groups=dim * 3)
        self.project_out = _conv(dim, dim)

    def forward(self, x):
        q, k, v = (_heads(t, self.heads) for t in self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1))
        return self.project_out((_attend(q, k, self.temperature) @ v).reshape(x.shape))


class CrossAttention(nn.Module):
    """Query from ``x``, key/value from ``y``. ``norm`` is in the checkpoint but never used."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.norm = LayerNorm(dim)
        self.q = _conv(dim, dim)
        self.kv = _conv(dim, dim * 2)
        self.q_dwconv = _conv(dim, dim, 3, groups=dim)
        self.kv_dwconv = _conv(dim * 2, dim * 2, 3, groups=dim * 2)
        self.project_out = _conv(dim, dim)

    def forward(self, x, y):
        q = _heads(self.q_dwconv(self.q(x)), self.heads)
        k, v = (_heads(t, self.heads) for t in self.kv_dwconv(self.kv(y)).chunk(2, dim=1))
        return self.project_out((_attend(q, k, self.temperature) @ v).reshape(x.shape))


class CoAttention(nn.Module):
    """BiCAM core: one map softmax(A_prev ⊙ A_next) applied to both neighbours' values."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.q = _conv(dim, dim)
        self.kv_prev = _conv(dim, dim * 2)
        self.kv_next = _conv(dim, dim * 2)
        self.q_dwconv = _conv(dim, dim, 3, groups=dim)
        self.kv_dwconv_prev = _conv(dim * 2, dim * 2, 3, groups=dim * 2)
        self.kv_dwconv_next = _conv(dim * 2, dim * 2, 3, groups=dim * 2)
        self.project_out = _conv(dim, dim)

    def forward(self, x, prev, nxt):
        q = _heads(self.q_dwconv(self.q(x)), self.heads)
        k_p, v_p = (_heads(t, self.heads) for t in self.kv_dwconv_prev(self.kv_prev(prev)).chunk(2, dim=1))
        k_n, v_n = (_heads(t, self.heads) for t in self.kv_dwconv_next(self.kv_next(nxt)).chunk(2, dim=1))
        attn = (_attend(q, k_p, self.temperature) * _attend(q, k_n, self.temperature)).softmax(dim=-1)
        return self.project_out((attn @ v_p + attn @ v_n).reshape(x.shape))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = LayerNorm(dim)
        self.ffn = FeedForward(dim, expansion)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class CrossTransformerBlock(nn.Module):
    """x ← x + CrossAttn(LN1(x), LN1(s)) (one norm for both inputs), then the feed-forward."""

    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = CrossAttention(dim, heads)
        self.norm2 = LayerNorm(dim)
        self.ffn = FeedForward(dim, expansion)

    def forward(self, x, s):
        x = x + self.attn(self.norm1(x), self.norm1(s))
        return x + self.ffn(self.norm2(x))


class CoTransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = CoAttention(dim, heads)
        self.norm2 = LayerNorm(dim)
        self.ffn = FeedForward(dim, expansion)

    def forward(self, x, prev, nxt):
        x = x + self.attn(self.norm1(x), self.norm1(prev), self.norm1(nxt))
        return x + self.ffn(self.norm2(x))


class Conv3DModule(nn.Module):
    """Two 3×3×3 convolutions (zero padding in time too) on ``(B, C, T, H, W)``."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.module = nn.Sequential(nn.Conv3d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2),
                                    nn.Conv3d(cout, cout, 3, padding=1))

    def forward(self, x):
        return self.module(x)


class Downsample(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(_conv(dim, dim // 2, 3), nn.PixelUnshuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(_conv(dim, dim // 2, 3),
                                  nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
                                  _conv(dim // 2, dim // 2, 3, bias=True))

    def forward(self, x):
        return self.body(x)


class ResidualBlockNoBN(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = _conv(dim, dim, 3, bias=True)
        self.conv2 = _conv(dim, dim, 3, bias=True)

    def forward(self, x):
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


class ResidualBlocks2D(nn.Module):
    def __init__(self, dim: int, n: int = 4):
        super().__init__()
        self.blocks = nn.Sequential(nn.Sequential(*(ResidualBlockNoBN(dim) for _ in range(n))))

    def forward(self, x):
        return self.blocks(x)


class ChannelAttention(nn.Module):
    def __init__(self, dim: int, ratio: int = 16):
        super().__init__()
        self.fc1 = _conv(dim, dim // ratio)
        self.fc2 = _conv(dim // ratio, dim)

    def forward(self, x):
        avg = self.fc2(F.leaky_relu(self.fc1(x.mean((2, 3), keepdim=True)), 0.2))
        peak = self.fc2(F.leaky_relu(self.fc1(x.amax((2, 3), keepdim=True)), 0.2))
        return torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = _conv(2, 1, 3)

    def forward(self, x):
        return torch.sigmoid(self.conv1(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)))


class CrossModalAggregation(nn.Module):
    """CMA: two global gates from a 1×1 conv → sigmoid → average pool; the main branch refined by CA then SA."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv = _conv(dim * 2, 2)
        self.ChannelAttention = ChannelAttention(dim)
        self.SpatialAttention = SpatialAttention()

    def forward(self, main, supp):
        w = torch.sigmoid(self.conv(torch.cat([main, supp], dim=1))).mean((2, 3), keepdim=True)
        g1, g2 = w[:, 0:1] * main, w[:, 1:2] * supp
        g1 = self.ChannelAttention(g1) * g1
        g1 = self.SpatialAttention(g1) * g1
        return g1 + g2


class CrossModalityDiffEnhance(nn.Module):
    """CmDRM: query = own modality, key/value = other − self."""

    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.cross_transformer = CrossTransformerBlock(dim, heads, expansion)

    def forward(self, x, s):
        return self.cross_transformer(x, s - x)


class FusionModule(nn.Module):
    """CMGF: Q = ir + vi attends to each modality with one shared cross transformer."""

    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.cross_transformer = CrossTransformerBlock(dim, heads, expansion)

    def forward(self, ir, vi):
        q = ir + vi
        return self.cross_transformer(q, ir) + self.cross_transformer(q, vi)


class FusionEnhance(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float, n: int):
        super().__init__()
        self.transformer = nn.Sequential(*(TransformerBlock(dim, heads, expansion) for _ in range(n)))

    def forward(self, x):
        return self.transformer(x)


class CoAttentionModule(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.co_transformer = CoTransformerBlock(dim, heads, expansion)

    def forward(self, x):
        """``(B, T, C, H, W)``: each frame attends to its neighbours; end frames stand in for the missing ones."""
        t = x.shape[1]
        out = [self.co_transformer(x[:, i], x[:, max(i - 1, 0)], x[:, min(i + 1, t - 1)]) for i in range(t)]
        return torch.stack(out, dim=1)


class StackedCoAttention(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float, n: int):
        super().__init__()
        self.layers = nn.ModuleList(CoAttentionModule(dim, heads, expansion) for _ in range(n))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class VideoDecomposition(nn.Module):
    """Modality unmixing: each modality's own channel then spatial attention on the shared features."""

    def __init__(self, dim: int):
        super().__init__()
        self.channel_attention_ir = ChannelAttention(dim)
        self.channel_attention_vi = ChannelAttention(dim)
        self.spatial_attention_ir = SpatialAttention()
        self.spatial_attention_vi = SpatialAttention()

    def forward(self, x):
        ir = self.channel_attention_ir(x) * x
        vi = self.channel_attention_vi(x) * x
        return self.spatial_attention_ir(ir) * ir, self.spatial_attention_vi(vi) * vi


class Decoder3D(nn.Module):
    """Transformer blocks then 1×1 (bias) → LeakyReLU(0.2) → 3×3 without bias; pre-activation output."""

    def __init__(self, dim: int, out_channels: int, heads: int, expansion: float, n: int):
        super().__init__()
        self.decoder = nn.Sequential(*(TransformerBlock(dim, heads, expansion) for _ in range(n)))
        self.conv = nn.Sequential(_conv(dim, dim // 2, bias=True), nn.LeakyReLU(0.2),
                                  _conv(dim // 2, out_channels, 3))

    def forward(self, x):
        return self.conv(self.decoder(x))


class VideoFusion(nn.Module):
    """``VideoFusion_Trans``: ``forward(x_ir, x_vi)`` → ``{"fusion", "ir", "vi"}``, ``(B, T, 3, H, W)`` in (0, 1)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_features: int = 32,
                 num_blocks=(2, 2, 4), num_decoder_blocks: int = 2, num_heads=(2, 4, 8),
                 ffn_expansion_factor: float = 1):
        super().__init__()
        c1, c2, c3 = num_features, num_features * 2, num_features * 4
        h1, h2, h3 = num_heads
        e = ffn_expansion_factor
        self.conv3d_ir_1, self.conv3d_vi_1 = Conv3DModule(in_channels, c1), Conv3DModule(in_channels, c1)
        self.fusion_1 = FusionModule(c1, h1, e)
        self.fusion_enhance_1 = FusionEnhance(c1, h1, e, num_blocks[0])
        self.down_ir_1, self.down_vi_1 = Downsample(c1), Downsample(c1)
        self.conv3d_ir_2, self.conv3d_vi_2 = Conv3DModule(c2, c2), Conv3DModule(c2, c2)
        self.ir_conv_enhance_2, self.vi_conv_enhance_2 = ResidualBlocks2D(c2), ResidualBlocks2D(c2)
        self.cross_modal_enhance_ir_2 = CrossModalityDiffEnhance(c2, h2, e)
        self.cross_modal_enhance_vi_2 = CrossModalityDiffEnhance(c2, h2, e)
        self.CMA_ir_2, self.CMA_vi_2 = CrossModalAggregation(c2), CrossModalAggregation(c2)
        self.fusion_2 = FusionModule(c2, h2, e)
        self.fusion_enhance_2 = FusionEnhance(c2, h2, e, num_blocks[1])
        self.down_ir_2, self.down_vi_2 = Downsample(c2), Downsample(c2)
        self.conv3d_ir_3, self.conv3d_vi_3 = Conv3DModule(c3, c3), Conv3DModule(c3, c3)
        self.ir_conv_enhance_3, self.vi_conv_enhance_3 = ResidualBlocks2D(c3), ResidualBlocks2D(c3)
        self.cross_modal_enhance_ir_3 = CrossModalityDiffEnhance(c3, h3, e)
        self.cross_modal_enhance_vi_3 = CrossModalityDiffEnhance(c3, h3, e)
        self.CMA_ir_3, self.CMA_vi_3 = CrossModalAggregation(c3), CrossModalAggregation(c3)
        self.fusion_3 = FusionModule(c3, h3, e)
        self.co_attention_3 = StackedCoAttention(c3, h3, e, num_blocks[2])
        self.up2 = Upsample(c3)
        self.co_attention_2 = StackedCoAttention(c2, h2, e, num_blocks[1])
        self.up1 = Upsample(c2)
        self.co_attention_1 = StackedCoAttention(c1, h1, e, num_blocks[0])
        self.decomposition = VideoDecomposition(c1)
        self.decoder_ir = Decoder3D(c1, out_channels, h1, e, num_decoder_blocks)
        self.decoder_vi = Decoder3D(c1, out_channels, h1, e, num_decoder_blocks)
        self.decoder_fusion = Decoder3D(c1, out_channels, h1, e, num_decoder_blocks)

    @staticmethod
    def _stem(conv3d: nn.Module, x, b: int, t: int):
        """``(B·T, C, H, W)`` → 3-D conv over ``(B, C, T, H, W)`` → back to ``(B·T, C', H, W)``."""
        x = x.reshape(b, t, *x.shape[1:]).transpose(1, 2)
        y = conv3d(x)
        return y.transpose(1, 2).reshape(b * t, *y.shape[1:2], *y.shape[3:])

    def _scale(self, i: int, f_ir, f_vi, b: int, t: int):
        """Scales 2 and 3: downsample, 3-D stems, residual blocks, differential enhancement, aggregation."""
        f_ir = getattr(self, f"ir_conv_enhance_{i}")(self._stem(getattr(self, f"conv3d_ir_{i}"),
                                                                getattr(self, f"down_ir_{i - 1}")(f_ir), b, t))
        f_vi = getattr(self, f"vi_conv_enhance_{i}")(self._stem(getattr(self, f"conv3d_vi_{i}"),
                                                                getattr(self, f"down_vi_{i - 1}")(f_vi), b, t))
        e_ir = getattr(self, f"cross_modal_enhance_ir_{i}")(f_ir, f_vi)
        e_vi = getattr(self, f"cross_modal_enhance_vi_{i}")(f_vi, f_ir)
        return getattr(self, f"CMA_ir_{i}")(e_ir, f_ir), getattr(self, f"CMA_vi_{i}")(e_vi, f_vi)

    def forward(self, x_ir, x_vi):
        b, t = x_ir.shape[:2]
        f_ir = self._stem(self.conv3d_ir_1, x_ir.flatten(0, 1), b, t)
        f_vi = self._stem(self.conv3d_vi_1, x_vi.flatten(0, 1), b, t)
        fused1 = self.fusion_enhance_1(self.fusion_1(f_ir, f_vi))
        f_ir, f_vi = self._scale(2, f_ir, f_vi, b, t)
        fused2 = self.fusion_enhance_2(self.fusion_2(f_ir, f_vi))
        f_ir, f_vi = self._scale(3, f_ir, f_vi, b, t)
        fused3 = self.fusion_3(f_ir, f_vi)

        def video(x):
            return x.reshape(b, t, *x.shape[1:])

        fused3 = self.co_attention_3(video(fused3)).flatten(0, 1)
        fused2 = self.co_attention_2(video(self.up2(fused3) + fused2)).flatten(0, 1)
        fused1 = self.co_attention_1(video(self.up1(fused2) + fused1)).flatten(0, 1)
        u_ir, u_vi = self.decomposition(fused1)
        heads = {"fusion": self.decoder_fusion(fused1), "ir": self.decoder_ir(u_ir), "vi": self.decoder_vi(u_vi)}
        return {k: video((torch.tanh(v) + 1) / 2) for k, v in heads.items()}


def build(config: str = "full", **overrides) -> VideoFusion:
    """The released (``"full"``) or the golden's ``"small"`` (16-feature) configuration."""
    return VideoFusion(**{**CONFIGS[config], **overrides})
