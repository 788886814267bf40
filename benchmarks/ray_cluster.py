"""``m3svd evaluate --executor ray`` on a local multi-node Ray cluster: speed-up with worker nodes, identical results.

Starts a head node that runs no tasks (``ray start --head --num-cpus=0``) and up to ``--nodes`` worker nodes, each a
separate ``ray start --address=HEAD --num-cpus=1`` (its own raylet: the same layout as separate machines, on one
host). With 1 and then ``--nodes`` worker nodes it runs the same ``m3svd evaluate --executor ray --ray-address HEAD``
(cold flow cache each time) and once the local process executor (``--workers 1``), then compares every row of the
``results.parquet`` files, every column included. Prints the wall time of each run, the speed-up and the identity.

The cluster lives in its own ``--temp-dir`` and is stopped at the end by killing exactly the processes that carry
that folder on their command line (``ray stop`` would stop every Ray instance on the machine)::

    python benchmarks/ray_cluster.py [--root DATA] [--protocol m3svd-val-clean] [--method gff]
        [--clips 0111_1716,0111_1753,0111_1803,0114_1551] [--frames 0:6] [--nodes 2]

On an existing cluster nothing of this is needed: see docs/ray.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
LOAD: dict[str, float] = {}  # the host's 1-minute load average after each run: other work on the cores shows here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """Running (a zombie, ended but not yet reaped by its parent, is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def ray_cli() -> list[str]:
    """The ``ray`` command of this interpreter (its scripts may not be on PATH)."""
    exe = Path(sys.executable).with_name("ray")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "ray.scripts.scripts"]


class LocalCluster:
    """A head plus worker nodes started with ``ray start``, all under one temp dir, stopped by their pids."""

    def __init__(self, temp_dir: Path, env: dict[str, str]):
        import ray

        # Ray 2.5x+ GCS servers may demand a token (one in ~/.ray makes them do so): every process of this
        # cluster, and every driver, gets the same fresh one through the environment
        self.env = dict(env, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        self.temp_dir = temp_dir
        self.address = f"{ray.util.get_node_ip_address()}:{free_port()}"
        self.nodes = 0

    def _start(self, *args: str) -> None:
        cmd = [*ray_cli(), "start", *args, "--disable-usage-stats"]
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=180)
        if done.returncode:
            raise SystemExit(f"ray_cluster: `{' '.join(cmd)}` failed ({done.returncode}): "
                             f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")

    def start_head(self) -> None:
        self._start("--head", f"--port={self.address.split(':')[1]}", "--num-cpus=0", "--include-dashboard=false",
                    f"--temp-dir={self.temp_dir}")

    def add_worker(self) -> None:
        self._start(f"--address={self.address}", "--num-cpus=1")
        self.nodes += 1
        self.wait_for_cpus(self.nodes)

    def wait_for_cpus(self, cpus: int, timeout: float = 60.0) -> None:
        code = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False); "
                "print(int(ray.cluster_resources().get('CPU', 0)))")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run([sys.executable, "-c", code, self.address], env=self.env, capture_output=True,
                                 text=True, timeout=120).stdout.strip().splitlines()
            if out and out[-1].isdigit() and int(out[-1]) >= cpus:
                return
            time.sleep(1)
        raise SystemExit(f"ray_cluster: the cluster at {self.address} did not reach {cpus} CPU(s) in {timeout:.0f} s")

    def pids(self) -> list[int]:
        """Processes whose command line names this cluster's temp dir (GCS, raylets, monitors), and their
        descendants (agents and workers rename themselves ``ray::…``): this cluster's processes only."""
        found, parent = set(), {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                parent[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if str(self.temp_dir) in cmdline:
                found.add(int(proc.name))
        grown = True
        while grown:
            children = {pid for pid, ppid in parent.items() if ppid in found} - found
            found |= children
            grown = bool(children)
        return sorted(found)

    def stop(self) -> int:
        pids = self.pids()
        if os.getpid() in pids:
            pids.remove(os.getpid())
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(alive(p) for p in pids):
                time.sleep(0.2)
        return len(pids)


def evaluate(args, out: Path, env: dict[str, str], *extra: str) -> float:
    """Wall seconds of one ``m3svd evaluate`` run (cold flow cache in ``out``)."""
    cmd = [sys.executable, "-m", "m3svd.cli", "evaluate", "--method", args.method, "--protocol", args.protocol,
           *(["--root", str(args.root)] if args.root else []), "--out", str(out),
           "--flow-cache", str(out.with_name(out.name + "-flows")),
           "--no-progress", "--offline", *extra]
    if args.clips:
        cmd += ["--clips", args.clips]
    if args.frames:
        cmd += ["--frames", args.frames]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    seconds = time.perf_counter() - start
    LOAD[out.name] = os.getloadavg()[0]
    if done.returncode:
        raise SystemExit(f"ray_cluster: `{' '.join(cmd)}` failed ({done.returncode}): "
                         f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    return seconds


def in_flight(out: Path) -> int:
    """Most clips being worked on at once, from the files: a clip runs from its first fused PNG to its
    ``clips/<clip>.parquet`` (fusion before the first PNG is not seen, so this can only undercount)."""
    spans = []
    for result in (out / "clips").glob("*.parquet"):
        pngs = [p.stat().st_mtime for p in (out / "fused" / result.stem).glob("*.png")]
        spans.append((min(pngs, default=result.stat().st_mtime), result.stat().st_mtime))
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def rows(out: Path) -> pd.DataFrame:
    frame = pd.read_parquet(out / "results.parquet")
    return frame.sort_values(["clip", "frame", "metric", "method"]).reset_index(drop=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, help="dataset root for --protocol (default: as `m3svd evaluate` finds it)")
    ap.add_argument("--protocol", default="m3svd-val-clean")
    ap.add_argument("--method", default="gff")
    ap.add_argument("--clips", default="0111_1716,0111_1753,0111_1803,0114_1551",
                    help="protocol clips (comma-separated; empty: all)")
    ap.add_argument("--frames", default="0:6", help="START:STOP of each clip (empty: the protocol's)")
    ap.add_argument("--nodes", type=int, default=2, help="worker nodes at most (default 2); runs 1 and this many")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per evaluate run (default 900)")
    ap.add_argument("--keep", action="store_true", help="keep the outputs and Ray logs (default: removed)")
    args = ap.parse_args(argv)

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1")
    # a short temp dir: Ray's unix sockets live under it and their paths are limited to ~107 characters
    work = Path(tempfile.mkdtemp(prefix="m3r-", dir="/tmp"))
    cluster = LocalCluster(work / "ray", env)
    times: dict[str, float] = {}
    try:
        times["local process executor, --workers 1"] = evaluate(args, work / "local", env, "--workers", "1")
        cluster.start_head()
        for n in range(1, args.nodes + 1):
            cluster.add_worker()
            if n in (1, args.nodes):
                times[f"ray, {n} worker node(s)"] = evaluate(args, work / f"ray{n}", cluster.env, "--executor", "ray",
                                                             "--ray-address", cluster.address)
    finally:
        stopped = cluster.stop()

    reference = rows(work / "local")
    print(f"{args.method} on {args.protocol} (clips {args.clips or 'all'}, frames {args.frames or 'all'}): "
          f"{len(reference)} result rows; {os.cpu_count()} CPU(s) on this host; cluster head {cluster.address} "
          f"(0 CPUs), worker nodes of 1 CPU each; stopped {stopped} Ray process(es)")
    base = times["ray, 1 worker node(s)"]
    for label, seconds in times.items():
        key = "local" if label.startswith("local") else f"ray{label.split(', ')[1].split()[0]}"
        print(f"{label:<38} {seconds:7.1f} s   speed-up vs 1 Ray node {base / seconds:5.2f}×   "
              f"clips in flight at most {in_flight(work / key)}   (load average after it {LOAD[key]:.1f})")
    for label in times:
        if label.startswith("ray"):
            got = rows(work / f"ray{label.split(', ')[1].split()[0]}")
            same = got.equals(reference)
            values = len(got) == len(reference) and np.array_equal(got["value"].to_numpy(),
                                                                     reference["value"].to_numpy(), equal_nan=True)
            print(f"{label}: results.parquet {'identical' if same else 'DIFFERENT'} to the process executor's "
                  f"(every column; values {'bit-identical' if values else 'DIFFER'})")
    if args.keep:
        print(f"outputs and Ray logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
