"""Compare the ``tang2022`` convention with the MATLAB values stored next to the 2022 toolbox.

Linfeng-Tang/Image-Fusion at ``53f5542f`` keeps MATLAB's output of ``Evaluation_for_Multi_Algorithm.m`` (``easy =
1``: EN SF SD PSNR MSE MI VIF AG CC SCD Qabf) in ``General Evaluation Metric/Metric/Metric_TNO.xlsx``: one sheet
per metric, row 2 the method names, row k + 2 the TNO pair ``kk.png`` (42 pairs × 9 methods), 17 significant
digits. Those are the numbers the 2022 papers' TNO tables were averaged from; this prints, per metric, the max and
median relative error of ``tang2022`` over every value (or over ``--images``)::

    python benchmarks/tang2022_matlab.py "IF/General Evaluation Metric" [--images 5 8 37]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import zipfile
from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree

from m3svd import metrics
from m3svd.data.frames import read_image
from m3svd.metrics import Sources

SHEETS = {"EN": "en", "SF": "sf", "SD": "sd", "PSNR": "psnr", "MSE": "mse", "MI": "mi", "VIF": "vif", "AG": "ag",
          "CC": "cc", "SCD": "scd", "Qabf": "qabf"}
_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


def read_xlsx(path: Path) -> dict[str, dict[str, str]]:
    """{sheet: {cell: text}} of a small .xlsx, shared strings resolved (enough for MATLAB's ``writetable``)."""
    with zipfile.ZipFile(path) as z:
        strings = ["".join(t.text or "" for t in si.iter(f"{_NS}t"))
                   for si in ElementTree.fromstring(z.read("xl/sharedStrings.xml")).iter(f"{_NS}si")]
        rels = {r.get("Id"): r.get("Target") for r in ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))}
        out = {}
        for sheet in ElementTree.fromstring(z.read("xl/workbook.xml")).iter(f"{_NS}sheet"):
            cells = {}
            for c in ElementTree.fromstring(z.read("xl/" + rels[sheet.get(_REL)].removeprefix("/xl/"))).iter(
                    f"{_NS}c"):
                v = c.find(f"{_NS}v")
                if v is not None:
                    cells[c.get("r")] = strings[int(v.text)] if c.get("t") == "s" else v.text
            out[sheet.get("name")] = cells
    return out


def compare(base: Path, images=range(1, 43), convention: str = "tang2022") -> dict[str, list]:
    """{metric: [(rel_err, "kk.png/Method", ours, matlab)]} for every stored value of the chosen pairs."""
    table = read_xlsx(base / "Metric" / "Metric_TNO.xlsx")
    methods = {col: table["SD"][f"{col}2"] for col in "ABCDEFGHI"}
    tno = base / "Image" / "Source-Image" / "TNO"
    errors: dict[str, list] = defaultdict(list)
    for k in images:
        name = f"{k:02d}.png"
        sources = Sources(ir=read_image(tno / "ir" / name), vi=read_image(tno / "vi" / name))
        for col, method in methods.items():
            fused = read_image(base / "Image" / "Algorithm" / f"{method}_TNO" / name)
            for sheet, metric in SHEETS.items():
                ref = float(table[sheet][f"{col}{k + 2}"])
                ours = float(metrics.get(metric, convention)(fused, sources=sources))
                errors[metric].append((abs(ours - ref) / abs(ref), f"{name}/{method}", ours, ref))
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base", type=Path, help="Image-Fusion's 'General Evaluation Metric' folder at 53f5542")
    ap.add_argument("--images", type=int, nargs="+", default=list(range(1, 43)))
    ap.add_argument("--convention", default="tang2022")
    args = ap.parse_args()
    if not (args.base / "Metric" / "Metric_TNO.xlsx").is_file():
        sys.exit(f"{args.base}: expected Metric/Metric_TNO.xlsx of Image-Fusion@53f5542, not found")
    print("| metric | values | max rel. error | median | worst item |\n|---|---|---|---|---|")
    for metric, errs in compare(args.base, args.images, args.convention).items():
        e, item, ours, ref = max(errs)
        print(f"| {metric} | {len(errs)} | {e:.2e} | {statistics.median(x[0] for x in errs):.1e} | {item} "
              f"(ours {ours:.17g}, MATLAB {ref:.17g}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
