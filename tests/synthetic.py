"""Small synthetic IR/VIS trees on disk for the data-layer tests (frames 48×64 unless told otherwise)."""

from __future__ import annotations

import json
from pathlib import Path

import av
import cv2
import numpy as np

H, W = 48, 64
M3SVD_FOLDERS = ("infrared_Enhance", "visible_Enhance", "infrared_noise", "visible_Blur")


def noise(seed, channels: int | None = None, h: int = H, w: int = W) -> np.ndarray:
    """Random ``uint8`` frame (``H×W`` or ``H×W×C``), reproducible from ``seed`` (int or sequence)."""
    shape = (h, w) if channels is None else (h, w, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def noise_triplets(n: int = 2, seed: int = 0):
    """``n`` random (IR ``n×H×W``, VIS ``n×H×W×3``, fused ``n×H×W×3``) frames for metric edge-case tests."""
    ir = np.stack([noise((seed, i, 0)) for i in range(n)])
    vi = np.stack([noise((seed, i, 1), channels=3) for i in range(n)])
    fused = np.stack([noise((seed, i, 2), channels=3) for i in range(n)])
    return ir, vi, fused


def smooth(i: int, h: int = H, w: int = W) -> np.ndarray:
    """RGB frame that survives lossy coding: gradients shifted by ``i`` (valid for ``i < 12``)."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 2 + i * 8, y * 3 + i * 4, np.full_like(x, 60 + i * 10)], axis=-1).astype(np.uint8)


def write_image(path: Path, frame: np.ndarray) -> Path:
    """Write an ``H×W`` grey or ``H×W×3`` RGB frame (any format cv2 knows from the suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
    return path


def write_video(path: Path, frames, fps: int = 30, codec: str = "mpeg4") -> Path:
    """Encode RGB frames with PyAV (high bit rate, so the frames stay close to the input)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 4_000_000
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return path


def make_m3svd(root: Path, clips=("0111_1716", "0114_1611"), n: int = 4, name=lambda i: f"{i:04d}.png",
               folders=M3SVD_FOLDERS, split: str | None = "test", h: int = H, w: int = W) -> dict:
    """Four-folder image release under ``root/split``; IR stored as 3 identical channels, as released.

    Returns ``{(folder index, clip): [frame as the Clip should return it (IR grey, VIS RGB)]}``.
    """
    base = root / split if split else root
    frames = {}
    for f, folder in enumerate(folders):
        for c, clip in enumerate(clips):
            frames[f, clip] = []
            for i in range(n):
                is_ir = f % 2 == 0
                frame = noise([f, c, i], None if is_ir else 3, h, w)
                write_image(base / folder / clip / name(i), np.repeat(frame[..., None], 3, 2) if is_ir else frame)
                frames[f, clip].append(frame)
    return frames


def make_videos(folder_pairs, clips=("0111_1716",), n: int = 12, fps: int = 30) -> None:
    """One mp4 of ``n`` smooth frames per clip in each folder of ``folder_pairs`` (IR folders first)."""
    for ir_dir, vi_dir in folder_pairs:
        for clip in clips:
            frames = [smooth(i) for i in range(n)]
            write_video(ir_dir / f"{clip}.mp4", [np.repeat(f[..., :1], 3, 2) for f in frames], fps)
            write_video(vi_dir / f"{clip}.mp4", frames, fps)


def protocol_file(path: Path, *, id: str = "short", description: str = "a short protocol, for tests",  # noqa: A002
                  layouts=("m3svd",), folders=("val-frames",), split: str | None = "test", clips="all",
                  frames=(0, 4), variant: str = "clean", inputs=("ir", "vi"), references: str = "clean",
                  convention: str = "m3svd", image=("en",), temporal=(), restoration=(), flow: str = "dis",
                  ranking: str | None = None) -> Path:
    """Write a protocol TOML (``m3svd/protocols/*.toml``'s fields; lists and strings as given) and return its path.

    ``ranking`` is the ``[ranking]`` table's body as TOML text (e.g. ``'primary = ["en"]'``); None leaves it out.
    """
    def value(v):
        return json.dumps(list(v) if isinstance(v, tuple) else v)

    data = {"layouts": layouts, "folders": folders, "split": split, "clips": clips, "frames": frames,
            "variant": variant, "inputs": inputs, "references": references}
    measures = {"convention": convention, "image": image, "temporal": temporal, "restoration": restoration,
                "flow": flow}
    lines = [f"id = {value(id)}", 'version = "1"', f"description = {value(description)}", "[data]"]
    lines += [f"{k} = {value(v)}" for k, v in data.items() if v is not None]
    lines += ["[metrics]"] + [f"{k} = {value(v)}" for k, v in measures.items()]
    if ranking is not None:
        lines += ["[ranking]", ranking]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path
