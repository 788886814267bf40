"""MagicFuse (Zhang et al., CVPR 2026): single-image "fusion" from a degraded visible image alone.

Two frozen latent diffusion U-Nets run side by side from one shared x_T: IKR restores the visible image, CKG
generates a pseudo-infrared image; MKF mixes their noise predictions at each of 25 DDIM steps into a third, fused
stream and refines a 9-class segmentation (spec ``magicfuse.md``). No infrared frame is used: the method's
protocol is ``m3svd-visible-only``.

- **No temporal modelling**: frames are processed one by one (``temporal_window = 1``), each with the same seed
  (``seed``, 55 as in the authors' ``quicktest``), so a frame's output does not depend on the window plan.
- Input RGB in [0, 1], padded bottom/right to multiples of 4 (reflection) and cropped back; the fused frame is
  the decoded MagImg saved by truncation (``astype(uint8)``) as the authors do. ``restores``: the IKR image is the
  restored visible frame, the BT.601 luminance of the CKG image the (pseudo-)infrared one.
- Randomness is drawn from a CPU generator (encoder noise, x_T, seg state), so CPU and GPU runs agree; the authors
  drew x_T on the CUDA generator, so their published images are not bit-reproducible anywhere.

**Real use needs the authors' weights** (560 M parameters, about 2.2 GB): ``--weights FOLDER`` holding ``ae.pth``
and ``model.pth`` (GitHub) and ``ikr.pth``, ``ckg.pth`` (Baidu Netdisk only), flat or in the authors'
``pretrained/{AE,IKR,CKG,MKF}/`` layout; without ``--weights``, the weights registry's files (``m3svd weights ls``:
``ae.pth`` and ``model.pth`` are downloaded on first use, ``ikr.pth`` and ``ckg.pth`` must be placed by hand where
``m3svd weights path magicfuse-ikr`` says); ``--option mkf=PATH`` swaps in an MKF from ``m3svd train --method
magicfuse``. The full model costs about 63 TFLOPs per 640×480 frame (CKG: 1.6 TFLOPs a step): slow on a CPU, use
``--device cuda`` (``--option bf16=true`` for bfloat16 autocast). ``config=small`` selects the conformance
goldens' small networks (same file names, small shapes): for tests and smoke runs only, never for comparison.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from m3svd.methods import register
from m3svd.methods.base import BT601, Fusion, Method, MethodError, check_window

CONFIGS = ("full", "small")


def builders(config: str) -> dict:
    """Constructors of the four modules for ``config`` (``full``: released; ``small``: conformance goldens)."""
    from m3svd.methods.magicfuse.autoencoder import AutoEncoder
    from m3svd.methods.magicfuse.mkf import FusionModule
    from m3svd.methods.magicfuse.unet import CKG, CKG_SMALL, IKR, IKR_SMALL, DiffusionUNet

    small = config == "small"
    return {"ae": AutoEncoder,
            "ikr": lambda: DiffusionUNet(IKR_SMALL if small else IKR),
            "ckg": lambda: DiffusionUNet(CKG_SMALL if small else CKG),
            "mkf": lambda: FusionModule(channels=32 if small else 96)}


@register
class MagicFuse(Method):
    name = "magicfuse"
    version = "1"
    description = ("MagicFuse (CVPR 2026): diffusion 'fusion' from the visible frame alone, per frame, no temporal "
                   "modelling; IKR/CKG weights from Baidu Netdisk by hand")
    temporal_window = 1
    inputs = ("vi",)
    restores = True
    options = {"config": "full", "seed": 55, "bf16": False, "mkf": ""}

    def __init__(self, device: str = "cpu", weights: str | Path | None = None, **options):
        super().__init__(device=device, weights=weights, **options)
        if self.config["config"] not in CONFIGS:
            raise MethodError(f"magicfuse: config must be one of {', '.join(CONFIGS)}, found {self.config['config']!r}")
        from m3svd.methods.magicfuse import weights as files
        from m3svd.methods.magicfuse.sampler import Nets

        if self.weights is None:  # the weights registry's files, the downloadable ones fetched on first use
            self.paths = files.from_registry(mkf=self.config["mkf"] or None)
        else:
            self.paths = files.locate(self.weights, self.config["mkf"] or None)
        self.nets = Nets(**files.load(builders(self.config["config"]), self.paths, self.device))

    @property
    def weights_sha256(self) -> str | None:
        """One digest over the four files actually used (name and content), since ``weights`` is a folder."""
        if not hasattr(self, "_weights_sha256"):
            from m3svd.files import sha256_file

            digest = hashlib.sha256()
            for part, path in sorted(self.paths.items()):
                digest.update(f"{part}:{path.name}:{sha256_file(path)}\n".encode())
            self._weights_sha256 = digest.hexdigest()
        return self._weights_sha256

    def run(self, frame: np.ndarray) -> dict:
        """All outputs for one ``H×W×3`` uint8 RGB frame: ``MagImg``, ``ikr_img``, ``ckg_img`` (1×3×H×W in [0, 1]),
        ``seg_label`` (1×H×W)."""
        import torch

        from m3svd.methods.magicfuse.sampler import sample
        from m3svd.methods.nets import pad_to_multiple

        h, w = frame.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float().div_(255.0)
        x = pad_to_multiple(x, 4).to(self.device)
        generator = torch.Generator().manual_seed(int(self.config["seed"]))
        with torch.inference_mode():
            out = sample(self.nets, x, generator=generator, bf16=bool(self.config["bf16"]))
        return {k: out[k][..., :h, :w] for k in ("MagImg", "ikr_img", "ckg_img", "seg_label")}

    def fuse(self, ir: np.ndarray | None, vi: np.ndarray) -> Fusion:
        check_window(None, vi)
        fused, ir_out, vi_out = [], [], []
        for frame in vi:
            out = self.run(frame)
            fused.append(to_uint8(out["MagImg"]))
            vi_out.append(to_uint8(out["ikr_img"]))
            ckg = to_uint8(out["ckg_img"])
            ir_out.append(np.clip(np.rint(ckg @ BT601), 0, 255).astype(np.uint8))
        return Fusion(np.stack(fused), ir=np.stack(ir_out), vi=np.stack(vi_out))


def to_uint8(image) -> np.ndarray:
    """``1×3×H×W`` in [0, 1] → ``H×W×3`` uint8 by the authors' truncation, ``clip(x·255, 0, 255).astype(uint8)``."""
    return np.clip(image[0].permute(1, 2, 0).float().cpu().numpy() * 255, 0, 255).astype(np.uint8)
