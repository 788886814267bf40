"""Fault-injection trials for `m3svd download`: how often is a file verified, cleanly absent, or corrupt?

Each trial serves one random file from a local HTTP server (tests/http_faults.py) on two mirrors, queues
0-3 random faults on each, downloads it, and classifies what is left in the dataset root:

  verified   the file is in place with the right bytes
  absent     the download failed and nothing is in place (the target: every failure looks like this)
  corrupt    wrong bytes in place                         (must be 0)
  partial    a .part or truncated file in the tree        (must be 0)

Run: python benchmarks/download_faults.py [--trials 150] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from http_faults import FaultServer  # noqa: E402

from m3svd.data import download as dl  # noqa: E402
from m3svd.data.subsets import FileEntry, get_subset  # noqa: E402

KINDS = ["drop", "corrupt", "truncate", "404", "500", "503", "429", "stall", "no-range", "bad-range", "html"]


def trial(server: FaultServer, rng: random.Random, index: int, root: Path, options: dl.Options):
    content = rng.randbytes(rng.randrange(1, 400_000))
    path = f"t{index}/file.bin"
    server.add(path, content)
    injected = []
    for prefix in ("", "m2/"):
        for _ in range(rng.randrange(0, 4)):
            kind = rng.choice(KINDS)
            server.fault(prefix + path, kind, after=rng.randrange(0, len(content)), seconds=5, retry_after=0)
            injected.append(kind)
    entry = FileEntry(path, (server.url_for(path), server.url_for(path, "m2/")), len(content),
                      hashlib.sha256(content).hexdigest())
    subset = replace(get_subset("test-videos"), name="bench", files=(entry,))
    result = dl.download(subset, root, options, show_progress=False).files[0]
    placed = root / "bench" / path
    if placed.exists():
        outcome = "verified" if placed.read_bytes() == content else "corrupt"
    else:
        outcome = "absent"
    if any(p.suffix == ".part" for p in (root / "bench").rglob("*")) if (root / "bench").exists() else False:
        outcome = "partial"
    return injected, outcome, result.status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    options = dl.Options(workers=1, timeout=0.5, retries=3, backoff=0.0, sleep=lambda s: None)
    outcomes, per_kind, faults = collections.Counter(), collections.defaultdict(collections.Counter), 0
    start = time.time()
    with FaultServer() as server, tempfile.TemporaryDirectory() as tmp:
        server.mirror("m2", up=True)
        for i in range(args.trials):
            injected, outcome, _ = trial(server, rng, i, Path(tmp), options)
            faults += len(injected)
            outcomes[outcome] += 1
            for kind in set(injected):
                per_kind[kind][outcome] += 1
    print(f"{args.trials} trials, {faults} injected faults, {time.time() - start:.1f} s")
    print("outcomes: " + ", ".join(f"{k} {outcomes[k]}" for k in ("verified", "absent", "corrupt", "partial")))
    print(f"{'fault kind':<10} {'trials':>6} verified absent corrupt partial")
    for kind in KINDS:
        c = per_kind[kind]
        counts = " ".join(f"{c[k]:>{len(k)}}" for k in ("verified", "absent", "corrupt", "partial"))
        print(f"{kind:<10} {sum(c.values()):>6} {counts}")
    return 0 if outcomes["corrupt"] == outcomes["partial"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
