"""Loss terms that VideoFusion's and TemCoCo's training recipes share: both released codes compute the same
luminance/chroma split, Sobel gradients, SSIM and "follow the stronger source" terms; each recipe combines them
with its own weights (``videofusion/train.py``, ``temcoco/train.py``). Imported only by the training modules, so
torch loads here at import time."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ycbcr(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(N, 3, H, W)`` RGB in [0, 1] → Y, Cb, Cr ``(N, 1, H, W)``, full-range BT.601, each clamped to [0, 1] as
    released."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.169 * r - 0.331 * g + 0.5 * b + 128.0 / 255.0
    cr = 0.5 * r - 0.419 * g - 0.081 * b + 128.0 / 255.0
    return y.clamp(0, 1), cb.clamp(0, 1), cr.clamp(0, 1)


def sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """|∂x|, |∂y| 3×3 Sobel responses of ``(N, 1, H, W)`` with replicate padding."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype, device=x.device)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(padded, kx[None, None]).abs(), F.conv2d(padded, kx.t()[None, None]).abs()


def ssim(reference: torch.Tensor, x: torch.Tensor, size: int = 13, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM, Gaussian window without padding, per channel; the dynamic range L is read from ``reference``
    (255 or 1, with a −1 offset for [−1, 1] data), as released."""
    high = 255.0 if reference.max() > 128 else 1.0
    low = -1.0 if reference.min() < -0.5 else 0.0
    c1, c2 = (0.01 * (high - low)) ** 2, (0.03 * (high - low)) ** 2
    coords = torch.arange(size, dtype=x.dtype, device=x.device) - size // 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    n = x.shape[1]
    window = (g[:, None] * g[None, :]).expand(n, 1, size, size)

    def blur(z):
        return F.conv2d(z, window, groups=n)

    mu1, mu2 = blur(reference), blur(x)
    s11, s22, s12 = blur(reference * reference) - mu1**2, blur(x * x) - mu2**2, blur(reference * x) - mu1 * mu2
    return (((2 * mu1 * mu2 + c1) * (2 * s12 + c2)) / ((mu1**2 + mu2**2 + c1) * (s11 + s22 + c2))).mean()


def max_intensity_loss(y_f: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor) -> torch.Tensor:
    """L1 between the fused luminance and the brighter source at each pixel."""
    return F.l1_loss(y_f, torch.maximum(y_a, y_b))


def colour_loss(cb_f: torch.Tensor, cr_f: torch.Tensor, cb_vi: torch.Tensor, cr_vi: torch.Tensor) -> torch.Tensor:
    """L1 of both chroma planes against the visible frame's."""
    return F.l1_loss(cb_f, cb_vi) + F.l1_loss(cr_f, cr_vi)


def max_gradient_loss(grad_f: tuple, grad_a: tuple, grad_b: tuple) -> torch.Tensor:
    """L1 between the fused :func:`sobel` magnitudes and the larger of the two sources', per direction.

    Takes the Sobel pairs rather than the images so each recipe computes them where its released code does:
    autograd sums gradients in the order the graph was built, and the recipes' gradients stay bit-identical."""
    (gx_f, gy_f), (gx_a, gy_a), (gx_b, gy_b) = grad_f, grad_a, grad_b
    return F.l1_loss(gx_f, torch.maximum(gx_a, gx_b)) + F.l1_loss(gy_f, torch.maximum(gy_a, gy_b))
