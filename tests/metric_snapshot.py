"""Every registered metric's values on a fixed set of real frames, and the command that regenerates them.

The snapshot (``tests/metric_snapshot.json``) stores, per metric id, its ``version`` and its per-frame values on
four frames of M3SVD clip 0111_1716 (a fixed 192×224 crop of ``../shared/data/m3svd``): clean IR and VIS as the
sources, their per-pixel blend as the fused frames, and the degraded (noisy IR, blurred VIS) frames as "restored"
ones for the restoration metrics. ``tests/test_metric_snapshot.py`` recomputes them: a value that moves fails the
test until that metric's ``version`` is bumped and the snapshot regenerated, so result rows always say which code
made them (a moved value under an old version would mix two definitions in one leaderboard ranking).

Regenerate (after bumping the version of each metric whose values change on purpose)::

    python tests/metric_snapshot.py            # rewrites tests/metric_snapshot.json; prints what changed
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np

SNAPSHOT = Path(__file__).with_name("metric_snapshot.json")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "m3svd"
CLIP, FRAMES, CROP = "0111_1716", range(4), (slice(140, 332), slice(200, 424))
SKIPPED_CONVENTIONS = ("pyiqa",)  # an optional extra with its own downloaded weights; not registered here
# On the platform and library versions the snapshot was made with, values must match to the bit: metric code that
# moves a value even at rounding level (a reordered sum) is a change of definition. Elsewhere (another CPU, numpy,
# OpenCV, torch) the last bits may differ for reasons outside this package, so values must agree to RTOL.
RTOL = 1e-9


def environment() -> dict[str, str]:
    """What, besides this package's code, decides a value's last bits."""
    import platform

    import cv2
    import scipy
    import skimage
    import torch

    return {"machine": platform.machine(), "system": platform.system(), "numpy": np.__version__,
            "opencv": cv2.__version__, "scipy": scipy.__version__, "scikit-image": skimage.__version__,
            "torch": torch.__version__}


def frames(data: Path = DATA) -> dict[str, np.ndarray]:
    """The fixed inputs: ``ir``, ``vi`` (clean), ``ir_restored``, ``vi_restored`` (degraded), ``fused``."""
    from m3svd.data.frames import read_image, to_grey

    def stack(folder: str, grey: bool) -> np.ndarray:
        out = []
        for i in FRAMES:
            frame = read_image(data / "test" / folder / CLIP / f"{i:04d}.png")[CROP]
            out.append(to_grey(frame) if grey else frame)
        return np.ascontiguousarray(np.stack(out))

    ir, vi = stack("infrared_Enhance", True), stack("visible_Enhance", False)
    fused = np.rint(0.5 * ir[..., None].astype(np.float64) + 0.5 * vi).astype(np.uint8)
    return {"ir": ir, "vi": vi, "fused": fused, "ir_restored": stack("infrared_noise", True),
            "vi_restored": stack("visible_Blur", False)}


def compute(data: Path = DATA) -> dict[str, dict]:
    """``{metric id: {"version": v, "values": [...]}}`` for every registered metric (``null`` = undefined)."""
    import tempfile

    import torch

    from m3svd.metrics.base import Sources
    from m3svd.metrics.temporal import VideoSources

    torch.set_num_threads(1)  # one reduction order for the torch-computed metrics (feaCD)
    f = frames(data)
    image_sources = Sources(ir=f["ir"], vi=f["vi"])
    with tempfile.TemporaryDirectory() as folder:
        video_sources = VideoSources(ir=f["ir"], vi=f["vi"], flow="dis", cache=False,
                                     resnet18=fixed_resnet18(Path(folder) / "resnet18-fixed.pth"))
        from m3svd.metrics import niqe

        previous = os.environ.get(niqe.PARAMS_ENV)
        os.environ[niqe.PARAMS_ENV] = str(fitted_niqe(data, Path(folder) / "niqe_pris_params.npz"))
        try:
            return _compute(f, image_sources, video_sources)
        finally:
            if previous is None:
                del os.environ[niqe.PARAMS_ENV]
            else:
                os.environ[niqe.PARAMS_ENV] = previous


def fitted_niqe(data: Path, path: Path) -> Path:
    """NIQE's pristine model fitted to 10 visible frames of another clip (basicsr's file is a download)."""
    from m3svd.data.frames import read_image, to_grey
    from m3svd.metrics import niqe

    grey = [to_grey(read_image(data / "test" / "visible_Enhance" / "0114_1611" / f"{i:04d}.png")).astype(np.float64)
            for i in range(0, 20, 2)]
    params = niqe.fit_params(grey)
    np.savez(path, mu_pris_param=params.mu[None], cov_pris_param=params.cov, gaussian_window=niqe.gaussian_7x7())
    return path


def fixed_resnet18(path: Path) -> Path:
    """feaCD's ResNet-18 with fixed weights from numpy's seeded generator (stable across torch versions, unlike
    torch's own initialisation; the ImageNet weights are a download tests never make)."""
    import zlib

    import torch

    from m3svd.metrics.temporal import resnet18

    state = resnet18().state_dict()
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            continue
        if key.endswith("running_var"):
            state[key] = torch.ones_like(tensor)
        elif key.endswith("running_mean") or key.endswith(".bias"):
            state[key] = torch.zeros_like(tensor)
        else:
            fan_in = max(1, tensor[0].numel()) if tensor.ndim > 1 else 1
            rng = np.random.default_rng(zlib.crc32(key.encode()))
            scale = (2.0 / fan_in) ** 0.5 if tensor.ndim > 1 else 1.0
            state[key] = torch.from_numpy((rng.standard_normal(tuple(tensor.shape)) * scale).astype(np.float32))
    torch.save(state, path)
    return path


def _compute(f, image_sources, video_sources) -> dict[str, dict]:
    from m3svd import metrics
    from m3svd.metrics.base import MetricUndefined, Sources

    out = {}
    for metric in metrics.list():
        if metric.convention in SKIPPED_CONVENTIONS:
            continue
        if metric.kind == "restoration":
            clean = {"ir": f["ir"], "vi": f["vi"]}
            values = []
            for stream in ("ir", "vi"):
                try:
                    values += list(metric(f[f"{stream}_restored"], sources=Sources(ir=clean[stream], vi=clean[stream])))
                except MetricUndefined as undefined:
                    values += list(undefined.values)
        else:
            sources = video_sources if metric.kind == "temporal" else image_sources
            try:
                values = list(metric(f["fused"], sources=sources))
            except MetricUndefined as undefined:
                values = list(undefined.values)
        out[metric.id] = {"version": str(metric.version),
                          "values": [float(v) if math.isfinite(v) else None for v in values]}
    return out


def differences(expected: dict, found: dict, exact: bool = True) -> list[str]:
    """One line per metric whose values (or presence) differ from the snapshot without a version bump; ``exact``:
    to the bit (the snapshot's own environment), else to :data:`RTOL`."""
    rtol, atol = (0.0, 0.0) if exact else (RTOL, 1e-12)
    lines = []
    for metric_id in sorted(set(expected) | set(found)):
        old, new = expected.get(metric_id), found.get(metric_id)
        if old is None:
            lines.append(f"{metric_id}: registered but not in the snapshot; regenerate it")
            continue
        if new is None:
            lines.append(f"{metric_id}: in the snapshot but no longer registered; regenerate it")
            continue
        same = len(old["values"]) == len(new["values"]) and all(
            (a is None and b is None) or (a is not None and b is not None and math.isclose(a, b, rel_tol=rtol,
                                                                                          abs_tol=atol))
            for a, b in zip(old["values"], new["values"], strict=False))
        if same and old["version"] != new["version"]:
            lines.append(f"{metric_id}: version {old['version']} → {new['version']} with the same values; "
                         f"regenerate the snapshot")
        elif not same:
            where = next((i for i, (a, b) in enumerate(zip(old["values"], new["values"], strict=False))
                          if a != b), None)
            detail = (f"value {where}: {old['values'][where]!r} → {new['values'][where]!r}" if where is not None
                      else f"{len(old['values'])} → {len(new['values'])} values")
            if old["version"] == new["version"]:
                lines.append(f"{metric_id}: values changed ({detail}) but version is still {new['version']}; bump "
                             f"the metric's version, then regenerate: python tests/metric_snapshot.py")
            else:
                lines.append(f"{metric_id}: version {old['version']} → {new['version']}, values changed ({detail}); "
                             f"regenerate: python tests/metric_snapshot.py")
    return lines


def main() -> int:
    if not DATA.is_dir():
        print(f"real data not available: {DATA}", file=sys.stderr)
        return 2
    found = compute()
    previous = json.loads(SNAPSHOT.read_text()) if SNAPSHOT.exists() else {}
    for line in differences(previous.get("metrics", {}), found, previous.get("environment") == environment()):
        print(line)
    document = {"inputs": f"m3svd test/{CLIP} frames {FRAMES.start}..{FRAMES.stop - 1}, crop rows "
                          f"{CROP[0].start}:{CROP[0].stop} cols {CROP[1].start}:{CROP[1].stop}; "
                          f"fused = rint(IR/2 + VIS/2); restored = infrared_noise / visible_Blur vs clean",
                "environment": environment(), "metrics": found}
    tmp = SNAPSHOT.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    tmp.replace(SNAPSHOT)
    print(f"wrote {SNAPSHOT}: {len(found)} metrics")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
