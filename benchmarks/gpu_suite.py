"""The GPU figures of one device in one command: metric pairs/s, model frames/s and peak memory, against targets.

Prints, for the device (default ``cuda`` when present, else ``cpu``):

- **image metrics**: pairs/s of the torch path (:class:`m3svd.metrics.torch_backend.TorchScorer`, float32 and
  float64) and of the numpy registry (``m3svd.metrics.get(name)``) on the same frames, with the largest relative
  deviation of the torch values from the numpy ones (``benchmarks/metrics_torch.py``);
- **temporal metrics**: pairs/s of the protocol's temporal set (``m3svd-clean``: flows + 7 metrics; OpenCV on the
  CPU, there is no GPU path) with cold source flows and with cached ones (the cost per further method), and the
  pairs/s of image (float64, the values ``evaluate --metrics-device`` gives) plus temporal together
  (``benchmarks/temporal_speed.py``);
- **models**: VideoFusion (T=7, T=25) and TemCoCo (T=10, T=30) frames/s at 640×480 in fp32 and bf16 (autocast)
  and peak GPU memory, through the port's own ``fuse`` (uint8 in, uint8 out: host transfers included);
  ``benchmarks/videofusion_speed.py`` and ``benchmarks/temcoco_speed.py``;
- the same model figures for the authors' code when ``--videofusion-code`` / ``--temcoco-code`` name a checkout
  (its network's forward only, on device tensors: the ratio of the port's whole ``fuse`` to it, which the target is
  judged on, understates the port's speed-up; the ratio of the two networks alone is printed beside), with the
  largest difference between the two networks' outputs given the same weights and inputs (fp32: against the
  goldens' tolerance; bf16: beside the official network's own bf16 − fp32 difference).

Model weights are seeded random: speed does not depend on them, and no quality figure comes from this suite.
Frames are the M3SVD test frames under ``--data`` when present, else the built-in procedural sample rendered at the
same size (said in the output). Targets (issue 26, one H100): ≥ 1,000 pairs/s image metrics, ≥ 300 pairs/s with the
temporal ones, inference ≥ 3× the official code at the same precision.

``--tiny`` runs the same code on the CPU with tiny sizes in seconds (a check that the suite works, not a
measurement)::

    python benchmarks/gpu_suite.py [--device cuda] [--videofusion-code PATH] [--temcoco-code PATH [--build-dcn]]
        [--data DIR] [--skip image|temporal|models] [--tiny]

The official VideoFusion needs einops (only its architecture files are imported); the official TemCoCo needs
torchvision, timm, einops and its compiled ``deform_conv`` (``--build-dcn``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import logging
import platform
import sys
import tempfile
import time
import types
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metrics_torch  # noqa: E402
import temcoco_speed  # noqa: E402
import temporal_speed  # noqa: E402
import videofusion_speed  # noqa: E402
from metrics_speed import ROOT, load_frames  # noqa: E402

from m3svd import metrics  # noqa: E402
from m3svd.data.sample import make_sample  # noqa: E402
from m3svd.metrics import Sources  # noqa: E402
from m3svd.protocols import load as load_protocol  # noqa: E402

TARGET_IMAGE, TARGET_WITH_TEMPORAL, TARGET_RATIO = 1000.0, 300.0, 3.0
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
# the ports against the official outputs in float32 (tests/test_videofusion.py, tests/test_temcoco.py)
GOLDEN_FP32_TOLERANCE = 1e-5
FULL = {"size": (640, 480), "image_frames": 64, "batch": 32, "temporal_frames": 30, "repeats": 3,
        "videofusion": (7, 25), "temcoco": (10, 30), "metrics_size": (640, 480)}
TINY = {"size": (32, 32), "image_frames": 2, "batch": 2, "temporal_frames": 3, "repeats": 1,
        "videofusion": (2, 3), "temcoco": (2, 3), "metrics_size": (160, 120)}


def say(line: str = "") -> None:
    print(line, flush=True)


JUDGE = {"on": True}  # off in --tiny: tiny CPU figures are no evidence either way


def judged(met: bool) -> str:
    return ("met" if met else "NOT met") if JUDGE["on"] else "not judged (tiny)"


def verdict(value: float, target: float) -> str:
    return f"target ≥ {target:,.0f}: {judged(value >= target)}"


# ------------------------------------------------------------------------------------------------------------- data
def frames(data: Path, n: int, size: tuple[int, int]):
    """``n`` IR/VIS pairs and their rounded-average fusion: real M3SVD test frames at 640×480 when ``data`` has
    them, else the procedural sample at ``size``. Returns ``(ir, vi, fused, description)``."""
    test = data / "m3svd" / "test" / "infrared_Enhance"
    if size == (640, 480) and any(test.glob("*/*.png")):
        ir, vi, fused = load_frames(data, n)
        return ir, vi, fused, f"{len(ir)} M3SVD test frame pairs from {data}"
    s = make_sample(frames=n, height=size[1], width=size[0])
    vg = np.stack([cv2.cvtColor(v, cv2.COLOR_RGB2GRAY) for v in s.vi])
    fused = ((s.ir.astype(np.int32) + vg + 1) // 2).astype(np.uint8)
    return s.ir, s.vi, fused, (f"{n} frames of the built-in procedural sample at {size[0]}×{size[1]} "
                               f"(no M3SVD test frames under {data})")


def clip_frames(data: Path, n: int, size: tuple[int, int]):
    """``n`` consecutive frames for the temporal metrics: the first of M3SVD test video 0117_1620 when ``data``
    has it (and ``size`` is 640×480), else the procedural sample. Returns ``(ir, vi, fused, description)``."""
    videos = data / "m3svd_videos"
    if size == (640, 480) and videos.is_dir():
        ir, vi, fused = temporal_speed.load(data, "0117_1620", n)
        return ir, vi, fused, f"the first {len(ir)} frames of M3SVD test video 0117_1620"
    ir, vi, fused, _ = frames(Path("/nonexistent"), n, size)
    return ir, vi, fused, f"{n} consecutive frames of the procedural sample at {size[0]}×{size[1]}"


# ---------------------------------------------------------------------------------------------------------- metrics
def image_metrics(ir, vi, fused, device: str, batch: int, repeats: int) -> dict[str, float]:
    reference, numpy_rate = metrics_torch.numpy_reference(ir, vi, fused, repeats)
    say(f"  numpy registry (CPU, 1 process)   {numpy_rate:10.1f} pairs/s")
    rates = {}
    for dtype in (torch.float32, torch.float64):
        r = metrics_torch.measure(ir, vi, fused, reference, device, dtype, batch, repeats)
        name = str(dtype).removeprefix("torch.")
        rates[name] = r["pairs_s"]
        memory = f"  peak {r['peak_mib']:.0f} MiB" if "peak_mib" in r else ""
        say(f"  torch {device} {name:<8}{'':>14} {r['pairs_s']:10.1f} pairs/s  {r['pairs_s'] / numpy_rate:6.2f}× numpy"
            f"  max rel dev {r['max_rel_dev']:.1e}{memory}  {verdict(r['pairs_s'], TARGET_IMAGE)}")
    # what `m3svd evaluate --metrics-device` runs: metrics.score(..., device=), float64, the protocol's set
    chosen = [metrics.get(name) for name in load_protocol("m3svd-clean").image_metrics]
    sources = Sources(ir=ir, vi=vi)
    got = metrics.score(chosen, fused, sources, device=device, keep_undefined=True)  # warm-up: sources uploaded
    seconds = metrics_torch.best_of(repeats, lambda: metrics.score(chosen, fused, sources, device=device,
                                                                   keep_undefined=True))
    deviation = max(float(np.nanmax(np.abs(got[m] - reference[m]) / np.maximum(np.abs(reference[m]), 1e-12)))
                    for m in got if m in reference)
    rate = len(fused) / seconds
    say(f"  metrics.score(device={device}) m3svd-clean set {rate:10.1f} pairs/s  {rate / numpy_rate:6.2f}× numpy"
        f"  max rel dev {deviation:.1e}  (evaluate --metrics-device's path)")
    return rates


def temporal_metrics(ir, vi, fused, image_rate: float) -> None:
    n = len(fused)
    with tempfile.TemporaryDirectory(prefix="m3svd-suite-flows-") as tmp:
        skip_feacd = {"feacd": ()}  # not in the protocols' temporal sets
        cold = temporal_speed.one_pass("cold", ir, vi, fused, Path(tmp), None, skip_feacd)
        warm = temporal_speed.one_pass("warm", ir, vi, fused, Path(tmp), None, skip_feacd)
    for times in (cold, warm):
        times.pop("cache hits/misses")
    for label, times in (("cold source flows", cold), ("cached source flows", warm)):
        rate = n / sum(times.values())
        both = 1.0 / (1.0 / image_rate + 1.0 / rate)
        say(f"  temporal, {label:<22} {rate:10.1f} pairs/s;  with image metrics (torch float64) "
            f"{both:8.1f} pairs/s  {verdict(both, TARGET_WITH_TEMPORAL)}")
    slowest = sorted(cold.items(), key=lambda kv: -kv[1])[:3]
    say("  slowest steps (cold): " + ", ".join(f"{k} {1e3 * v / n:.1f} ms/pair" for k, v in slowest))


# ----------------------------------------------------------------------------------------------------------- models
def _autocast(device: str, precision: str):
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def load_official_videofusion(path: Path):
    """The authors' ``VideoFusion_Trans`` class and its test configuration, importing only its architecture files
    (their ``basicsr/__init__`` imports the whole training stack: torchvision, lmdb, …)."""
    import yaml

    def package(name: str, folder: Path) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]
        sys.modules[name] = module
        return module

    package("basicsr", path / "basicsr")
    package("basicsr.archs", path / "basicsr" / "archs")
    package("basicsr.utils", path / "basicsr" / "utils").get_root_logger = lambda *a, **k: logging.getLogger("basicsr")
    arch = importlib.import_module("basicsr.archs.videofusion_Trans_arch")
    config = yaml.safe_load((path / "options" / "test" / "test_VideoFusion.yml").read_text())["network_g"]
    config.pop("type")
    return lambda: arch.VideoFusion_Trans(**config)


DCN_SOURCES = ("deform_conv_ext.cpp", "deform_conv_cuda.cpp", "deform_conv_cuda_kernel.cu")


def load_official_temcoco(path: Path, build_dcn: bool = False):
    """The authors' ``archs.Net.Fusion``. It needs torchvision, timm, einops and their ``deform_conv`` CUDA extension
    (``dcn/src``; its ``setup.py`` names the authors' own folder, so ``build_dcn`` compiles the same three sources
    with ``torch.utils.cpp_extension.load`` instead: nvcc and ninja needed, a few minutes, not timed)."""
    missing = [m for m in ("torchvision", "timm", "einops") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"the official code needs {', '.join(missing)}, not importable here")
    sys.path.insert(0, str(path))
    if importlib.util.find_spec("deform_conv") is None:
        if not build_dcn:
            raise ImportError("no module deform_conv (the authors' CUDA extension in dcn/src): pass --build-dcn "
                              "on a machine with nvcc, or put a built deform_conv on PYTHONPATH")
        from torch.utils.cpp_extension import load

        src = path / "dcn" / "src"
        build = Path(tempfile.mkdtemp(prefix="m3svd-dcn-"))
        sys.modules["deform_conv"] = load("deform_conv", [str(src / f) for f in DCN_SOURCES],
                                          extra_include_paths=[str(src)], build_directory=str(build))
    return importlib.import_module("archs.Net").Fusion


def official(kind: str, path: Path | None, build_dcn: bool = False):
    """``(factory, None)`` or ``(None, reason)``: the reason is printed as one line."""
    if path is None:
        return None, f"official {kind}: no --{kind.lower()}-code PATH given; its figures are skipped"
    if not path.is_dir():
        return None, f"official {kind}: {path} is not a folder; its figures are skipped"
    try:
        if kind == "VideoFusion":
            return load_official_videofusion(path), None
        return load_official_temcoco(path, build_dcn), None
    except Exception as e:  # any failure of third-party code to import or build is reported, not raised
        return None, f"official {kind} at {path}: cannot import ({type(e).__name__}: {e}); figures skipped"


def official_speed(net, device: str, frames: int, w: int, h: int, precision: str, repeats: int) -> dict:
    """Frames/s of the official network's forward on device tensors (1×T×3×H×W in [0, 1]), peak memory on CUDA."""
    g = torch.Generator().manual_seed(0)
    ir = torch.rand(1, frames, 1, h, w, generator=g).expand(1, frames, 3, h, w).to(device)
    vi = torch.rand(1, frames, 3, h, w, generator=g).to(device)

    def forward(a, b):
        with torch.inference_mode(), _autocast(device, precision):
            net(a, b)

    warm = videofusion_speed.timed(device, forward, ir[:, :2, :, :64, :64], vi[:, :2, :, :64, :64])
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = [videofusion_speed.timed(device, forward, ir, vi) for _ in range(repeats)]
    out = {"best": frames / min(times), "warm": warm}
    if device.startswith("cuda"):
        out["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def agreement(ours_net, official_net, device: str, frames: int, w: int, h: int, precision: str) -> tuple[float, float]:
    """Largest |ours − official| of the fused output, same weights, same [0, 1] inputs, same precision; and, as the
    scale a bf16 difference is judged by, the official network's own largest |bf16 − fp32| (0 for fp32)."""
    official_net.load_state_dict(ours_net.state_dict(), strict=True)
    g = torch.Generator().manual_seed(1)
    ir = torch.rand(1, frames, 1, h, w, generator=g).expand(1, frames, 3, h, w).to(device)
    vi = torch.rand(1, frames, 3, h, w, generator=g).to(device)

    def fused(net, precision):
        with torch.inference_mode(), _autocast(device, precision):
            out = net(ir, vi)
        return (out["fusion"] if isinstance(out, dict) else out[0]).float()

    theirs = fused(official_net, precision)
    diff = float((fused(ours_net, precision) - theirs).abs().max())
    own = float((theirs - fused(official_net, "fp32")).abs().max()) if precision != "fp32" else 0.0
    return diff, own


def models(device: str, cfg: dict, paths: dict[str, Path | None], build_dcn: bool = False) -> None:
    w, h = cfg["size"]
    for kind in ("VideoFusion", "TemCoCo"):
        factory, reason = official(kind, paths[kind], build_dcn)
        if reason:
            say(f"  {reason}")
        for frames in cfg[kind.lower()]:
            for precision in PRECISIONS:
                say(model_line(kind, factory, device, frames, w, h, precision, cfg["repeats"]))
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()


def failure(e: Exception) -> str:
    return f"failed ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})"


def model_line(kind: str, factory, device: str, frames: int, w: int, h: int, precision: str, repeats: int) -> str:
    """One configuration's figures; a failure (out of memory, an op without bf16 support) is printed, not raised,
    so the rest of the suite still runs."""
    line = f"  {kind:<11} T={frames:<3} {precision}  ours "
    try:
        if kind == "VideoFusion":
            method = videofusion_speed.random_method(frames, device, "bf16" if precision == "bf16" else "none")
            fuse = method.fuse
        else:
            method = temcoco_speed.random_method(frames, device)
            fuse = temcoco_speed.autocast_fuse(method, "bf16" if precision == "bf16" else "none")
        ours = videofusion_speed.measure(fuse, device, frames, w, h, repeats)
    except (RuntimeError, MemoryError) as e:
        return line + failure(e)
    line += (f"{ours['best']:9.2f} frames/s" + (f"  peak {ours['peak_gib']:6.2f} GiB" if "peak_gib" in ours else ""))
    if factory is None:
        return line
    try:
        net = factory().eval().to(device)
        theirs = official_speed(net, device, frames, w, h, precision, repeats)
        ours_net = official_speed(method.net, device, frames, w, h, precision, repeats)
        diff, own = agreement(method.net, net, device, min(frames, 4), w, h, precision)
    except Exception as e:  # the authors' code may lack an op in a precision: reported, the suite goes on
        return line + " | official " + failure(e)
    ratio = ours["best"] / theirs["best"]
    tolerance = (f"golden fp32 tolerance {GOLDEN_FP32_TOLERANCE:.0e}: "
                 f"{'within' if diff <= GOLDEN_FP32_TOLERANCE else 'OUTSIDE'}"
                 if precision == "fp32" else f"official's own |bf16 − fp32| {own:.1e}")
    return (line + f" | official {theirs['best']:9.2f} frames/s"
            + (f"  peak {theirs['peak_gib']:6.2f} GiB" if "peak_gib" in theirs else "")
            + f" | {ratio:5.2f}× official (network alone {ours_net['best'] / theirs['best']:.2f}×), "
            + f"target ≥ {TARGET_RATIO:.0f}×: " + judged(ratio >= TARGET_RATIO)
            + f" | max |ours − official| {diff:.1e} ({tolerance})")


# ------------------------------------------------------------------------------------------------------------- main
def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} ({device})"
    return f"CPU {platform.processor() or platform.machine()} ({device}, {torch.get_num_threads()} torch threads)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="torch device (default: cuda when present, else cpu)")
    ap.add_argument("--data", type=Path, default=ROOT / "data", help="the shared data folder (M3SVD test frames)")
    ap.add_argument("--videofusion-code", type=Path, default=None, help="a checkout of Linfeng-Tang/VideoFusion")
    ap.add_argument("--temcoco-code", type=Path, default=None, help="a checkout of Meiqi-Gong/TemCoCo")
    ap.add_argument("--build-dcn", action="store_true",
                    help="compile the official TemCoCo's deform_conv CUDA extension when it is not importable")
    ap.add_argument("--tiny", "--dry-run", dest="tiny", action="store_true",
                    help="the same code on the CPU with tiny sizes, in seconds (checks the suite, measures nothing)")
    ap.add_argument("--skip", action="append", default=[], choices=("image", "temporal", "models"),
                    help="leave a section out (repeatable)")
    args = ap.parse_args(argv)
    cfg = TINY if args.tiny else FULL
    JUDGE["on"] = not args.tiny
    device = "cpu" if args.tiny else (args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    start = time.perf_counter()
    say(f"m3svd GPU suite ({'TINY: CPU, tiny sizes; not a measurement' if args.tiny else 'full'})")
    say(f"device: {device_name(device)}; torch {torch.__version__}; OpenCV {cv2.__version__}, "
        f"{cv2.getNumThreads()} threads; TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, "
        f"cuDNN {torch.backends.cudnn.allow_tf32}")
    say("model weights: seeded random (speed only; never a quality figure)")
    say(f"targets: image metrics ≥ {TARGET_IMAGE:,.0f} pairs/s; with temporal ≥ {TARGET_WITH_TEMPORAL:,.0f} pairs/s; "
        f"inference ≥ {TARGET_RATIO:.0f}× official at the same precision")

    image_rate = None
    if "image" not in args.skip:
        ir, vi, fused, what = frames(args.data, cfg["image_frames"], cfg["metrics_size"])
        say(f"[image metrics] {', '.join(metrics_torch.METRICS)}; batch {cfg['batch']}, best of {cfg['repeats']}; "
            f"{what}")
        image_rate = image_metrics(ir, vi, fused, device, cfg["batch"], cfg["repeats"])["float64"]
    if "temporal" not in args.skip:
        ir, vi, fused, what = clip_frames(args.data, cfg["temporal_frames"], cfg["metrics_size"])
        say(f"[temporal metrics] {', '.join(temporal_speed.ORDER[:-1])} (CPU, OpenCV flows; no GPU path); {what}")
        temporal_metrics(ir, vi, fused, image_rate or float("inf"))
    if "models" not in args.skip:
        w, h = cfg["size"]
        say(f"[models] {w}×{h}, batch 1, best of {cfg['repeats']} windows after a warm-up; ours: the port's fuse "
            f"(uint8 in/out); official: its network forward on device tensors")
        models(device, cfg, {"VideoFusion": args.videofusion_code, "TemCoCo": args.temcoco_code}, args.build_dcn)
    say(f"suite time: {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
