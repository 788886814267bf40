"""MagicFuse's frozen latent autoencoder: RGB ``(B, 3, H, W)`` ↔ latent ``(B, 8, H/4, W/4)`` in (0, 1).

Key names match the released ``ae.pth`` (``{'encoder': …, 'decoder': …}``). The encoder is stochastic: 32 channels
of Gaussian noise are concatenated after the second downsampling. The authors draw it with ``torch.randn`` on the
CPU generator inside ``forward``; here it is drawn from ``generator`` (CPU) or passed in as ``noise``, so a run is
reproducible and the authors' first CPU draw after ``torch.manual_seed(s)`` is ``Generator().manual_seed(s)``'s.
"""

from __future__ import annotations

import torch
from torch import nn

NOISE_CHANNELS = 32


def _conv(cin: int, cout: int, act: nn.Module, norm: bool = True, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, 1)]
    if norm:
        layers.append(nn.InstanceNorm2d(cout))
    return nn.Sequential(*layers, act)


def lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2)


class ResNet(nn.Module):
    """Two conv + InstanceNorm + activation layers with an identity shortcut; ``act`` makes the activation."""

    def __init__(self, channels: int, act):
        super().__init__()
        self.blocks = nn.Sequential(_conv(channels, channels, act()), _conv(channels, channels, act()))

    def forward(self, x):
        return self.blocks(x) + x


def _stage(channels: int, act) -> nn.Sequential:
    return nn.Sequential(*(ResNet(channels, act) for _ in range(3)))


class Encoder(nn.Module):
    def __init__(self, channels: int = 32, latent: int = 8):
        super().__init__()
        self.imgconv = _conv(3, channels, lrelu())
        self.resnet1 = _stage(channels, lrelu)
        self.downsample1 = _conv(channels, channels, lrelu(), kernel=4, stride=2)
        self.resnet2 = _stage(channels, lrelu)
        self.downsample2 = _conv(channels, channels, lrelu(), kernel=4, stride=2)
        self.noiseconv = _conv(channels + NOISE_CHANNELS, channels, lrelu())
        self.resnet3 = _stage(channels, lrelu)
        self.out = nn.Sequential(nn.Conv2d(channels, latent, 3, 1, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``noise`` ``(B, 32, H/4, W/4)``, else drawn on the CPU from ``generator`` (the global one when None)."""
        h, w = x.shape[-2:]
        if h % 4 or w % 4:
            raise ValueError(f"MagicFuse's autoencoder needs H and W multiples of 4, found {h}×{w}")
        x = self.downsample1(self.resnet1(self.imgconv(x)))
        x = self.downsample2(self.resnet2(x))
        if noise is None:
            noise = torch.randn((x.shape[0], NOISE_CHANNELS, *x.shape[-2:]), generator=generator)
        x = torch.cat([x, noise.to(device=x.device, dtype=x.dtype)], dim=1)
        return self.out(self.resnet3(self.noiseconv(x)))


class Upsample(nn.Sequential):
    def __init__(self, channels: int):
        super().__init__(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                         nn.Conv2d(channels, channels, 3, 1, 1), nn.ReLU())


class Decoder(nn.Module):
    def __init__(self, channels: int = 32, latent: int = 8):
        super().__init__()
        self.input = _conv(latent, channels, nn.ReLU(), norm=False)
        self.resnet1 = _stage(channels, nn.ReLU)
        self.upsample1 = Upsample(channels)
        self.resnet2 = _stage(channels, nn.ReLU)
        self.upsample2 = Upsample(channels)
        self.resnet3 = _stage(channels, nn.ReLU)
        self.deconv = nn.Sequential(nn.Conv2d(channels, 3, 3, 1, 1), nn.Sigmoid())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.upsample1(self.resnet1(self.input(z)))
        x = self.upsample2(self.resnet2(x))
        return self.deconv(self.resnet3(x))


class AutoEncoder(nn.Module):
    """Both halves under the released checkpoint's two names."""

    def __init__(self):
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()
