"""What every deep method shares: reading and checking weights, padding frames, saving training state atomically.

Torch is imported inside the functions, so registering the methods (``m3svd ls methods``) never loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

from m3svd.files import atomic_path
from m3svd.methods.base import MethodError


def load_state_dict(path: str | Path, method: str, hint: str) -> dict:
    """A method's state dict (:func:`m3svd.weights.load_state_dict`), with ``hint`` (where the weights come from)
    in the one-line :class:`MethodError` when the file is absent."""
    from m3svd.weights import load_state_dict as read

    path = Path(path)
    if not path.is_file():
        raise MethodError(f"{path}: {method} weights file not found ({hint})")
    return read(path, method, MethodError)


def registry_weights(name: str) -> tuple[Path, str]:
    """``(path, sha256)`` of the weights registry's file ``name`` (downloaded and verified on first use), with a
    missing or refused file as a one-line :class:`MethodError`."""
    from m3svd import weights

    try:
        found = weights.ensure(name)
    except (weights.WeightsMissing, weights.WeightsRefused) as error:
        raise MethodError(str(error)) from None
    return found.path, found.sha256


def check_state_dict(state: dict, expected: dict, path: str | Path, method: str) -> None:
    """Strict key matching with one line naming the first missing, unexpected or mis-shaped key."""
    for key, tensor in expected.items():
        if key not in state:
            raise MethodError(f"{path}: not {method} weights: missing key {key!r} of shape {tuple(tensor.shape)} "
                              f"({len(state)} keys found, {len(expected)} expected)")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise MethodError(f"{path}: key {key!r} has shape {tuple(state[key].shape)}, "
                              f"expected {tuple(tensor.shape)}")
    for key, tensor in state.items():
        if key not in expected:
            raise MethodError(f"{path}: not {method} weights: unexpected key {key!r} of shape {tuple(tensor.shape)}")


def pad_to_multiple(x, multiple: int):
    """Pad ``(..., H, W)`` bottom/right to multiples of ``multiple``: reflection, replication when too small."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if not ph and not pw:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def resume_state(path: Path, recipe: dict, device) -> dict | None:
    """The training checkpoint at ``path`` (None when absent), refused in one line when it was written by another
    recipe: resuming must continue the same run, never silently mix two."""
    import torch

    if not path.is_file():
        return None
    state = torch.load(path, map_location=device, weights_only=True)
    if state["recipe"] != recipe:
        changed = next(k for k in {**state["recipe"], **recipe} if state["recipe"].get(k) != recipe.get(k))
        raise MethodError(f"{path}: checkpoint was trained with {changed}={state['recipe'].get(changed)!r}, "
                          f"not {recipe.get(changed)!r}; use another out folder or resume=False")
    return state


class TrainingLog:
    """``out/train_log.jsonl`` — one JSON line per iteration, started afresh by a fresh run and continued by a
    resumed one — and the progress bar. ``write=False`` (DDP ranks other than 0) keeps both silent."""

    def __init__(self, out: Path, start: int, iterations: int, desc: str, progress: bool, write: bool = True):
        self.path, self.write, self.last = out / "train_log.jsonl", write, {}
        if write and start == 0:
            self.path.unlink(missing_ok=True)
        self.bar = None
        if write and progress and start < iterations:
            from tqdm import tqdm

            self.bar = tqdm(total=iterations, initial=start, desc=desc, unit="it")

    def record(self, row: dict) -> None:
        self.last = row
        if self.write:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{row['loss']:.4f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def optimise(loss, optimiser, method: str, iteration: int, clip_norm: float | None = None, parameters=None) -> None:
    """One optimiser step on ``loss``, refusing a non-finite loss in one line (a diverged run stops, it does not
    write NaN weights); ``clip_norm`` clips the gradient norm of ``parameters`` first."""
    import torch

    if not torch.isfinite(loss):
        raise MethodError(f"{method} training diverged at iteration {iteration + 1}: loss {loss.item()}")
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    if clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(parameters, clip_norm)
    optimiser.step()


def atomic_save(obj, path: Path) -> None:
    """``torch.save`` through a temporary file and a rename: a crash leaves the old file or the new, never half."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
