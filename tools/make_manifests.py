"""Write the download manifests of the public image-pair benchmarks from local bare git mirrors.

Run by a maintainer, not at install time: every row's size, git blob SHA-1 and sha256 are computed from the
bytes in the mirror at the pinned commit (the blob SHA-1 is checked against the tree's), so a manifest never
carries a hash that was not reproduced here. A blob the snapshot lacks keeps only the tree's SHA-1 and is listed
under ``unverified`` in ``subsets.json``.

    python tools/make_manifests.py /work/.mirror     # rewrites m3svd/data/manifests/{tno42,vifb21}*.csv
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

MANIFESTS = Path(__file__).resolve().parents[1] / "m3svd" / "data" / "manifests"

IMAGE_FUSION = ("Linfeng-Tang/Image-Fusion", "dba5bf3d507e09227993ca9743776bf05ce35c51")
VIFB = ("xingchenzhang/VIFB", "22b2ea9d91499cc5962d9bdcae9c290270f0fade")
TNO_DIR = "General Evaluation Metric/Image/Source-Image/TNO"
TNO_FUSED_DIR = "General Evaluation Metric/Image/Algorithm"
# The nine methods that Evaluation_for_Multi_Algorithm.m (same folder's Evaluation/) scores on TNO.
TNO_METHODS = ("DenseFuse", "FusionGAN", "IFCNN", "PIAFusion", "PMGI", "RFN-Nest", "SDNet", "SeAFusion", "U2Fusion")
FRAME = "000000"  # one frame per image pair: DIR/<clip>/000000.<ext>, the predictions layout


def git(mirror: Path, *args: str, binary: bool = False):
    out = subprocess.run(["git", f"--git-dir={mirror}", *args], capture_output=True, check=False)
    if out.returncode:
        return None
    return out.stdout if binary else out.stdout.decode()


def tree(mirror: Path, commit: str, folder: str) -> dict[str, str]:
    """``path -> blob sha1`` of every file under ``folder`` at ``commit``."""
    listing = git(mirror, "ls-tree", "-r", "-z", commit, "--", folder)
    if listing is None:
        sys.exit(f"{mirror}: cannot list {folder} at {commit}")
    out = {}
    for item in listing.split("\0"):
        if item:
            meta, path = item.split("\t", 1)
            out[path] = meta.split()[2]
    return out


def row(mirror: Path, repo: str, commit: str, source: str, blob: str, target: str) -> tuple[dict, bool]:
    """One manifest row; ``False`` when the snapshot lacks the blob (then only the tree's SHA-1 is pinned)."""
    url = f"https://github.com/{repo}/raw/{commit}/{urllib.parse.quote(source)}"
    data = git(mirror, "cat-file", "blob", blob, binary=True)
    if data is None:
        size = git(mirror, "cat-file", "-s", blob)
        return {"path": target, "size": size.strip() if size else "", "sha256": "", "git_blob_sha1": blob,
                "urls": url}, False
    computed = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    if computed != blob:
        sys.exit(f"{source}: blob {blob} hashes to {computed}; the mirror is corrupt")
    return {"path": target, "size": str(len(data)), "sha256": hashlib.sha256(data).hexdigest(),
            "git_blob_sha1": blob, "urls": url}, True


def tno42(mirror: Path):
    files = tree(mirror, IMAGE_FUSION[1], TNO_DIR)
    for source in sorted(files):
        modality, name = source.split("/")[-2:]
        yield source, files[source], f"{modality.upper()}/{name}"  # IR/ + VI/: the image-pair layout


def tno42_fused(mirror: Path):
    pairs = {Path(p).stem for p in tree(mirror, IMAGE_FUSION[1], f"{TNO_DIR}/ir")}
    for method in TNO_METHODS:
        files = tree(mirror, IMAGE_FUSION[1], f"{TNO_FUSED_DIR}/{method}_TNO")
        for source in sorted(files):
            stem, suffix = Path(source).stem, Path(source).suffix
            if stem not in pairs:  # PMGI_TNO/43.png, 44.png: no such source pair (see subsets.json)
                continue
            yield source, files[source], f"{method}/{stem}/{FRAME}{suffix}"


def vifb21(mirror: Path):
    files = tree(mirror, VIFB[1], "input")
    for source in sorted(files):
        yield source, files[source], source  # input/{IR,VI}/<image>.jpg, VIFB's own layout


def vifb21_fused(mirror: Path):
    images = sorted({Path(p).stem for p in tree(mirror, VIFB[1], "input/IR")}, key=len, reverse=True)
    files = tree(mirror, VIFB[1], "output/fused_images")
    for source in sorted(files):
        stem, suffix = Path(source).stem, Path(source).suffix
        image = next((i for i in images if stem.startswith(i + "_")), None)
        if image is None:
            sys.exit(f"{source}: no input image is a prefix of this fused file's name")
        method = stem[len(image) + 1:]  # <image>_<method>.jpg; methods may hold '_' (HMSD_GF, LP_SR)
        yield source, files[source], f"{method}/{image}/{FRAME}{suffix}"


SUBSETS = {
    "tno42": (IMAGE_FUSION, "Linfeng-Tang+Image-Fusion", tno42),
    "tno42-fused": (IMAGE_FUSION, "Linfeng-Tang+Image-Fusion", tno42_fused),
    "vifb21": (VIFB, "xingchenzhang+VIFB", vifb21),
    "vifb21-fused": (VIFB, "xingchenzhang+VIFB", vifb21_fused),
}


def main(mirrors: Path) -> None:
    index_path = MANIFESTS / "subsets.json"
    index = json.loads(index_path.read_text())
    for name, ((repo, commit), folder, files) in SUBSETS.items():
        mirror = mirrors / folder / "repo"
        rows, unverified = [], []
        for source, blob, target in files(mirror):
            entry, ok = row(mirror, repo, commit, source, blob, target)
            rows.append(entry)
            if not ok:
                unverified.append(target)
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            sys.exit(f"{commit}: not a full commit id")
        text = io.StringIO()
        writer = csv.DictWriter(text, ["path", "size", "sha256", "git_blob_sha1", "urls"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (MANIFESTS / f"{name}.csv").write_text(text.getvalue())
        if name in index:
            index[name]["unverified"] = unverified
        total = sum(int(r["size"] or 0) for r in rows)
        print(f"{name}: {len(rows)} files, {total} bytes, {len(unverified)} not verifiable from the snapshot")
    index_path.write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror"))
