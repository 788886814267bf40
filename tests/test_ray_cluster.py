"""``benchmarks/ray_cluster.py``'s bookkeeping: clips in flight from the output files, its own processes only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import ray_cluster  # noqa: E402

sys.path.remove(str(BENCHMARKS))


def clip(out: Path, name: str, first_png: float, done: float) -> None:
    (out / "fused" / name).mkdir(parents=True)
    (out / "clips").mkdir(exist_ok=True)
    for i, t in enumerate((first_png, (first_png + done) / 2)):
        png = out / "fused" / name / f"{i:06d}.png"
        png.write_bytes(b"")
        os.utime(png, (t, t))
    result = out / "clips" / f"{name}.parquet"
    result.write_bytes(b"")
    os.utime(result, (done, done))


def test_in_flight_counts_overlapping_clips(tmp_path):
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    for name, (a, b) in {"c1": (100, 110), "c2": (110, 120), "c3": (120, 130)}.items():
        clip(serial, name, a, b)  # one ends as the next starts: never two at once
    for name, (a, b) in {"c1": (100, 120), "c2": (105, 125), "c3": (121, 130)}.items():
        clip(parallel, name, a, b)
    assert ray_cluster.in_flight(serial) == 1
    assert ray_cluster.in_flight(parallel) == 2


def test_stop_ends_the_processes_naming_its_temp_dir_and_their_children(tmp_path):
    mine = tmp_path / "ray-temp"
    # a parent naming the folder on its command line, with a child that does not (as Ray's agents rename themselves)
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                               "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
                               "time.sleep(60)", str(mine)])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path / "elsewhere")])
    try:
        cluster = ray_cluster.LocalCluster.__new__(ray_cluster.LocalCluster)
        cluster.temp_dir = mine
        deadline = time.monotonic() + 20
        while len(cluster.pids()) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        pids = cluster.pids()
        assert parent.pid in pids and len(pids) == 2 and other.pid not in pids
        assert cluster.stop() == 2
        assert parent.wait(timeout=20) is not None and other.poll() is None
        assert cluster.pids() == []
    finally:
        for p in (parent, other):
            if p.poll() is None:
                p.kill()
                p.wait()
