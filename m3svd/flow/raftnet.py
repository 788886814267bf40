"""RAFT (Teed & Deng, ECCV 2020) in plain torch, with torchvision's module layout and ``state_dict`` key names.

torchvision is not a dependency, but its RAFT checkpoints (``raft_large_C_T_SKHT_V2-ff5fadd5.pth``,
``raft_small_C_T_V2-01064c6d.pth``, …) are the common offline RAFT weights, so this module reproduces
``torchvision.models.optical_flow.raft`` layer for layer (same names, same parameter counts: large 5,257,536,
small 990,162) and loads those files with a strict key match. Inputs are RGB in [-1, 1]; sizes must be multiples
of 8 (the estimator in :mod:`m3svd.flow` pads).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(cin, cout, k, stride=1, norm=None, act=True, bias=None) -> nn.Sequential:
    """torchvision's ``Conv2dNormActivation``: conv (index 0), optional norm, optional ReLU, 'same' padding."""
    layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=(norm is None) if bias is None else bias)]
    if norm is not None:
        layers.append(norm(cout))
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, cin, cout, *, norm, stride=1):
        super().__init__()
        self.convnormrelu1 = conv_block(cin, cout, 3, stride, norm, bias=True)
        self.convnormrelu2 = conv_block(cout, cout, 3, 1, norm, bias=True)
        self.downsample = nn.Identity() if stride == 1 else conv_block(cin, cout, 1, stride, norm, act=False,
                                                                         bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.downsample(x) + self.convnormrelu2(self.convnormrelu1(x)))


class BottleneckBlock(nn.Module):
    def __init__(self, cin, cout, *, norm, stride=1):
        super().__init__()
        self.convnormrelu1 = conv_block(cin, cout // 4, 1, 1, norm, bias=True)
        self.convnormrelu2 = conv_block(cout // 4, cout // 4, 3, stride, norm, bias=True)
        self.convnormrelu3 = conv_block(cout // 4, cout, 1, 1, norm, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = nn.Identity() if stride == 1 else conv_block(cin, cout, 1, stride, norm, act=False,
                                                                         bias=True)

    def forward(self, x):
        y = self.convnormrelu3(self.convnormrelu2(self.convnormrelu1(x)))
        return self.relu(self.downsample(x) + y)


class FeatureEncoder(nn.Module):
    """Feature or context encoder: downsamples by 8 (strides 2, 1, 2, 2)."""

    def __init__(self, block, layers, norm, strides=(2, 1, 2, 2)):
        super().__init__()
        self.convnormrelu = conv_block(3, layers[0], 7, strides[0], norm, bias=True)
        for i in range(3):
            blocks = [block(layers[i], layers[i + 1], norm=norm, stride=strides[i + 1]),
                      block(layers[i + 1], layers[i + 1], norm=norm, stride=1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.conv = nn.Conv2d(layers[3], layers[4], kernel_size=1)

    def forward(self, x):
        return self.conv(self.layer3(self.layer2(self.layer1(self.convnormrelu(x)))))


class MotionEncoder(nn.Module):
    def __init__(self, corr_channels, corr_layers, flow_layers, out_channels):
        super().__init__()
        self.convcorr1 = conv_block(corr_channels, corr_layers[0], 1)
        self.convcorr2 = conv_block(corr_layers[0], corr_layers[1], 3) if len(corr_layers) == 2 else nn.Identity()
        self.convflow1 = conv_block(2, flow_layers[0], 7)
        self.convflow2 = conv_block(flow_layers[0], flow_layers[1], 3)
        self.conv = conv_block(corr_layers[-1] + flow_layers[-1], out_channels - 2, 3)
        self.out_channels = out_channels

    def forward(self, flow, corr):
        corr = self.convcorr2(self.convcorr1(corr))
        motion = self.conv(torch.cat([corr, self.convflow2(self.convflow1(flow))], dim=1))
        return torch.cat([motion, flow], dim=1)


class ConvGRU(nn.Module):
    def __init__(self, input_size, hidden_size, kernel_size, padding):
        super().__init__()
        for gate in ("convz", "convr", "convq"):
            setattr(self, gate, nn.Conv2d(hidden_size + input_size, hidden_size, kernel_size, padding=padding))

    def forward(self, h, x):
        hx = torch.cat([h, x], dim=1)
        z, r = torch.sigmoid(self.convz(hx)), torch.sigmoid(self.convr(hx))
        q = torch.tanh(self.convq(torch.cat([r * h, x], dim=1)))
        return (1 - z) * h + z * q


class RecurrentBlock(nn.Module):
    def __init__(self, input_size, hidden_size, kernel_size, padding):
        super().__init__()
        self.convgru1 = ConvGRU(input_size, hidden_size, kernel_size[0], padding[0])
        self.convgru2 = ConvGRU(input_size, hidden_size, kernel_size[1], padding[1]) if len(kernel_size) == 2 else None
        self.hidden_size = hidden_size

    def forward(self, h, x):
        h = self.convgru1(h, x)
        return h if self.convgru2 is None else self.convgru2(h, x)


class FlowHead(nn.Module):
    def __init__(self, in_channels, hidden_size):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, hidden_size, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden_size, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.conv2(self.relu(self.conv1(x)))


class UpdateBlock(nn.Module):
    def __init__(self, motion_encoder, recurrent_block, flow_head):
        super().__init__()
        self.motion_encoder, self.recurrent_block, self.flow_head = motion_encoder, recurrent_block, flow_head
        self.hidden_state_size = recurrent_block.hidden_size

    def forward(self, h, context, corr, flow):
        h = self.recurrent_block(h, torch.cat([context, self.motion_encoder(flow, corr)], dim=1))
        return h, self.flow_head(h)


class MaskPredictor(nn.Module):
    def __init__(self, in_channels, hidden_size, multiplier=0.25):
        super().__init__()
        self.convrelu = conv_block(in_channels, hidden_size, 3)
        self.conv = nn.Conv2d(hidden_size, 8 * 8 * 9, 1, padding=0)
        self.multiplier = multiplier

    def forward(self, x):
        return self.multiplier * self.conv(self.convrelu(x))


def _sample(img, coords):
    """Bilinear sample of ``img`` at absolute pixel coordinates (x, y), align_corners=True, zero outside."""
    h, w = img.shape[-2:]
    x, y = coords.split([1, 1], dim=-1)
    grid = torch.cat([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1 if h > 1 else y], dim=-1)
    return F.grid_sample(img, grid, mode="bilinear", align_corners=True)


class CorrBlock(nn.Module):
    """All-pairs correlation pyramid, looked up in a (2r+1)² window per level (torchvision's index order)."""

    def __init__(self, num_levels=4, radius=4):
        super().__init__()
        self.num_levels, self.radius = num_levels, radius
        self.out_channels = num_levels * (2 * radius + 1) ** 2
        self.pyramid: list[torch.Tensor] = []

    def build_pyramid(self, f1, f2):
        b, c, h, w = f1.shape
        corr = torch.matmul(f1.view(b, c, h * w).transpose(1, 2), f2.view(b, c, h * w)) / torch.sqrt(torch.tensor(c))
        corr = corr.reshape(b * h * w, 1, h, w)
        self.pyramid = [corr]
        for _ in range(self.num_levels - 1):
            corr = F.avg_pool2d(corr, kernel_size=2, stride=2)
            self.pyramid.append(corr)

    def index_pyramid(self, coords):
        side = 2 * self.radius + 1
        d = torch.linspace(-self.radius, self.radius, side, device=coords.device)
        # torchvision stacks meshgrid(ij) as (x, y): the first window index moves x; weights depend on that order
        delta = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1).view(1, side, side, 2)
        b, _, h, w = coords.shape
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = []
        for corr in self.pyramid:
            out.append(_sample(corr, centre + delta).view(b, h, w, -1))
            centre = centre / 2
        return torch.cat(out, dim=-1).permute(0, 3, 1, 2).contiguous()


def coords_grid(b, h, w, device):
    ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    return torch.stack([xs, ys], dim=0).float()[None].repeat(b, 1, 1, 1)


def upsample_flow(flow, mask=None, factor=8):
    b, c, h, w = flow.shape
    if mask is None:
        return factor * F.interpolate(flow, size=(h * factor, w * factor), mode="bilinear", align_corners=True)
    mask = torch.softmax(mask.view(b, 1, 9, factor, factor, h, w), dim=2)
    patches = F.unfold(factor * flow, kernel_size=3, padding=1).view(b, c, 9, 1, 1, h, w)
    up = torch.sum(mask * patches, dim=2)
    return up.permute(0, 1, 4, 2, 5, 3).reshape(b, c, h * factor, w * factor)


class RAFT(nn.Module):
    def __init__(self, feature_encoder, context_encoder, corr_block, update_block, mask_predictor=None):
        super().__init__()
        self.feature_encoder, self.context_encoder = feature_encoder, context_encoder
        self.corr_block, self.update_block, self.mask_predictor = corr_block, update_block, mask_predictor

    def forward(self, image1, image2, num_flow_updates: int = 12) -> list[torch.Tensor]:
        """Flow predictions (one per update, full resolution) from ``image1`` to ``image2``, both B×3×H×W."""
        b, _, h, w = image1.shape
        if h % 8 or w % 8:
            raise ValueError(f"RAFT: frame size {h}×{w} must be a multiple of 8")
        f1, f2 = torch.chunk(self.feature_encoder(torch.cat([image1, image2], dim=0)), 2, dim=0)
        self.corr_block.build_pyramid(f1, f2)
        ctx = self.context_encoder(image1)
        hs = self.update_block.hidden_state_size
        hidden, context = torch.split(ctx, [hs, ctx.shape[1] - hs], dim=1)
        hidden, context = torch.tanh(hidden), F.relu(context)
        coords0 = coords_grid(b, h // 8, w // 8, image1.device)
        coords1 = coords0.clone()
        out = []
        for _ in range(num_flow_updates):
            coords1 = coords1.detach()
            corr = self.corr_block.index_pyramid(coords1)
            hidden, delta = self.update_block(hidden, context, corr, coords1 - coords0)
            coords1 = coords1 + delta
            mask = None if self.mask_predictor is None else self.mask_predictor(hidden)
            out.append(upsample_flow(coords1 - coords0, mask))
        return out


def raft_large() -> RAFT:
    feat = FeatureEncoder(ResidualBlock, (64, 64, 96, 128, 256), nn.InstanceNorm2d)
    ctx = FeatureEncoder(ResidualBlock, (64, 64, 96, 128, 256), nn.BatchNorm2d)
    corr = CorrBlock(4, 4)
    motion = MotionEncoder(corr.out_channels, (256, 192), (128, 64), 128)
    rec = RecurrentBlock(motion.out_channels + 256 - 128, 128, ((1, 5), (5, 1)), ((0, 2), (2, 0)))
    update = UpdateBlock(motion, rec, FlowHead(128, 256))
    return RAFT(feat, ctx, corr, update, MaskPredictor(128, 256))


def raft_small() -> RAFT:
    feat = FeatureEncoder(BottleneckBlock, (32, 32, 64, 96, 128), nn.InstanceNorm2d)
    ctx = FeatureEncoder(BottleneckBlock, (32, 32, 64, 96, 160), None)
    corr = CorrBlock(4, 3)
    motion = MotionEncoder(corr.out_channels, (96,), (64, 32), 82)
    rec = RecurrentBlock(motion.out_channels + 160 - 96, 96, ((3, 3),), ((1, 1),))
    update = UpdateBlock(motion, rec, FlowHead(96, 128))
    return RAFT(feat, ctx, corr, update, None)


ARCHITECTURES = {"large": raft_large, "small": raft_small}
# torchvision's file names (download.pytorch.org/models/<name>): the defaults looked up in the weight folders
DEFAULT_FILES = {"large": "raft_large_C_T_SKHT_V2-ff5fadd5.pth", "small": "raft_small_C_T_V2-01064c6d.pth"}
