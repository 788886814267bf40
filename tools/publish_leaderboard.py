"""Rebuild the committed leaderboard records from public data: every classical baseline on every protocol it applies
to, and every published method's outputs, all through `m3svd submit` (recomputed from fused frames, never typed).

    m3svd download --subset tno42 --subset tno42-fused --subset vifb21 --subset vifb21-fused --subset val-frames \\
        --root DATA
    python tools/publish_leaderboard.py --root DATA [--protocol tno42 ...] [--leaderboard leaderboard]

Baselines are fused into ``--work`` (default ``DATA/baselines``) with :func:`m3svd.evaluate.fuse`, then each
protocol's folders are submitted together, so its source statistics and flows are computed once. ``ir``, ``vi`` and
``average`` are reference rows (shown apart, never ranked). Published outputs are checked file by file against their
download subset's pinned hashes and their records name the repository, commit and path. Records already in the
leaderboard for the same protocol file and fused frames are skipped, so a rerun only adds what is missing.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from m3svd import protocols
from m3svd.evaluate import MethodSpec, fuse
from m3svd.evaluate.compare import REFERENCE_METHODS
from m3svd.leaderboard.origin import published_origin, toolkit_origin
from m3svd.leaderboard.schema import Metadata, read_manifest, record_dirs
from m3svd.leaderboard.submit import Entry, submit_many

REPOSITORY = Path(__file__).resolve().parents[1]
FUSION = ("ir", "vi", "average", "max", "laplacian", "dwt", "gff", "gff-temporal")
VISIBLE_ONLY = ("vi", "clahe", "gf-detail")
PUBLISHED = {"tno42": "tno42-fused", "vifb21": "vifb21-fused"}  # protocol -> published-outputs subset
PROTOCOLS = ("tno42", "vifb21", "m3svd-val-clean", "m3svd-val-degraded", "m3svd-val-visible-only")


def baselines(protocol) -> tuple[str, ...]:
    """The classical methods that apply: single-visible ones where there is no IR input; no temporal variant on
    single images (it would equal its per-frame method)."""
    if "ir" not in protocol.inputs:
        return VISIBLE_ONLY
    return FUSION if protocol.temporal_metrics else tuple(m for m in FUSION if m != "gff-temporal")


def papers() -> dict[str, Metadata]:
    with open(REPOSITORY / "leaderboard" / "methods.csv", newline="") as handle:
        return {row["method"]: Metadata(method=row["method"], paper=row["paper"] or None)
                for row in csv.DictReader(handle)}


def recorded(leaderboard: Path, protocol) -> set[str]:
    """Names already recorded for this protocol file."""
    names = set()
    for record in record_dirs(leaderboard):
        manifest = read_manifest(record)
        if manifest["protocol"]["sha256"] == protocol.sha256:
            names.add(manifest["name"])
    return names


def entries_for(protocol, root: Path, work: Path, done: set[str]) -> list[Entry]:
    entries = []
    for method in baselines(protocol):
        if method in done:
            continue
        folder = work / protocol.id / method
        if not (folder / ".complete").exists():
            print(f"{protocol.id}: fusing with {method}", file=sys.stderr)
            fuse(protocol, MethodSpec(method), folder, root=root, progress=sys.stderr.isatty())
            (folder / ".complete").touch()
        entries.append(Entry(folder, method, Metadata(method=method),
                             method in REFERENCE_METHODS, toolkit_origin(method, protocol.key)))
    subset = PUBLISHED.get(protocol.id)
    if subset:
        known = papers()
        for folder in sorted(p for p in (root / subset).iterdir() if p.is_dir()):
            if folder.name not in done:
                entries.append(Entry(folder, folder.name, known.get(folder.name, Metadata(method=folder.name)),
                                     False, published_origin(subset, folder)))
    return entries


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True, help="where the download subsets are")
    parser.add_argument("--work", type=Path, help="where baselines' fused frames go (default ROOT/baselines)")
    parser.add_argument("--leaderboard", type=Path, default=REPOSITORY / "leaderboard")
    parser.add_argument("--protocol", action="append", choices=PROTOCOLS, help="only these (default: all)")
    args = parser.parse_args(argv)
    work = args.work or args.root / "baselines"
    for key in args.protocol or PROTOCOLS:
        protocol = protocols.load(key)
        entries = entries_for(protocol, args.root, work, recorded(args.leaderboard, protocol))
        if not entries:
            print(f"{protocol.key}: every record is there already", file=sys.stderr)
            continue
        started = time.perf_counter()
        made = submit_many(entries, protocol, args.root, args.leaderboard,
                           log=lambda line: print(line, file=sys.stderr))
        print(f"{protocol.key}: {len(made)} record(s) in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
