"""TemCoCo's network (``archs/Net.py`` class ``Fusion``), re-implemented from a reading of the released code.

Module and attribute names follow the released state dict (371 keys, 19,213,417 parameters), so the authors'
``VideoFusionNet_495000.pth`` loads with ``strict=True``. The network is not configurable: widths 32/64/128, the
1024 semantic channels (DINOv2 ViT-L width) and the (2, 8, 8) attention window are fixed by the checkpoint.

Reproduced on purpose because the released weights were trained with them:

- :class:`Branch_Seg` turns its transposed-conv output ``((b t), c, h, w)`` back with a ``reshape`` to
  ``(b, c, t, h, w)``, not a permute, mixing channel and time for ``T > 1`` (new channel ``c2``, time ``t2`` holds
  old time ``t``, channel ``c`` with ``t·C + c = c2·T + t2``); a "fixed" permute moves the golden output by 4e-3;
- :class:`VI_TDCN` concatenates ``[x, IR, VIS]`` (the official call swaps the parameter names), aligns causally
  (frames ``i−1`` and ``i−2``; frames 0 and 1 use themselves as both neighbours), and DCN_2 adds DCN_1's offsets
  upsampled ×2 without doubling the displacement values;
- window attention zero-pads after its LayerNorm, and padded tokens take part as keys;
- the output is LeakyReLU-activated, unbounded: callers clamp.

The deformable convolutions (BasicSR DCNv1: no mask, no bias, 8 offset groups, offset channel
``g·18 + 2·(i·3+j) + {0: dy, 1: dx}``) run through :func:`.deform.deform_conv2d`: torchvision's op when installed,
else a pure-torch equivalent, so CPU and GPU both work. Verified against the golden of the official code
(``tests/test_temcoco.py``): float32 within 2e-7, float64 within 4e-16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from m3svd.methods.temcoco.deform import deform_conv2d

WINDOW = (2, 8, 8)
SIZE_MULTIPLE = 16  # H/4 goes through a stride-4 conv and a transposed conv and must come back unchanged


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class Conv3DModule(nn.Module):
    def __init__(self, cin: int, cout: int, kernel, stride, padding):
        super().__init__()
        self.conv3d = nn.Conv3d(cin, cout, kernel, stride, padding, bias=True)
        self.act = _lrelu()

    def forward(self, x):
        return self.act(self.conv3d(x))


class Separable3DConv(nn.Module):
    """A 1×3×3 spatial conv (with stride) then a 3×1×1 temporal conv, zero-padded in time."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.spatial_conv = Conv3DModule(cin, cout, (1, 3, 3), (1, stride, stride), (0, 1, 1))
        self.depth_conv = Conv3DModule(cout, cout, (3, 1, 1), 1, (1, 0, 0))

    def forward(self, x):
        return self.depth_conv(self.spatial_conv(x))


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.main_branch = nn.Sequential(Separable3DConv(c, c))

    def forward(self, x):
        return self.main_branch(x) + x


def conv_resblock_two(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(Separable3DConv(cin, cout, stride), ResBlock(cout), ResBlock(cout))


class Encoder_v3(nn.Module):  # noqa: N801 - released name
    """Three scales ``[f1 (32, H), f2 (64, H/2), f3 (128, H/4)]``, all ``(b, c, t, h, w)``."""

    def __init__(self, cin: int = 3, nf: int = 32):
        super().__init__()
        self.conv0 = Separable3DConv(cin, nf)
        self.conv1 = conv_resblock_two(nf, nf)
        self.conv2 = conv_resblock_two(nf, 2 * nf, 2)
        self.conv3 = conv_resblock_two(2 * nf, 4 * nf, 2)

    def forward(self, x):
        f1 = self.conv1(self.conv0(x))
        f2 = self.conv2(f1)
        return [f1, f2, self.conv3(f2)]


class Decoder_v3(nn.Module):  # noqa: N801 - released name
    def __init__(self, nf: int = 32, cout: int = 3):
        super().__init__()
        self.conv0 = Separable3DConv(nf, cout)

    def forward(self, x):
        return self.conv0(x)


class Branch_Seg(nn.Module):  # noqa: N801 - released name
    """Semantic branch; its 1024-channel ``seg_output`` (1/16 resolution) is distilled from DINOv2."""

    def __init__(self, nf: int = 128, seg_channels: int = 1024):
        super().__init__()
        self.conv1 = nn.Sequential(conv_resblock_two(nf, nf))
        self.down = nn.Conv2d(nf, seg_channels, 3, stride=4, padding=0)
        self.up = nn.ConvTranspose2d(seg_channels, nf, 3, stride=4, output_padding=1)
        self.conv2 = nn.Sequential(conv_resblock_two(2 * nf, nf))

    def forward(self, x):
        f1 = self.conv1(x)
        b, c, t, h, w = f1.shape
        seg_output = self.down(f1.transpose(1, 2).reshape(b * t, c, h, w))
        f2 = self.up(seg_output)
        # The quirk: memory order (b, t, c, h, w) re-read as (b, c, t, h, w). Kept: the weights depend on it.
        f2 = torch.reshape(f2.contiguous(), f1.shape)
        return self.conv2(torch.cat([f2, f1], dim=1)), seg_output


class Branch_Visual(nn.Module):  # noqa: N801 - released name
    """Visual branch; its 256-channel ``vis_output`` (1/4 resolution) is distilled from VGG19 relu3_1."""

    def __init__(self, nf: int = 128):
        super().__init__()
        self.conv1 = conv_resblock_two(nf, 2 * nf)
        self.conv2 = conv_resblock_two(2 * nf, nf)

    def forward(self, x):
        vis_output = self.conv1(x)
        return self.conv2(vis_output), vis_output


def relative_position_index(window=WINDOW) -> torch.Tensor:
    """3-D relative position index of a window: ``Δd·(2Wh−1)(2Ww−1) + Δh·(2Ww−1) + Δw`` after shifting Δ ≥ 0."""
    wd, wh, ww = window
    coords = torch.stack(torch.meshgrid(torch.arange(wd), torch.arange(wh), torch.arange(ww), indexing="ij"))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    rel = rel + torch.tensor([wd - 1, wh - 1, ww - 1])
    return rel[..., 0] * (2 * wh - 1) * (2 * ww - 1) + rel[..., 1] * (2 * ww - 1) + rel[..., 2]


class WindowCrossAttention(nn.Module):
    """Queries from ``x``, keys and values from ``y``, within one window, with a learned relative position bias."""

    def __init__(self, dim: int, window=WINDOW, heads: int = 4):
        super().__init__()
        self.heads, self.window = heads, tuple(window)
        wd, wh, ww = window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wd - 1) * (2 * wh - 1) * (2 * ww - 1), heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x, y):
        bw, n, c = x.shape
        hd = c // self.heads
        q = self.q(x).reshape(bw, n, self.heads, hd).transpose(1, 2)
        k, v = self.kv(y).reshape(bw, n, 2, self.heads, hd).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index[:n, :n].reshape(-1)]
        bias = bias.reshape(n, n, self.heads).permute(2, 0, 1).unsqueeze(0).to(q.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # default scale = hd^-0.5, as released
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def _windows(x, window):
    b, t, h, w, c = x.shape
    wd, wh, ww = window
    x = x.view(b, t // wd, wd, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 5, 2, 4, 6, 7)
    return x.reshape(-1, wd * wh * ww, c)


def _unwindows(x, window, b, t, h, w):
    wd, wh, ww = window
    c = x.shape[-1]
    x = x.view(b, t // wd, h // wh, w // ww, wd, wh, ww, c).permute(0, 1, 4, 2, 5, 3, 6, 7)
    return x.reshape(b, t, h, w, c)


class SwinTransformerBlock(nn.Module):
    """Video-Swin block without shift, cross-attending ``x`` to ``y``; tensors are ``(b, t, h, w, c)``."""

    def __init__(self, dim: int, window=WINDOW, heads: int = 4, mlp_ratio: float = 4.0):
        super().__init__()
        self.window = tuple(window)
        self.norm1 = nn.LayerNorm(dim)
        self.norm1y = nn.LayerNorm(dim)
        self.attn = WindowCrossAttention(dim, window, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, y):
        shortcut = x
        b, t, h, w, _ = x.shape
        x, y = self.norm1(x), self.norm1y(y)
        wd, wh, ww = self.window
        pad = (0, 0, 0, (ww - w % ww) % ww, 0, (wh - h % wh) % wh, 0, (wd - t % wd) % wd)
        if any(pad):  # zeros after the norm: padded tokens are attended to, as released
            x, y = F.pad(x, pad), F.pad(y, pad)
        tp, hp, wp = x.shape[1:4]
        out = self.attn(_windows(x, self.window), _windows(y, self.window))
        x = _unwindows(out, self.window, b, tp, hp, wp)[:, :t, :h, :w]
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class CombineAttn(nn.Module):
    """Two window cross-attentions: x attends to y, then y attends to the already updated x."""

    def __init__(self, dim: int, window=WINDOW, heads: int = 4):
        super().__init__()
        self.blocks_CAx = SwinTransformerBlock(dim, window, heads)
        self.blocks_CAy = SwinTransformerBlock(dim, window, heads)

    def forward(self, x, y):
        x, y = x.permute(0, 2, 3, 4, 1), y.permute(0, 2, 3, 4, 1)
        x = self.blocks_CAx(x, y)
        y = self.blocks_CAy(y, x)
        return x.permute(0, 4, 1, 2, 3), y.permute(0, 4, 1, 2, 3)


class CrossAttention(nn.Module):
    """Temporal self-attention per pixel over the whole window (no positional encoding), residual un-normed."""

    def __init__(self, query_dim: int = 128, heads: int = 8, dim_head: int = 64):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.norm = nn.LayerNorm(query_dim)
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(query_dim, inner, bias=False)
        self.to_v = nn.Linear(query_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x):
        b, c, t, h, w = x.shape
        tokens = x.permute(0, 3, 4, 2, 1).reshape(b * h * w, t, c)
        normed = self.norm(tokens)

        def split(z):
            return z.reshape(b * h * w, t, self.heads, -1).transpose(1, 2)

        q, k, v = split(self.to_q(normed)), split(self.to_k(normed)), split(self.to_v(normed))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * h * w, t, -1)
        out = self.to_out(out) + tokens
        return out.reshape(b, h, w, t, c).permute(0, 4, 3, 1, 2)


class Branch_and_Combine(nn.Module):  # noqa: N801 - released name
    """Visual–semantic interaction at 1/4 resolution: branches, cross-modality and cross-branch attention, then
    temporal attention."""

    def __init__(self, nf: int = 128, window=WINDOW):
        super().__init__()
        self.Branch_s1 = Branch_Seg(nf)  # visible
        self.Branch_v1 = Branch_Visual(nf)
        self.Branch_s2 = Branch_Seg(nf)  # infrared
        self.Branch_v2 = Branch_Visual(nf)
        self.combine_seg = CombineAttn(nf, window)
        self.combine_vis = CombineAttn(nf, window)
        self.SegVisAttn = CombineAttn(2 * nf, window)
        self.combine = conv_resblock_two(4 * nf, nf)
        self.attn_temp = CrossAttention(nf)

    def forward(self, ir, vi):
        vi_seg, vi_seg_out = self.Branch_s1(vi)
        vi_vis, vi_vis_out = self.Branch_v1(vi)
        ir_seg, ir_seg_out = self.Branch_s2(ir)
        ir_vis, ir_vis_out = self.Branch_v2(ir)
        vi_seg, ir_seg = self.combine_seg(vi_seg, ir_seg)
        vi_vis, ir_vis = self.combine_vis(vi_vis, ir_vis)
        a_seg, a_vis = self.SegVisAttn(torch.cat([vi_seg, ir_seg], 1), torch.cat([vi_vis, ir_vis], 1))
        feat = self.attn_temp(self.combine(torch.cat([a_seg, a_vis], 1)))
        return feat, [ir_seg_out, ir_vis_out], [vi_seg_out, vi_vis_out]


class DeformConv(nn.Module):
    """DCNv1 (no mask, no bias) as released: 3×3, padding 1, 8 offset groups, ``groups = channels/8``."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, padding: int = 1, groups: int = 1,
                 deformable_groups: int = 8):
        super().__init__()
        self.padding, self.deformable_groups = padding, deformable_groups
        self.weight = nn.Parameter(torch.empty(cout, cin // groups, kernel, kernel))
        bound = 1.0 / (cin * kernel * kernel) ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x, offset):
        k = self.weight.shape[-1]
        h, w = x.shape[-2:]
        ph, pw = max(0, k - h), max(0, k - w)
        if ph or pw:  # BasicSR pads inputs smaller than the kernel and crops the result back
            x = F.pad(x, (0, pw, 0, ph))
            offset = F.pad(offset, (0, pw, 0, ph))
        out = deform_conv2d(x, offset, self.weight, None, stride=1, padding=self.padding, dilation=1)
        return out[..., :h, :w]


def _conv_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), _lrelu())


class VI_TDCN(nn.Module):  # noqa: N801 - released name
    """Temporal cooperative module: upsample ×2, align neighbours ``t−1``, ``t−2`` by deformable conv, fuse."""

    def __init__(self, embed_dim: int):
        super().__init__()
        c = embed_dim // 2
        offsets = 2 * 9 * 8
        self.ConvTrans = nn.Conv3d(embed_dim, c, 1)  # a 1×1×1 conv despite the name
        self.cross_modality = _conv_act(3 * c, c)
        self.cross_frame = _conv_act(3 * c, c)
        self.cross_frame2 = _conv_act(3 * c, c)
        self.temporary_cat = _conv_act(2 * c, c)
        self.temporary_cat2 = _conv_act(2 * c, c)
        self.before_offsets = nn.Conv2d(c, c, 3, 1, 1)
        self.before_offsets2 = nn.Conv2d(c, c, 3, 1, 1)
        self.off2d_1 = nn.Conv2d(c, offsets, 3, 1, 1)
        self.off2d_2 = nn.Conv2d(c, offsets, 3, 1, 1)
        self.dconv_1 = DeformConv(c, c, groups=c // 8, deformable_groups=8)
        self.dconv_2 = DeformConv(c, c, groups=c // 8, deformable_groups=8)
        self.fuse_neighb = _conv_act(2 * c, c)
        self.fuse_feature = Separable3DConv(2 * c, c)

    def align(self, x, ir, vi, out, offsets=None, keep_offsets=True):
        """Per frame ``i``: features ``[x, IR, VIS]`` of frames ``i`` (reference), ``i−1`` and ``i−2`` (neighbours).

        Frame ``i``'s aligned features are written to ``out[:, :, i]`` (no per-frame list to stack and concatenate:
        at full resolution every copy costs ~128 bytes per pixel and frame). Returns ``[offset1, offset2]`` per
        frame when ``keep_offsets`` (DCN_1's, for DCN_2), else nothing (~1.2 kB per pixel and frame saved).
        """
        returned = []
        for i in range(x.shape[1]):
            j1, j2 = (i - 1, i - 2) if i >= 2 else (i, i)
            fea = self.cross_modality(torch.cat([x[:, i], ir[:, i], vi[:, i]], 1))
            feats, pair = [], []
            for j, cross, cat, before, off2d, dconv, slot in (
                (j1, self.cross_frame, self.temporary_cat, self.before_offsets, self.off2d_1, self.dconv_1, 0),
                (j2, self.cross_frame2, self.temporary_cat2, self.before_offsets2, self.off2d_2, self.dconv_2, 1),
            ):
                nfea = cross(torch.cat([x[:, j], ir[:, j], vi[:, j]], 1))
                offset = off2d(before(cat(torch.cat([fea, nfea], 1))))
                if offsets is not None:  # DCN_2: coarse offsets, upsampled but not doubled (as released)
                    offset = offset + F.interpolate(offsets[i][slot], scale_factor=2, mode="nearest")
                feats.append(dconv(nfea, offset))
                if keep_offsets:
                    pair.append(offset)
            out[:, :, i] = self.fuse_neighb(torch.cat(feats, 1))
            if keep_offsets:
                returned.append(pair)
        return returned

    def forward(self, x, ir, vi, offsets=None, keep_offsets=True):
        """``x`` ``(b, E, t, h, w)``; ``ir``, ``vi`` ``(b, t, E/2, 2h, 2w)`` → ``(b, E/2, t, 2h, 2w)``, offsets."""
        x = F.interpolate(self.ConvTrans(x), scale_factor=(1, 2, 2), mode="nearest")
        b, c, t, h, w = x.shape
        both = x.new_empty(b, 2 * c, t, h, w)  # cat[x, aligned] over channels, filled in place
        both[:, :c] = x
        offs = self.align(x.transpose(1, 2), ir, vi, both[:, c:], offsets, keep_offsets)
        return self.fuse_feature(both) + x, offs


class Fusion(nn.Module):
    """``fused, ir_feat, vi_feat = Fusion()(ir, vis)``: inputs ``(B, T, 3, H, W)`` RGB in [0, 1], IR first.

    ``fused`` is ``(B, 3, T, H, W)`` (channels before time), unbounded; ``*_feat = [seg_out, visual_out]`` are the
    distillation heads. H and W must be multiples of 16.
    """

    def __init__(self, n_feat: int = 32):
        super().__init__()
        if n_feat != 32:
            raise ValueError("TemCoCo's widths are fixed by the released weights: n_feat must be 32")
        self.Enc_ir = Encoder_v3(3, n_feat)
        self.Enc_vis = Encoder_v3(3, n_feat)
        self.SegBranchCombine = Branch_and_Combine(4 * n_feat)
        self.DCN_1 = VI_TDCN(4 * n_feat)
        self.DCN_2 = VI_TDCN(2 * n_feat)
        self.dec = Decoder_v3(n_feat, 3)

    def forward(self, ir, vis):
        h, w = ir.shape[-2:]
        if h % SIZE_MULTIPLE or w % SIZE_MULTIPLE or vis.shape != ir.shape:
            raise ValueError(f"TemCoCo needs IR and VIS of one size with H, W multiples of {SIZE_MULTIPLE}, "
                             f"found {tuple(ir.shape)} and {tuple(vis.shape)}")
        f_ir = self.Enc_ir(ir.transpose(1, 2))
        f_vis = self.Enc_vis(vis.transpose(1, 2))
        feat, ir_feat, vi_feat = self.SegBranchCombine(f_ir[2], f_vis[2])
        out, offsets = self.DCN_1(feat, f_ir[1].transpose(1, 2), f_vis[1].transpose(1, 2))
        out, _ = self.DCN_2(out, f_ir[0].transpose(1, 2), f_vis[0].transpose(1, 2), offsets, keep_offsets=False)
        return self.dec(out), ir_feat, vi_feat
