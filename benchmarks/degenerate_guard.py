"""The degenerate-output guard of `m3svd validate` measured on real fused outputs: thresholds, per-source statistics,
false refusals and margins, and the statistics of the degenerate cases it must catch.

    python benchmarks/degenerate_guard.py [--vifb FUSED_DIR INPUT_DIR] [--tno IMAGE_FUSION_DIR]
                                          [--m3svd DIR] [--tno-seq DIR]

--vifb: VIFB's ``fused_images/<image>_<method>.jpg`` and ``input/{IR,VI}/<image>.jpg``;
--tno: a folder holding Image-Fusion's ``General Evaluation Metric/Image`` tree (``Algorithm/<Method>_TNO/NN.png``,
``Source-Image/TNO/{ir,vi}/NN.png``); --m3svd: a folder ``test/{infrared_Enhance,visible_Enhance}/<clip>/`` of
M3SVD frames; --tno-seq: TNO ``FEL_images`` (``<name>_sequence/{thermal,visual}``). The video folders give the
frozen-video statistic of the sources and of their average (no published video outputs are public here). Each
missing folder is named and skipped. Defaults: the paths this project's machines use.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from m3svd.data.frames import read_image
from m3svd.leaderboard import degenerate as dg

DEFAULTS = {
    "vifb": (Path("../shared/golden/vifb/fused_images"), Path("../shared/data/vifb/input")),
    "tno": Path("/work/data/imagefusion"),
    "m3svd": Path("../shared/data/m3svd"),
    "tno_seq": Path("../shared/data/tno/FEL_images"),
}


def read_grey(path: Path) -> np.ndarray:
    return dg.grey(read_image(path))


def vifb_items(fused: Path, inputs: Path):
    for path in sorted(fused.glob("*.jpg")):
        match = re.match(r"^([A-Za-z0-9]+)_(.+)$", path.stem)
        image, method = match.groups()
        yield "VIFB", method, path, inputs / "IR" / f"{image}.jpg", inputs / "VI" / f"{image}.jpg"


def tno_items(root: Path):
    base = root / "General Evaluation Metric" / "Image" if (root / "General Evaluation Metric").is_dir() else root
    for folder in sorted((base / "Algorithm").glob("*_TNO")):
        for path in sorted(folder.glob("*.png")):
            ir, vi = (base / "Source-Image" / "TNO" / s / path.name for s in ("ir", "vi"))
            if not ir.is_file():
                print(f"  skipped {path} (no source {ir.name})")
                continue
            yield "TNO", folder.name[:-4], path, ir, vi


def frame_stats(path: Path, ir: Path, vi: Path) -> dict:
    fused, sources = read_grey(path), {"IR": read_grey(ir), "VIS grey": read_grey(vi)}
    if any(s.shape != fused.shape for s in sources.values()):
        return {}
    out = {"spread": dg.spread(fused), "problem": dg.frame_problem(path, fused, sources)}
    for label, source in sources.items():
        out[f"res {label}"] = dg.source_residual(fused, source)
        out[f"affine {label}"] = dg.affine_residual(fused, source)
    out["res"] = min(out["res IR"], out["res VIS grey"])
    return out


def image_outputs(items) -> None:
    by_method: dict[tuple, list] = defaultdict(list)
    refused, total = [], 0
    for collection, method, path, ir, vi in items:
        stats = frame_stats(path, ir, vi)
        if not stats:
            print(f"  skipped {path}: size differs from its sources")
            continue
        total += 1
        by_method[(collection, method)].append(stats)
        if stats["problem"]:
            refused.append(stats["problem"])
    if not total:
        return
    print(f"{'collection':<6} {'method':<12} {'n':>3} {'min spread':>10} {'min res IR':>10} {'min res VIS':>11} "
          f"{'min affine':>10}")
    for (collection, method), rows in sorted(by_method.items()):
        print(f"{collection:<6} {method:<12} {len(rows):>3} {min(r['spread'] for r in rows):>10.2f} "
              f"{min(r['res IR'] for r in rows):>10.3f} {min(r['res VIS grey'] for r in rows):>11.3f} "
              f"{min(min(r['affine IR'], r['affine VIS grey']) for r in rows):>10.3f}")
    every = [r for rows in by_method.values() for r in rows]
    low_spread, low_res = min(r["spread"] for r in every), min(r["res"] for r in every)
    print(f"all {total} outputs: min spread {low_spread:.2f} (threshold {dg.MIN_SPREAD}, margin "
          f"×{low_spread / dg.MIN_SPREAD:.1f}); min source residual {low_res:.3f} (threshold "
          f"{dg.MIN_SOURCE_RESIDUAL}, margin ×{low_res / dg.MIN_SOURCE_RESIDUAL:.1f}); false refusals "
          f"{len(refused)} of {total} ({len(refused) / total:.1%})")
    for line in refused:
        print("  REFUSED", line)


def degenerate_cases(ir_path: Path, vi_path: Path) -> None:
    """The statistics of the outputs the guard must refuse, built from one real pair."""
    ir, vi = read_grey(ir_path), read_grey(vi_path)
    sources = {"IR": ir, "VIS grey": vi}
    q3 = np.digitize(ir, [85, 170]) * 100.0
    cases = {
        "black": np.zeros_like(ir), "constant 128": np.full_like(ir, 128),
        "near-constant (128 + noise σ=1)": np.clip(np.rint(128 + np.random.default_rng(0).normal(0, 1, ir.shape)),
                                                   0, 255),
        "IR + 3": np.clip(ir + 3, 0, 255), "IR × 0.7 + 40": np.rint(ir * 0.7 + 40),
        "IR at 3 grey levels + 20": q3 + 20, "VIS grey × 1.2 − 10": np.clip(np.rint(vi * 1.2 - 10), 0, 255),
        "IR + noise σ=1": np.clip(np.rint(ir + np.random.default_rng(1).normal(0, 1, ir.shape)), 0, 255),
        "average (a fusion)": np.rint((ir + vi) / 2),
    }
    print(f"degenerate cases on {ir_path.name}:")
    for name, frame in cases.items():
        residual = min(dg.source_residual(frame, s) for s in sources.values())
        verdict = dg.frame_problem("x", frame, sources)
        print(f"  {name:<34} spread {dg.spread(frame):7.2f}  source residual {residual:.4f}  "
              f"{'REFUSED' if verdict else 'accepted'}")


def video_clips(m3svd: Path, tno_seq: Path):
    for clip in sorted((m3svd / "test" / "infrared_Enhance").glob("*")):
        yield f"M3SVD {clip.name}", sorted(clip.glob("*.png")), sorted(
            (m3svd / "test" / "visible_Enhance" / clip.name).glob("*.png"))
    for seq in sorted(tno_seq.glob("*_sequence")):
        yield f"TNO {seq.name}", sorted((seq / "thermal").glob("*.bmp")), sorted((seq / "visual").glob("*.bmp"))


def frozen(clips) -> None:
    print(f"{'clip':<28} {'frames':>6} {'IR motion':>9} {'VIS motion':>10} {'avg motion':>10} {'min pair avg':>12}")
    lows = []
    for name, irs, vis in clips:
        ir = [read_grey(p) for p in irs]
        vi = [read_grey(p) for p in vis]
        avg = [np.rint((a + b) / 2) for a, b in zip(ir, vi, strict=False)]
        pairs = [float(np.abs(b - a).mean()) for a, b in zip(avg, avg[1:], strict=False)]
        source = max(dg.motion(ir), dg.motion(vi))
        print(f"{name:<28} {len(avg):>6} {dg.motion(ir):>9.2f} {dg.motion(vi):>10.2f} {dg.motion(avg):>10.2f} "
              f"{min(pairs):>12.2f}")
        lows.append((dg.motion(avg), source))
        if dg.frozen_problem(name, dg.motion(avg), source, len(avg)):
            print("  REFUSED (false refusal)")
    if lows:
        low = min(m for m, _ in lows)
        print(f"frozen threshold {dg.MAX_FROZEN_MOTION} grey levels (sources must move > {dg.FROZEN_SOURCE_MOTION}): "
              f"smallest motion of a real clip's average {low:.2f} (margin ×{low / dg.MAX_FROZEN_MOTION:.1f}); "
              f"a frozen clip gives 0")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vifb", nargs=2, type=Path, metavar=("FUSED", "INPUT"), default=DEFAULTS["vifb"])
    parser.add_argument("--tno", type=Path, default=DEFAULTS["tno"])
    parser.add_argument("--m3svd", type=Path, default=DEFAULTS["m3svd"])
    parser.add_argument("--tno-seq", type=Path, default=DEFAULTS["tno_seq"])
    args = parser.parse_args(argv)
    print(f"thresholds: near-constant if grey std < {dg.MIN_SPREAD}; a source up to a grey-level mapping if the "
          f"per-level fit residual < {dg.MIN_SOURCE_RESIDUAL} of the frame's std; frozen if consecutive frames differ "
          f"by < {dg.MAX_FROZEN_MOTION} grey levels (mean abs) over the whole clip while the sources move > "
          f"{dg.FROZEN_SOURCE_MOTION}")
    items = []
    fused, inputs = args.vifb
    if fused.is_dir() and inputs.is_dir():
        items += list(vifb_items(fused, inputs))
    else:
        print(f"absent: VIFB outputs {fused} or inputs {inputs}")
    if args.tno.is_dir():
        items += list(tno_items(args.tno))
    else:
        print(f"absent: Image-Fusion TNO outputs {args.tno}")
    image_outputs(items)
    if items:
        degenerate_cases(items[0][3], items[0][4])
    clips = []
    if args.m3svd.is_dir():
        clips += [c for c in video_clips(args.m3svd, Path("/nonexistent"))]
    else:
        print(f"absent: M3SVD frames {args.m3svd}")
    if args.tno_seq.is_dir():
        clips += [c for c in video_clips(Path("/nonexistent"), args.tno_seq)]
    else:
        print(f"absent: TNO sequences {args.tno_seq}")
    frozen(clips)
    return 0


if __name__ == "__main__":
    sys.exit(main())
