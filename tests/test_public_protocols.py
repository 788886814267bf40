"""The complete public protocols (m3svd-val-*, tno42, vifb21) and the download subsets that feed them.

Real data: ``../shared/data/m3svd`` (3 of the 9 val clips), ``../shared/data/vifb`` (VIFB's 21 input pairs) and
``../shared/golden/vifb/fused_images`` (VIFB's fused JPEGs, 23 of its 25 methods); each test skips when absent.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import SHARED_DATA, shared
from http_faults import FaultServer

from m3svd import protocols
from m3svd.data import download as dl
from m3svd.data.subsets import get_subset
from m3svd.evaluate import evaluate, find_dataset, protocol_clips

VAL = ("m3svd-val-clean", "m3svd-val-degraded", "m3svd-val-visible-only")
VAL_CLIPS = ["0111_1716", "0111_1753", "0111_1803", "0114_1551", "0114_1609", "0114_1611", "0115_1831",
             "0115_1834", "0115_1847"]
TNO_METHODS = ["DenseFuse", "FusionGAN", "IFCNN", "PIAFusion", "PMGI", "RFN-Nest", "SDNet", "SeAFusion", "U2Fusion"]
VIFB_METHODS = ["ADF", "CBF", "CNN", "DLF", "FPDE", "GFCE", "GFF", "GTF", "HMSD_GF", "Hybrid_MSD", "IFCNN", "IFEVIP",
                "LP_SR", "LatLRR", "MGFF", "MSVD", "NSCT_SR", "RP_SR", "ResNet", "SeAFusion", "SwinFusion", "TIF",
                "U2Fusion", "VSMWLS", "YDTR"]
URL = re.compile(r"https://github\.com/(Linfeng-Tang/(VideoFusion|Image-Fusion)|xingchenzhang/VIFB)/raw/[0-9a-f]{40}/\S+")


def golden_vifb() -> Path:
    path = SHARED_DATA.parent / "golden" / "vifb" / "fused_images"
    if not path.is_dir():
        pytest.skip(f"golden data not available: {path} (the read-only ../shared/golden checkout)")
    return path


def stems(subset: str, folder: str) -> list[str]:
    return [Path(f.path).stem for f in get_subset(subset).files if str(Path(f.path).parent) == folder]


# -- protocols ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", VAL)
def test_val_protocols_name_the_val_frames_clips(name):
    protocol = protocols.load(name)
    assert protocol.clips == tuple(VAL_CLIPS) and protocol.frames == (0, 20) and protocol.split == "test"
    assert protocol.folders == ("val-frames",) and protocol.layouts == ("m3svd",)
    assert protocol.references == "clean" and protocol.temporal_metrics and "tgf" in protocol.temporal_metrics
    files = get_subset("val-frames").files
    clips = Counter(f.path.split("/")[2] for f in files)
    assert sorted(clips) == VAL_CLIPS and set(clips.values()) == {80}  # 20 frames x 4 variants
    assert {
        "m3svd-val-clean": ("clean", ("ir", "vi"), ()),
        "m3svd-val-degraded": ("degraded", ("ir", "vi"), ("psnr", "ssim")),
        "m3svd-val-visible-only": ("degraded", ("vi",), ()),
    }[name] == (protocol.variant, protocol.inputs, protocol.restoration_metrics)


def test_image_pair_protocols_name_every_pair_and_no_temporal_metric():
    tno42, vifb21 = protocols.load("tno42"), protocols.load("vifb21")
    assert tno42.clips == tuple(f"{i:02d}" for i in range(1, 43)) == tuple(stems("tno42", "IR"))
    assert stems("tno42", "VI") == list(tno42.clips)
    assert tno42.layouts == ("pairs",) and tno42.folders == ("tno42",) and tno42.convention == "tang"
    assert vifb21.clips == tuple(stems("vifb21", "input/IR")) == tuple(stems("vifb21", "input/VI"))
    assert len(vifb21.clips) == 21 and vifb21.layouts == ("vifb",) and vifb21.convention == "vifb"
    assert len(vifb21.image_metrics) == 13 and len(tno42.image_metrics) == 11
    for protocol in (tno42, vifb21):
        assert protocol.frames == (0, None) and not protocol.temporal_metrics and not protocol.restoration_metrics


@pytest.mark.parametrize("name", VAL)
def test_val_protocols_select_the_clips_and_frames_on_real_data(name):
    protocol = protocols.load(name)
    clipset = find_dataset(protocol, shared("m3svd"))
    present, missing = protocol_clips(protocol, clipset)
    assert present == ["0111_1716", "0114_1611", "0115_1831"]  # the 3 val clips in ../shared/data/m3svd
    assert missing == [c for c in VAL_CLIPS if c not in present]
    for clip_name in present:
        clip = clipset.clip(clip_name, protocol.split, protocol.variant)
        assert len(clip) == 20 and clip.size == (480, 640)
        assert protocol.variant == "clean" or clip.reference.variant == "clean"


def test_vifb21_selects_all_21_pairs_on_real_data():
    protocol = protocols.load("vifb21")
    clipset = find_dataset(protocol, shared("vifb"))
    present, missing = protocol_clips(protocol, clipset)
    assert present == list(protocol.clips) and missing == []
    assert all(len(clipset.clip(name)) == 1 for name in present)


def test_a_pairs_folder_is_not_taken_for_another_benchmark(tmp_path):
    """tno42 on VIFB's pairs (IR/ + VI/ with VIFB names): no clip of the protocol is there."""
    vifb = shared("vifb")
    for modality in ("IR", "VI"):
        (tmp_path / "tno42" / modality).mkdir(parents=True)
        for name in ("fight", "snow"):
            (tmp_path / "tno42" / modality / f"{name}.jpg").write_bytes(
                (vifb / "input" / modality / f"{name}.jpg").read_bytes())
    protocol = protocols.load("tno42")
    clipset = find_dataset(protocol, tmp_path)
    assert clipset.layout == "pairs" and protocol_clips(protocol, clipset) == ([], list(protocol.clips))


# -- manifests ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, count", [("tno42", 84), ("tno42-fused", 9 * 42), ("vifb21", 42),
                                         ("vifb21-fused", 25 * 21), ("val-frames", 720)])
def test_manifests_are_complete_and_well_formed(name, count):
    subset = get_subset(name)
    assert len(subset.files) == count and subset.unverified == ()
    assert len({f.path for f in subset.files}) == count
    commits = set()
    for f in subset.files:
        assert f.size and f.size > 0, f.path
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256 or ""), f.path
        assert re.fullmatch(r"[0-9a-f]{40}", f.git_blob_sha1 or ""), f.path
        assert len(f.urls) == 1 and URL.fullmatch(f.urls[0]), f.urls
        commits.add(f.urls[0].split("/raw/")[1].split("/")[0])
    assert len(commits) == 1 and next(iter(commits)) in subset.source


@pytest.mark.parametrize("name, methods, clips", [("tno42-fused", TNO_METHODS, "tno42"),
                                                  ("vifb21-fused", VIFB_METHODS, "vifb21")])
def test_published_outputs_are_in_the_predictions_layout(name, methods, clips):
    """<Method>/<clip>/000000.<ext>: every method has exactly one frame for every clip of the protocol."""
    wanted = set(protocols.load(clips).clips)
    by_method: dict[str, set[str]] = {}
    for f in get_subset(name).files:
        method, clip, frame = f.path.split("/")
        assert Path(frame).stem == "000000", f.path
        by_method.setdefault(method, set()).add(clip)
    assert sorted(by_method) == sorted(methods)
    assert all(found == wanted for found in by_method.values())


def test_pmgi_extra_files_are_left_out_and_said_so():
    subset = get_subset("tno42-fused")
    assert not any(f.urls[0].endswith(("PMGI_TNO/43.png", "PMGI_TNO/44.png")) for f in subset.files)
    assert "43.png" in subset.excluded and "44.png" in subset.excluded


def test_vifb_manifests_match_the_real_files():
    """The pinned hashes are those of the copies in ../shared (byte-identical to VIFB's)."""
    inputs = shared("vifb")
    for f in get_subset("vifb21").files:
        assert hashlib.sha256((inputs / f.path).read_bytes()).hexdigest() == f.sha256, f.path
    golden, checked = golden_vifb(), 0
    for f in get_subset("vifb21-fused").files:
        method, image, _ = f.path.split("/")
        path = golden / f"{image}_{method}.jpg"
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == f.sha256, f.path
            checked += 1
    assert checked == 23 * 21


# -- download into the layouts evaluate reads ----------------------------------------------------------------
@pytest.mark.network
def test_downloaded_vifb_inputs_and_outputs_are_evaluated_in_place(tmp_path):
    """vifb21 and two methods of vifb21-fused from a local server; evaluate finds both without --root tricks."""
    inputs, golden = shared("vifb"), golden_vifb()
    fused = get_subset("vifb21-fused")
    wanted = tuple(f for f in fused.files if f.path.split("/")[0] in ("ADF", "GFF"))
    root = tmp_path / "root"
    with FaultServer(root=inputs) as server:
        for f in wanted:
            method, image, _ = f.path.split("/")
            server.add(f.path, (golden / f"{image}_{method}.jpg").read_bytes())
        options = dl.Options(workers=2, timeout=5.0, backoff=0.01)
        report = dl.download(get_subset("vifb21"), root, options, mirrors=[server.url], show_progress=False)
        assert report.ok and len(report.files) == 42, report.format()
        report = dl.download(fused, root, options, mirrors=[server.url], files=wanted, show_progress=False)
        assert report.ok and len(report.files) == 42, report.format()
    assert sorted(p.name for p in (root / "vifb21-fused").iterdir()) == ["ADF", "GFF"]
    full = protocols.load("vifb21")
    quick = tmp_path / "vifb21-quick.toml"  # same data section, two cheap metrics: this tests the layout
    text = Path(full.path).read_text()
    quick.write_text(re.sub(r'image = \[[^]]*\]', 'image = ["en", "sd"]', text.split("[ranking")[0]))
    run = evaluate(protocols.load(quick), tmp_path / "out", predictions=root / "vifb21-fused" / "ADF", name="ADF",
                   root=root)
    assert run.missing == [] and sorted(run.results["clip"].unique()) == sorted(full.clips)
    assert len(run.results) == 21 * 2 and run.results["value"].notna().all()
