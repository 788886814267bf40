"""TemCoCo (Gong et al., ICCV 2025): temporally consistent IR/VIS video fusion, checkpoint-compatible port.

Inference protocol: windows of 30 frames overlapping by 5 (stride 25), each run independently, every
frame taken from the last window containing it. Two tail rules:

- ``windowing="end-aligned"`` (default): the last window is a full 30 frames ending at the clip's end, as every
  ``m3svd`` method does, so no frame is fused in a short window (the temporal attention sees the whole window).
- ``windowing="official"``: ``test_folder.py``'s clips 25k…25k+29 for k < ⌊(N−5)/25⌋, then one extra clip holding
  **only the last r = (N−5) mod 25 frames**, fused alone. Its frames are placed at their true positions (the
  official reassembly writes them 5 frames early); the 205-frame truncation is left to the protocol.

Frames are padded bottom/right to multiples of 16 (reflection) and cropped back; the official test ran only at
640×480, which needs none. Inputs are RGB in [0, 1] with IR as three equal channels; the unbounded output is
clamped to [0, 1] and rounded to uint8 RGB. DINOv2 and VGG19 are used only by :mod:`.train`.
Options ``window``/``overlap`` (default 30/5) change the window for experiments and short tests; results with
other values are not the published protocol, and every result row records them.

Cost: the network is 19.2 M parameters and about 910 GFLOPs per 640×480 frame. On a CPU (pure-torch deformable
convolution, ``benchmarks/temcoco_speed.py``) that is tens of seconds per frame, and a window holds about 0.6 GB
of activations per 640×480 frame (≈ 20 GB for the 30-frame window; ``window=10`` fits smaller machines but is not
the published protocol). The authors' code runs at about 48 frames/s on one H200 (the authors' figure).

Weights: the authors' ``VideoFusionNet_495000.pth`` (plain state dict, ``strict=True``; without ``--weights`` the
weights registry's copy, downloaded and verified on first use), or weights from
``m3svd train --method temcoco``. No toolkit-trained weights ship with the package: any TemCoCo state dict is
77 MB in float32, over the repository's 15 MB limit, and a faithful run needs a GPU for days (the authors: about
3 days on an A800); this port was written without one. The recipe, on a GPU machine (the CLI uses batch 1)::

    m3svd train --method temcoco --root M3SVD_ROOT --split train --config full --iterations 500000 --device cuda

or, with the released batch of 3 and the distillation terms (DINOv2 ViT-L/14 from a local clone, torchvision
VGG19)::

    from m3svd.methods.temcoco.train import train
    train(root, "runs/temcoco", config="full", iterations=500_000, batch_size=3, device="cuda",
          distill=True, dinov2="path/to/dinov2-clone", vgg19="path/to/vgg19-dcbb9e9d.pth")

never on M3SVD test clips, labelled by the ``temcoco.json`` written next to ``temcoco.pth``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from m3svd.methods import register
from m3svd.methods.base import Fusion, Method, MethodError, Window, check_window, plan_windows
from m3svd.methods.nets import check_state_dict, load_state_dict, pad_to_multiple, registry_weights

CHECKPOINT = "VideoFusionNet_495000.pth"
CHECKPOINT_URL = (
    "https://github.com/Meiqi-Gong/TemCoCo/raw/06bdad4b59a7fe256c36487cd62ba5ed6fa2826c/"
    "experiments/VideoFusion_IRnoise2/models/VideoFusionNet_495000.pth"
)
WINDOWINGS = ("end-aligned", "official")
WEIGHTS_HINT = (f"expected {CHECKPOINT}, a plain state dict, from {CHECKPOINT_URL}, "
                "or weights trained by `m3svd train --method temcoco`")


def official_windows(n: int, size: int = 30, overlap: int = 5) -> list[Window]:
    """``test_folder.py``'s clips with the tail clip of only the last ``(n − overlap) mod step`` frames.

    Clips too short for one full window get one window of the whole clip (the official loader would drop their
    first frames).
    """
    step = size - overlap
    full = (n - overlap) // step if n >= size else 0
    if full == 0:
        return [Window(0, n, 0, n)]
    windows = []
    for k in range(full):
        start = k * step
        keep_stop = start + step if k + 1 < full else start + size
        windows.append(Window(start, start + size, start, keep_stop))
    tail = windows[-1].stop
    if tail < n:
        windows.append(Window(tail, n, tail, n))
    return windows


@register
class TemCoCo(Method):
    name = "temcoco"
    version = "1"
    description = "TemCoCo (ICCV 2025): visual–semantic, temporally aligned video fusion"
    temporal_window = 30
    window_overlap = 5
    options = {"windowing": "end-aligned", "window": 30, "overlap": 5}

    def __init__(self, device: str = "cpu", weights: str | Path | None = None, **options):
        super().__init__(device=device, weights=weights, **options)
        if self.config["windowing"] not in WINDOWINGS:
            raise MethodError(f"temcoco: windowing must be one of {', '.join(WINDOWINGS)}, "
                              f"found {self.config['windowing']!r}")
        size, overlap = self.config["window"], self.config["overlap"]
        if not (isinstance(size, int) and isinstance(overlap, int) and size >= 1 and 0 <= overlap < size):
            raise MethodError(f"temcoco: window must be a positive integer and 0 <= overlap < window, found "
                              f"window={size!r}, overlap={overlap!r}")
        if self.weights is None:  # the authors' file from the weights registry, downloaded on first use
            self.weights, self._weights_sha256 = registry_weights("temcoco")
        import torch

        from m3svd.methods.temcoco.arch import Fusion as Net

        with torch.device("meta"):
            expected = Net().state_dict()
        state = load_state_dict(self.weights, "TemCoCo", WEIGHTS_HINT)
        check_state_dict(state, expected, self.weights, "TemCoCo")
        self.net = Net()
        self.net.load_state_dict(state, strict=True)
        self.net.eval().to(self.device)

    def plan(self, n: int) -> list[Window]:
        size, overlap = self.config["window"], self.config["overlap"]
        if self.config["windowing"] == "official":
            return official_windows(n, size, overlap)
        return plan_windows(n, size, overlap)

    def fuse(self, ir: np.ndarray, vi: np.ndarray) -> Fusion:
        check_window(ir, vi)
        import torch

        from m3svd.methods.temcoco.arch import SIZE_MULTIPLE

        t, h, w = ir.shape
        dev = torch.device(self.device)
        ir_t = torch.from_numpy(np.ascontiguousarray(ir)).to(dev).float().div_(255.0)
        vi_t = torch.from_numpy(np.ascontiguousarray(vi)).to(dev).permute(0, 3, 1, 2).float().div_(255.0)
        ir_t = ir_t[:, None].expand(t, 3, h, w)
        ir_t, vi_t = pad_to_multiple(ir_t, SIZE_MULTIPLE), pad_to_multiple(vi_t, SIZE_MULTIPLE)
        with torch.inference_mode():
            fused = self.net(ir_t[None], vi_t[None])[0][0, :, :, :h, :w]
            fused = fused.clamp(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
        return Fusion(fused.permute(1, 2, 3, 0).contiguous().cpu().numpy())
