"""Deformable convolution (DCNv1, optional DCNv2 mask) in pure torch, with torchvision's exact semantics.

TemCoCo's released code uses a CUDA-only BasicSR extension; the golden comparison (test_temcoco) shows it equals
``torchvision.ops.deform_conv2d`` exactly. torchvision is an optional dependency here, so :func:`deform_conv2d`
uses it when importable and otherwise :func:`deform_conv2d_torch`: ``grid_sample`` (bilinear, zero padding,
``align_corners=True``) at the tap positions, then one grouped matrix product. ``grid_sample``'s rule that each
corner outside the image reads zero is the DCN rule; positions pass through its [−1, 1] normalisation, which
costs a few ulps (~1e-16 in float64, far below the goldens' tolerances).

Layout, as torchvision: ``offset`` is ``(B, 2·G·kh·kw, Ho, Wo)`` with channel ``g·2K + 2k`` the row offset ``dy``
and ``+1`` the column offset ``dx`` of kernel tap ``k = i·kw + j`` in deformable group ``g`` (input channels split
into ``G`` contiguous groups); ``mask`` is ``(B, G·K, Ho, Wo)`` with channel ``g·K + k``. A tap samples
``(ho·sh − ph + i·dh + dy, wo·sw − pw + j·dw + dx)``; it is zero unless strictly inside ``(−1, H)×(−1, W)``, and
each bilinear corner outside the image contributes zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

try:  # pragma: no cover - depends on the environment
    from torchvision.ops import deform_conv2d as _tv_deform_conv2d
except Exception:  # noqa: BLE001 - any import failure means "not available"
    _tv_deform_conv2d = None

HAVE_TORCHVISION = _tv_deform_conv2d is not None


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def deform_conv2d(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    """torchvision's ``deform_conv2d`` when it is installed, else the pure-torch version (same arguments)."""
    if _tv_deform_conv2d is not None:
        return _tv_deform_conv2d(x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation,
                                 mask=mask)
    return deform_conv2d_torch(x, offset, weight, bias, stride, padding, dilation, mask)


def deform_conv2d_torch(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None):
    """Deformable convolution: bilinear samples at the offset taps, then one grouped matrix product."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    b, c, h, w = x.shape
    out_ch, c_per_group, kh, kw = weight.shape
    k = kh * kw
    if c % c_per_group:
        raise ValueError(f"input channels {c} are not a multiple of the weight's {c_per_group} per group")
    groups = c // c_per_group
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if offset.shape[1] % (2 * k) or offset.shape[2:] != (ho, wo):
        raise ValueError(f"offset of shape {tuple(offset.shape)} does not fit output {ho}×{wo} and {k} taps")
    dgroups = offset.shape[1] // (2 * k)
    if c % dgroups:
        raise ValueError(f"input channels {c} are not a multiple of {dgroups} offset groups")
    cg = c // dgroups

    # Sample positions of every tap, in input pixels; one zero pixel of padding on each side keeps the
    # align_corners normalisation defined for 1-pixel inputs and changes nothing (outside is zero either way).
    dev, dt = x.device, x.dtype
    off = offset.reshape(b, dgroups, k, 2, ho, wo).to(dt)
    tap_y = (torch.arange(kh, device=dev, dtype=dt) * dh).repeat_interleave(kw).view(1, 1, k, 1, 1)
    tap_x = (torch.arange(kw, device=dev, dtype=dt) * dw).repeat(kh).view(1, 1, k, 1, 1)
    py = tap_y + (torch.arange(ho, device=dev, dtype=dt) * sh - ph + 1).view(1, 1, 1, ho, 1) + off[:, :, :, 0]
    px = tap_x + (torch.arange(wo, device=dev, dtype=dt) * sw - pw + 1).view(1, 1, 1, 1, wo) + off[:, :, :, 1]
    grid = torch.stack([px * (2.0 / (w + 1)) - 1, py * (2.0 / (h + 1)) - 1], dim=-1)
    # bilinear with every corner outside the image reading zero: exactly the DCN rule, including that a point
    # outside (−1, H)×(−1, W) gives zero (all four of its corners are outside)
    padded = F.pad(x, (1, 1, 1, 1)).reshape(b * dgroups, cg, h + 2, w + 2)
    cols = F.grid_sample(padded, grid.reshape(b * dgroups, k * ho, wo, 2), mode="bilinear", padding_mode="zeros",
                         align_corners=True)  # (B·G, cg, K·Ho, Wo)
    cols = cols.reshape(b, dgroups, cg, k, ho * wo)
    if mask is not None:
        cols = cols * mask.reshape(b, dgroups, 1, k, ho * wo).to(cols.dtype)
    # columns: (B, C·K, L) with row c·K + k, as the weight flattens (out, c_per_group·K)
    cols = cols.reshape(b, groups, c_per_group * k, ho * wo)
    out = torch.matmul(weight.reshape(groups, out_ch // groups, c_per_group * k), cols)
    out = out.reshape(b, out_ch, ho, wo)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out
