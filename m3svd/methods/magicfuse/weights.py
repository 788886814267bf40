"""Finding, checking and loading MagicFuse's four checkpoints from one folder.

The folder is either flat (``ae.pth``, ``ikr.pth``, ``ckg.pth``, ``model.pth``) or the authors' ``pretrained/``
layout (``AE/ae.pth``, ``IKR/ikr.pth``, ``CKG/ckg.pth``, ``MKF/model.pth``). Every file is checked key by key and
shape by shape against the network built on the ``meta`` device, then loaded with ``assign=True``, so the
518 M-parameter CKG is never initialised randomly first.
"""

from __future__ import annotations

from pathlib import Path

from m3svd.methods.base import MethodError
from m3svd.methods.nets import check_state_dict, load_state_dict

REPO = "https://github.com/zhayanping/MagicFuse/raw/189d569303112447c0674d429cd62996d7cc1f2f"
BAIDU = "https://pan.baidu.com/s/1WdY461RUguKVzNAVNptrLQ?pwd=b88v"
# part -> (file name, authors' sub-folder, what it is and where the authors publish it)
FILES = {
    "ae": ("ae.pth", "AE", f"latent autoencoder, in the authors' repository: {REPO}/pretrained/AE/ae.pth"),
    "ikr": ("ikr.pth", "IKR", f"IKR U-Net, 159 MB, only on the authors' Baidu Netdisk: {BAIDU}"),
    "ckg": ("ckg.pth", "CKG", f"CKG U-Net, 2.07 GB, only on the authors' Baidu Netdisk: {BAIDU}"),
    "mkf": ("model.pth", "MKF", f"MKF fusion network, {REPO}/pretrained/MKF/model.pth, "
                                "or `m3svd train --method magicfuse`"),
}


def locate(folder: Path | None, mkf: str | Path | None = None, parts=tuple(FILES)) -> dict[str, Path]:
    """The files' paths, or one error naming every missing file and where the authors publish it."""
    found, missing = {}, []
    for part in parts:
        name, sub, where = FILES[part]
        candidates = [] if folder is None else [folder / name, folder / sub / name]
        if part == "mkf" and mkf:
            candidates = [Path(mkf)]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(f"{name} ({where})")
        else:
            found[part] = path
    if missing:
        head = ("magicfuse needs --weights FOLDER holding its checkpoints" if folder is None
                else f"{folder}: magicfuse weights folder lacks")
        raise MethodError(f"{head}: {'; '.join(missing)}")
    return found


REGISTRY = {"ae": "magicfuse-ae", "ikr": "magicfuse-ikr", "ckg": "magicfuse-ckg", "mkf": "magicfuse-mkf"}


def from_registry(mkf: str | Path | None = None, parts=tuple(FILES)) -> dict[str, Path]:
    """The files' paths from the weights registry (downloadable ones fetched and every one verified), or one
    error naming every missing file and how to get it (IKR and CKG: by hand, from Baidu Netdisk)."""
    from m3svd import weights

    wanted = [p for p in parts if not (p == "mkf" and mkf)]
    try:
        found = weights.ensure_all([REGISTRY[p] for p in wanted])
    except (weights.WeightsMissing, weights.WeightsRefused) as error:
        raise MethodError(f"magicfuse weights: {error}") from None
    paths = {p: found[REGISTRY[p]].path for p in wanted}
    if "mkf" in parts and mkf:
        paths.update(locate(None, mkf, parts=("mkf",)))
    return paths


def _ae_state(path: Path) -> dict:
    """``ae.pth``'s ``{'encoder': sd, 'decoder': sd}`` flattened to ``encoder.*``/``decoder.*`` keys."""
    import torch

    if path.suffix != ".safetensors":
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - one line for any unreadable file
            raise MethodError(f"{path}: cannot read MagicFuse autoencoder weights ({error})") from None
        if isinstance(raw, dict) and isinstance(raw.get("encoder"), dict) and isinstance(raw.get("decoder"), dict):
            return {f"{half}.{k}": v for half in ("encoder", "decoder") for k, v in raw[half].items()}
    return load_state_dict(path, "MagicFuse autoencoder", FILES["ae"][2])


def load(builders: dict, paths: dict[str, Path], device: str = "cpu") -> dict:
    """``builders[part]()`` → module; returns the modules with the checked weights, in eval mode on ``device``."""
    import torch

    nets = {}
    for part, build in builders.items():
        path, label = paths[part], f"MagicFuse {part.upper()}"
        with torch.device("meta"):
            net = build()
        state = _ae_state(path) if part == "ae" else load_state_dict(path, label, FILES[part][2])
        check_state_dict(state, net.state_dict(), path, label)
        net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
        nets[part] = net.eval().requires_grad_(False).to(device)
    return nets
