"""``metrics/build_cards.py`` in ``--quick`` mode on two metrics: cards with an agreement table and an index."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA

SCRIPT = Path(__file__).resolve().parents[1] / "metrics" / "build_cards.py"
GOLDEN = SHARED_DATA.parent / "golden"


def test_quick_cards_for_two_metrics(tmp_path):
    if not (GOLDEN / "subset.csv").exists() or not (SHARED_DATA / "vifb" / "input").exists():
        pytest.skip(f"golden data not available: {GOLDEN}")
    out = tmp_path / "cards"
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--metrics", "qabf", "mse", "flowd",
                    "--golden", str(GOLDEN), "--out", str(out), "--jobs", "1"],
                   check=True, capture_output=True, text=True, timeout=120)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "flowd.md", "mse.md", "qabf.md"]
    card = (out / "qabf.md").read_text()
    assert "## Agreement with golden reference outputs" in card
    assert "| convention | golden source | items compared | max rel error | median rel error |" in card
    for convention in ("vifb", "cddfuse", "vfbench", "tang"):
        rows = [line for line in card.splitlines() if line.startswith(f"| `{convention}` | ") and "golden/" in line]
        assert rows, convention
        assert all("| yes |" in row for row in rows), rows
    assert "| `m3svd` | — | 0 |" in card
    assert "lower is better" in (out / "mse.md").read_text()
    assert "- `vifb`: checked against VIFB's MATLAB outputs; tests/test_metrics_vifb.py" in card
    assert "- `m3svd`: **none** (`reference = None`)" in card and "**No reference comparison:**" not in card
    temporal = [line for line in (out / "flowd.md").read_text().splitlines() if "golden/temporal/temporal.csv" in line]
    assert [line.split(" | ")[0] for line in temporal] == ["| `m3svd`", "| `temcoco`"]
    assert all("| yes |" in line for line in temporal), temporal
    index = (out / "README.md").read_text()
    assert "[qabf.md](qabf.md)" in index and "[mse.md](mse.md)" in index and "--quick" in index
