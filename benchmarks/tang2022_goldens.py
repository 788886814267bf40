"""Regenerate ``tests/data/tang2022_octave.csv``: the 2022 Tang toolbox run under GNU Octave on real image pairs.

The toolbox is ``General Evaluation Metric/Evaluation`` of Linfeng-Tang/Image-Fusion at commit
``53f5542f0c3b6f457ab7f87f0939127de6dd6a1e`` (2022-05-02, before the 2023-03-03 rewrite of
``analysis_Reference.m``). Nothing of it is copied here: pass the folder that holds its ``.m`` files.

Items (``ITEMS``): 9 TNO pairs of the same repository (``General Evaluation Metric/Image/Source-Image/TNO``), each
fused by a different one of the 9 methods in ``Image/Algorithm/<Method>_TNO``; 3 VIFB pairs
(``../shared/data/vifb/input``) with VIFB fused images (``../shared/golden/vifb/fused_images``); 2 M3SVD frames
(``../shared/data/m3svd/test``) with the fused PNGs of ``../shared/golden/fused_m3svd``.

What runs, as ``Evaluation_for_Single_Algorithm.m`` runs it: ``imread``, ``rgb2gray`` on any image with more than
two channels, then ``analysis_Reference(F, IR, VI, 1)`` unmodified (EN SF SD PSNR MSE MI VIF AG CC SCD Qabf), and
for the ``EASY0`` items the three ``easy = 0`` expressions that Octave can run: ``analysis_nabf(im2double(F),
im2double(IR), im2double(VI))``, ``mef_ssim(imgSeq, F)`` (the 2022 "SSIM") and ``analysis_ms_ssim(imgSeq, F)``.
The FMI lines are left out (``dwt2(…, 'dmey')`` and MATLAB's ``edge`` have no Octave equivalent here).

One substitute is placed first on the Octave path: ``rgb2gray`` with MATLAB's full-precision weights, rounded half
away from zero (Octave's own rounds the weights to 6 digits). The grey arrays Octave used are compared with this
package's reader (:func:`m3svd.metrics.conventions.tang.matlab_rgb2gray`) and the run stops if one pixel differs.

Needs ``octave`` and the ``octave-image`` package (``entropy``, ``corr2``, ``fspecial``, ``imfilter``)::

    python benchmarks/tang2022_goldens.py --toolbox "IF/General Evaluation Metric/Evaluation" \\
        --images "IF/General Evaluation Metric/Image" [--shared ../shared] [--out tests/data/tang2022_octave.csv]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from m3svd.data.frames import read_image
from m3svd.metrics.conventions.tang import matlab_rgb2gray

REPO = Path(__file__).resolve().parents[1]
TOOLBOX_COMMIT = "53f5542f0c3b6f457ab7f87f0939127de6dd6a1e"
EASY1 = ("EN", "SF", "SD", "PSNR", "MSE", "MI", "VIF", "AG", "CC", "SCD", "Qabf")
EASY0 = ("Nabf", "SSIM", "MS_SSIM")
# (id, IR, VI, F, run the easy = 0 metrics too). Paths start with a root: "images/" = the --images folder
# (Image-Fusion's ``General Evaluation Metric/Image``), "shared/" = the --shared folder.
_TNO = "images/Source-Image/TNO"
ITEMS = [
    *[(f"tno/{n}_{m}", f"{_TNO}/ir/{n}.png", f"{_TNO}/vi/{n}.png", f"images/Algorithm/{m}_TNO/{n}.png",
       n in ("05", "08", "37"))
      for n, m in [("05", "DenseFuse"), ("08", "FusionGAN"), ("11", "IFCNN"), ("34", "PIAFusion"), ("35", "PMGI"),
                   ("36", "RFN-Nest"), ("37", "SDNet"), ("12", "SeAFusion"), ("41", "U2Fusion")]],
    *[(f"vifb/{n}_{m}", f"shared/data/vifb/input/IR/{n}.jpg", f"shared/data/vifb/input/VI/{n}.jpg",
       f"shared/golden/vifb/fused_images/{n}_{m}.jpg", e0)
      for n, m, e0 in [("manWalking", "ADF", True), ("carLight", "GTF", False), ("labMan", "SeAFusion", False)]],
    *[(f"m3svd/{c}_{f}_{r}", f"shared/data/m3svd/test/infrared_Enhance/{c}/{f}.png",
       f"shared/data/m3svd/test/visible_Enhance/{c}/{f}.png", f"shared/golden/fused_m3svd/{c}_{f}_{r}.png", False)
      for c, f, r in [("0111_1716", "0000", "avg"), ("0115_1831", "0010", "max")]],
]

RGB2GRAY_M = """function g = rgb2gray(x)
  % MATLAB's full-precision weights; uint8() rounds half away from zero and saturates
  w = [0.298936021293775, 0.587043074451121, 0.114020904255103];
  g = uint8(double(x(:,:,1)) * w(1) + double(x(:,:,2)) * w(2) + double(x(:,:,3)) * w(3));
end
"""

DRIVER_M = """function run_items(listfile, outfile, greydir)
  warning('off', 'all');  % analysis_nabf's scalar |/& warn on every pixel
  fid = fopen(listfile); out = fopen(outfile, 'w');
  line = fgetl(fid);
  while ischar(line)
    p = strsplit(line, "\\t"); id = p{1};
    im = cell(1, 3);
    for k = 1:3
      x = imread(p{k + 1});
      if size(x, 3) > 2, x = rgb2gray(x); end
      im{k} = x;
      g = fopen(fullfile(greydir, sprintf('%s_%d.bin', strrep(id, '/', '__'), k)), 'w');
      fwrite(g, x', 'uint8'); fclose(g);
    end
    [ir, vi, f] = im{:};
    [EN, SF, SD, PSNR, MSE, MI, VIF, AG, CC, SCD, Qabf] = analysis_Reference(f, ir, vi, 1);
    v = [EN, SF, SD, PSNR, MSE, MI, VIF, AG, CC, SCD, Qabf];
    names = {'EN','SF','SD','PSNR','MSE','MI','VIF','AG','CC','SCD','Qabf'};
    if str2double(p{5})
      % analysis_Reference's easy = 0 branch, its FMI lines left out
      [s1, s2] = size(ir); imgSeq = zeros(s1, s2, 2); imgSeq(:, :, 1) = ir; imgSeq(:, :, 2) = vi;
      Nabf = analysis_nabf(im2double(f), im2double(ir), im2double(vi));
      SSIM = mef_ssim(imgSeq, f);
      [MS_SSIM, t1, t2] = analysis_ms_ssim(imgSeq, f);
      v = [v, Nabf, SSIM, MS_SSIM]; names = [names, {'Nabf', 'SSIM', 'MS_SSIM'}];
    end
    for k = 1:numel(v)
      fprintf(out, '%s,%s,%.17g\\n', id, names{k}, v(k));
    end
    fflush(out); fprintf('%s done\\n', id); fflush(stdout);
    line = fgetl(fid);
  end
  fclose(fid); fclose(out);
end
"""


def resolve(path: str, roots: dict[str, Path]) -> Path:
    root, rest = path.split("/", 1)
    return roots[root] / rest


def file_digest(paths: list[Path]) -> str:
    """First 16 hex digits of sha256 over the three input files' bytes, in order (IR, VI, F)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def toolbox_grey(path: Path) -> np.ndarray:
    x = read_image(path)
    return matlab_rgb2gray(x) if x.ndim == 3 else x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--toolbox", type=Path, required=True, help=f"Image-Fusion@{TOOLBOX_COMMIT[:7]} "
                    "'General Evaluation Metric/Evaluation' (the .m files)")
    ap.add_argument("--images", type=Path, required=True, help="Image-Fusion 'General Evaluation Metric/Image'")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "tang2022_octave.csv")
    ap.add_argument("--octave", default="octave")
    args = ap.parse_args()
    if not (args.toolbox / "analysis_Reference.m").is_file():
        sys.exit(f"--toolbox {args.toolbox}: expected the toolbox's .m files (analysis_Reference.m), not found")
    roots = {"images": args.images, "shared": args.shared}
    for item in ITEMS:
        for p in item[1:4]:
            if not resolve(p, roots).is_file():
                sys.exit(f"{resolve(p, roots)}: input of item {item[0]} not found")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "subst").mkdir()
        (tmp / "grey").mkdir()
        (tmp / "subst" / "rgb2gray.m").write_text(RGB2GRAY_M)
        (tmp / "subst" / "run_items.m").write_text(DRIVER_M)
        (tmp / "items.tsv").write_text("".join(
            "\t".join([i, *(str(resolve(p, roots)) for p in (a, b, f)), str(int(e0))]) + "\n"
            for i, a, b, f, e0 in ITEMS))
        code = (f"pkg load image; addpath('{args.toolbox}'); addpath('{tmp / 'subst'}'); "
                f"run_items('{tmp / 'items.tsv'}', '{tmp / 'values.csv'}', '{tmp / 'grey'}');")
        t0 = time.time()
        subprocess.run([args.octave, "--no-gui", "--no-window-system", "-q", "--eval", code], check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp)  # Octave may drop files in its cwd
        print(f"octave: {time.time() - t0:.0f} s for {len(ITEMS)} items", file=sys.stderr)
        values = [line.split(",") for line in (tmp / "values.csv").read_text().splitlines()]
        for i, *paths, _ in ITEMS:  # Octave's decoding + grey conversion must be this package's reader's
            for k, p in enumerate(paths, 1):
                ours = toolbox_grey(resolve(p, roots))
                theirs = np.fromfile(tmp / "grey" / f"{i.replace('/', '__')}_{k}.bin", np.uint8)
                if theirs.size != ours.size or (theirs.reshape(ours.shape) != ours).any():
                    sys.exit(f"{resolve(p, roots)}: Octave's grey image differs from matlab_rgb2gray(read_image)")
    paths = {i: (a, b, f) for i, a, b, f, _ in ITEMS}
    digests = {i: file_digest([resolve(p, roots) for p in ps]) for i, ps in paths.items()}
    tmp_out = args.out.with_suffix(".tmp")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp_out, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "ir", "vi", "fused", "inputs_sha256_16", "metric", "value"])
        for i, metric, value in values:
            w.writerow([i, *paths[i], digests[i], metric, value])
    os.replace(tmp_out, args.out)
    print(f"wrote {len(values)} values for {len(paths)} items to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
