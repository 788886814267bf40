"""The ``tang2022`` convention: the 2022 Tang toolbox under GNU Octave (``tests/data/tang2022_octave.csv``, made by
``benchmarks/tang2022_goldens.py``), MATLAB's own stored values when the toolbox repository is at hand, and the
2022 data-type quirks on small arrays.

Items whose inputs live in Image-Fusion (``images/…`` paths) run only when ``M3SVD_TANG2022_DIR`` names that
repository's ``General Evaluation Metric`` folder at commit 53f5542 (it also holds MATLAB's ``Metric/*.xlsx``);
the ``shared/…`` items use the read-only ``../shared`` checkout.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import os
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from m3svd import metrics
from m3svd.data.frames import read_image
from m3svd.metrics import Sources
from m3svd.metrics.conventions import tang as T
from m3svd.metrics.conventions import tang2022 as T2

GOLDEN = Path(__file__).parent / "data" / "tang2022_octave.csv"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = "M3SVD_TANG2022_DIR"
NAMES = {"EN": "en", "SD": "sd", "SF": "sf", "AG": "ag", "MI": "mi", "MSE": "mse", "PSNR": "psnr", "CC": "cc",
         "SCD": "scd", "VIF": "vif", "Qabf": "qabf", "Nabf": "nabf", "SSIM": "ssim", "MS_SSIM": "mef_ms_ssim"}
# Relative tolerances against Octave (observed worst cases: metrics/CONVENTIONS.md). The registered qabf sums conv2
# in MATLAB's order, Octave in its own: the ±1e-17 Sobel branches on flat regions differ, hence the loose "qabf";
# "qabf_octave" is the same definition summed in Octave's order.
RTOL = {"en": 1e-12, "sd": 1e-12, "sf": 1e-12, "ag": 1e-12, "mi": 1e-10, "mse": 1e-12, "psnr": 1e-12,
        "cc": 1e-12, "scd": 1e-10, "vif": 5e-7, "qabf": 2e-2, "qabf_octave": 1e-12, "nabf": 1e-12, "ssim": 1e-10,
        "mef_ms_ssim": 1e-10}
# against MATLAB's stored values (17 significant digits), all 378: worst MI 5.3e-12, VIF 1.9e-8 (filtering order on
# an ill-conditioned E[x^2] - mu^2, as for tang), CC 5.1e-14, the others <= 6.1e-15
RTOL_MATLAB = {**{n: 1e-12 for n in ("en", "sd", "sf", "ag", "mse", "psnr", "cc", "scd", "qabf")},
               "mi": 1e-10, "vif": 5e-8}
# its own reader name: the source maps it memoises are not the registered qabf's
QABF_OCTAVE = T.compute_qabf(T.Reader("tang2022-octave-order", T.tang_grey), equal_is_one=False, unit=T2.UNIT,
                             maps=partial(T2.qabf_maps_2022, summation="octave"))


def roots() -> dict[str, Path | None]:
    env = os.environ.get(ENV)
    return {"shared": SHARED_DATA.parent, "images": Path(env) / "Image" if env else None}


def resolve(path: str) -> Path | None:
    root, rest = path.split("/", 1)
    base = roots()[root]
    return None if base is None or not base.exists() else base / rest


def load_items() -> dict[str, dict]:
    items: dict[str, dict] = {}
    with open(GOLDEN, newline="") as fh:
        for row in csv.DictReader(fh):
            item = items.setdefault(row["id"], {**{k: row[k] for k in ("ir", "vi", "fused", "inputs_sha256_16")},
                                                "values": {}})
            item["values"][NAMES[row["metric"]]] = float(row["value"])
    return items


def read_sources(item: dict):
    """(Sources, fused) decoded as the toolkit decodes them, or None when the inputs are not on this machine."""
    paths = [resolve(item[k]) for k in ("ir", "vi", "fused")]
    if any(p is None or not p.is_file() for p in paths):
        return None
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()[:16]
    assert digest == item["inputs_sha256_16"], f"{paths}: not the files the golden values were computed from"
    ir, vi, fused = (read_image(p) for p in paths)
    return Sources(ir=ir, vi=vi), fused


@pytest.fixture(scope="module")
def octave_errors():
    """{metric: [(rel_err, id, ours, golden)]} over every golden item whose inputs are available."""
    errors = defaultdict(list)
    for item_id, item in load_items().items():
        got = read_sources(item)
        if got is None:
            continue
        sources, fused = got
        for name, ref in item["values"].items():
            ours = float(metrics.get(name, "tang2022")(fused, sources=sources))
            errors[name].append((abs(ours - ref) / abs(ref), item_id, ours, ref))
            if name == "qabf":
                ours = float(QABF_OCTAVE(sources, fused[None])[0])
                errors["qabf_octave"].append((abs(ours - ref) / abs(ref), item_id, ours, ref))
    if not errors:
        pytest.skip(f"no golden item's inputs available (../shared, or ${ENV})")
    return errors


def worst(errors) -> str:
    e, item, ours, ref = max(errors)
    return f"worst rel. err {e:.3e} on {item}: ours {ours!r}, golden {ref!r} ({len(errors)} items)"


@pytest.mark.parametrize("name", sorted(RTOL))
def test_matches_octave_golden(octave_errors, name):
    errors = octave_errors[name]
    if not errors:
        pytest.skip(f"no available item has {name} (the easy = 0 items need ${ENV})")
    assert max(errors)[0] <= RTOL[name], worst(errors)


def test_golden_file_covers_every_item_and_metric():
    items = load_items()
    assert len(items) == 14
    easy0 = [i for i, item in items.items() if "nabf" in item["values"]]
    assert len(easy0) == 4
    for item in items.values():
        assert set(item["values"]) >= set(NAMES.values()) - {"nabf", "ssim", "mef_ms_ssim"}


# -- MATLAB's own output, stored with the toolbox ---------------------------------------------------------
MATLAB_IMAGES = (5, 8, 37)  # three small TNO pairs × the 9 methods (all 42: benchmarks/tang2022_matlab.py)


def test_matches_matlab_values_stored_with_the_toolbox():
    env = os.environ.get(ENV)
    if not env:
        pytest.skip(f"${ENV} not set (Image-Fusion's 'General Evaluation Metric' folder at 53f5542)")
    spec = importlib.util.spec_from_file_location("tang2022_matlab", BENCHMARKS / "tang2022_matlab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    errors = module.compare(Path(env), MATLAB_IMAGES)
    assert set(errors) == set(RTOL_MATLAB)
    assert all(len(e) == 27 for e in errors.values())
    bad = {m: worst(e) for m, e in errors.items() if max(e)[0] > RTOL_MATLAB[m]}
    assert not bad, bad


# -- the 2022 quirks on small arrays ---------------------------------------------------------------------
def _scene(n=2, h=48, w=56, seed=3):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 90 + 70 * np.sin(x / 6.0) * np.cos(y / 5.0)
    ir = np.clip(base[None] + rng.normal(0, 10, (n, h, w)), 0, 255).astype(np.uint8)
    vi = np.clip(255 - base[None] + rng.normal(0, 10, (n, h, w)), 0, 255).astype(np.uint8)
    fused = ((ir.astype(int) + vi + 1) // 2).astype(np.uint8)
    fused[:, 5:15, 5:20] = 100  # a flat patch: Sobel responses that are 0 on integers
    return ir, vi, fused


def test_sd_is_matlab_uint8_arithmetic():
    f = np.array([[[0, 10, 20, 250]]], np.uint8)  # mean 70: only 250 - 70 = 180 survives, squared -> 255
    assert metrics.get("sd", "tang2022")(f, ir=f, vi=f)[0] == pytest.approx(np.sqrt(255 / 4), rel=1e-15)
    f = np.array([[[10, 11, 12, 14]]], np.uint8)  # mean 11.75: uint8(2.25) = 2, uint8(0.25) = 0 -> sqrt(4/4)
    assert metrics.get("sd", "tang2022")(f, ir=f, vi=f)[0] == 1.0


def test_vif_first_scale_products_saturate():
    ir, vi, fused = _scene(h=64, w=64)
    dark = {"ir": ir // 16, "vi": vi // 16}  # every product <= 225: no saturation, the 2023 value
    assert np.allclose(metrics.get("vif", "tang2022")(fused // 16, **dark),
                       metrics.get("vif", "tang")(fused // 16, **dark), rtol=1e-13)
    assert not np.allclose(metrics.get("vif", "tang2022")(fused, ir=ir, vi=vi),
                           metrics.get("vif", "tang")(fused, ir=ir, vi=vi))


def test_unit_scaled_metrics_equal_tang_up_to_rounding():
    ir, vi, fused = _scene()
    for name, factor in (("sf", 1 / 255), ("cc", 1), ("scd", 1), ("en", 1), ("mi", 1), ("ag", 1), ("mse", 1),
                         ("psnr", 1), ("mef_ms_ssim", 1)):
        expected = metrics.get(name, "tang")(fused, ir=ir, vi=vi) * factor
        assert np.allclose(metrics.get(name, "tang2022")(fused, ir=ir, vi=vi), expected, rtol=1e-13, atol=0), name


def test_conv2_orders_agree_on_integers_and_differ_on_unit_data():
    ir, _, fused = _scene()
    x = fused.astype(np.float64)
    for k in (T2._QABF_X, T2._QABF_Y):
        naive = np.zeros_like(x)
        p = np.pad(x, ((0, 0), (1, 1), (1, 1)))
        for i in range(3):
            for j in range(3):
                naive += k[i, j] * p[:, 2 - i:2 - i + x.shape[1], 2 - j:2 - j + x.shape[2]]
        assert np.array_equal(T2.conv2_same(x, k, "matlab"), naive)
        assert np.array_equal(T2.conv2_same(x, k, "octave"), naive)
    unit = x / 255
    sx = T2.conv2_same(unit, T2._QABF_X)
    assert (sx[:, 6:14, 6:19] != 0).any() and (np.abs(sx[:, 6:14, 6:19]) < 1e-15).all()  # ±1e-17 on the patch
    assert not np.array_equal(sx, T2.conv2_same(unit, T2._QABF_X, "octave"))


def test_nabf_is_called_in_the_right_order_with_unit_weights():
    ir, vi, fused = _scene(n=1)
    maps = [T2.nabf_maps_2022(x[0] / 255.0) for x in (fused, ir, vi)]
    assert max(m[0].max() for m in maps) < 2  # Td = 2 is never reached: every weight is 0.001
    assert metrics.get("nabf", "tang2022")(fused, ir=ir, vi=vi)[0] == pytest.approx(T.nabf_score(*maps), rel=1e-15)


def test_ssim_is_single_scale_mef_ssim():
    ir, vi, fused = _scene(n=1, h=60, w=64)
    ref = T.mef_ms_ssim_reference(ir[0].astype(float), vi[0].astype(float))
    expected = T.mef_ssim_scales(ref[:1], fused[0].astype(float))[0]
    assert metrics.get("ssim", "tang2022")(fused, ir=ir, vi=vi)[0] == expected


def test_registry_mirrors_tang():
    got = {m.name: m for m in metrics.list("tang2022")}
    assert set(got) == {m.name for m in metrics.list("tang") if m.kind == "image"}
    assert all(m.higher_is_better == (m.name not in ("mse", "nabf")) for m in got.values())


@pytest.mark.parametrize("name", sorted(NAMES.values()))
def test_batch_equals_singles_and_rgb_goes_through_rgb2gray(name):
    ir, vi, fused = _scene(h=48, w=56)
    metric = metrics.get(name, "tang2022")
    batch = metric(fused, ir=ir, vi=vi)
    assert np.array_equal(batch, [metric(fused[i:i + 1], ir=ir[i:i + 1], vi=vi[i:i + 1])[0] for i in range(len(fused))])
    colour = np.stack([vi, fused, ir], axis=3)
    assert np.array_equal(metric(colour, ir=ir, vi=vi), metric(T.matlab_rgb2gray(colour), ir=ir, vi=vi))
