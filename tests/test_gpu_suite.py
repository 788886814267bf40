"""``benchmarks/gpu_suite.py``: its tiny CPU mode runs the whole suite and prints every figure the GPU run prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "benchmarks" / "gpu_suite.py"
RATE = r"\d+\.\d+ pairs/s"


def run_suite(*args: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(SUITE), "--tiny", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.splitlines()


def section(lines: list[str], name: str) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith(f"[{name}]"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return lines[start + 1:end]


@pytest.mark.slow
def test_tiny_mode_prints_every_figure_with_its_target(tmp_path):
    empty = tmp_path / "no-code"
    empty.mkdir()
    lines = run_suite("--temcoco-code", str(empty))
    text = "\n".join(lines)
    assert lines[0].startswith("m3svd GPU suite (TINY")
    assert re.search(r"^device: CPU .*\(cpu, \d+ torch threads\)", text, re.M)
    assert "model weights: seeded random (speed only; never a quality figure)" in lines
    assert "image metrics ≥ 1,000 pairs/s" in text and "with temporal ≥ 300 pairs/s" in text
    assert "inference ≥ 3× official at the same precision" in text

    image = section(lines, "image metrics")
    assert re.match(rf"\s+numpy registry .* {RATE}$", image[0])
    for dtype in ("float32", "float64"):
        (line,) = [x for x in image if f"torch cpu {dtype}" in x]
        assert re.search(rf"{RATE} +\d+\.\d+× numpy  max rel dev \d\.\de[-+]\d+  target ≥ 1,000: not judged \(tiny\)$",
                         line), line
    (score,) = [x for x in image if "metrics.score(device=cpu) m3svd-clean set" in x]
    assert re.search(rf"{RATE} +\d+\.\d+× numpy  max rel dev \S+  \(evaluate --metrics-device's path\)$", score)
    deviation = [float(re.search(r"max rel dev (\S+)", x).group(1)) for x in image[1:] if "float32" not in x]
    assert len(deviation) == 2 and max(deviation) < 1e-9  # float64 torch agrees with numpy to rounding

    temporal = section(lines, "temporal metrics")
    assert [re.search(r"temporal, (.*?) +\d", x).group(1) for x in temporal[:2]] == [
        "cold source flows", "cached source flows"]
    both = rf"{RATE};  with image metrics \(torch float64\) +{RATE}  target ≥ 300: not judged \(tiny\)$"
    assert all(re.search(both, x) for x in temporal[:2]), temporal
    assert temporal[2].startswith("  slowest steps (cold): ")

    models = section(lines, "models")
    assert "  official VideoFusion: no --videofusion-code PATH given; its figures are skipped" in models
    assert any(x.startswith(f"  official TemCoCo at {empty}: cannot import (ImportError: ") for x in models)
    figures = [re.match(r"  (\w+) +T=(\d+) +(fp32|bf16)  ours +\d+\.\d+ frames/s$", x) for x in models
               if "ours" in x]
    assert [m.groups() for m in figures] == [(k, t, p) for k in ("VideoFusion", "TemCoCo") for t in ("2", "3")
                                             for p in ("fp32", "bf16")]
    assert re.match(r"suite time: \d+\.\d s$", lines[-1])


def test_official_code_absent_or_not_a_folder_is_one_line(tmp_path):
    sys.path.insert(0, str(SUITE.parent))
    try:
        import gpu_suite
    finally:
        sys.path.remove(str(SUITE.parent))
    assert gpu_suite.official("VideoFusion", None) == (
        None, "official VideoFusion: no --videofusion-code PATH given; its figures are skipped")
    factory, reason = gpu_suite.official("TemCoCo", tmp_path / "absent")
    assert factory is None
    assert reason == f"official TemCoCo: {tmp_path / 'absent'} is not a folder; its figures are skipped"
    for kind in ("VideoFusion", "TemCoCo"):  # a folder that is not the authors' checkout
        factory, reason = gpu_suite.official(kind, tmp_path)
        assert factory is None and "\n" not in reason
        assert reason.startswith(f"official {kind} at {tmp_path}: cannot import (")
        assert reason.endswith("figures skipped")
