"""The ``validate``, ``submit`` and ``leaderboard`` sub-commands of ``m3svd`` (thin: parse, call, print)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from m3svd.leaderboard.schema import LeaderboardError


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, found {text!r}")


def cmd_validate(args) -> int:
    from m3svd.leaderboard.validate import inspect

    result = inspect(args.dir, args.protocol, args.root, args.dir_leaderboard)
    for problem in result.problems:
        print(problem)
    if result.problems:
        print(f"{args.dir}: {len(result.problems)} problem(s); not a valid submission", file=sys.stderr)
        return 1
    print(f"{args.dir}: valid submission for protocol {args.protocol} ({len(result.clips)} clip(s), "
          f"{result.frames} frames)")
    return 0


def cmd_submit(args) -> int:
    from m3svd.leaderboard.build import build
    from m3svd.leaderboard.origin import published_origin
    from m3svd.leaderboard.render import render
    from m3svd.leaderboard.schema import Metadata, SubmissionError
    from m3svd.leaderboard.submit import Entry, submit_many

    folders = [Path(d) for d in args.dir]
    names = [n.strip() for n in args.name.split(",") if n.strip()]
    if len(names) != len(folders):
        raise SubmissionError(f"{len(folders)} folder(s) but --name gives {len(names)} name(s); give one name per "
                              f"folder, separated by commas")
    stated = Metadata(method=args.method, paper=args.paper, code=args.code, weights_sha256=args.weights_sha256,
                      training_data=args.training_data, trained_on_m3svd_train=args.trained_on_m3svd_train)
    if len(folders) > 1 and stated != Metadata():
        raise SubmissionError("--method, --paper, --code, --weights-sha256 and --training-data describe one method; "
                              "submit several folders with --metadata FILE (a JSON object: name -> fields)")
    per_name = _metadata_file(args.metadata) if args.metadata else {}
    entries = [Entry(folder, name, Metadata.coerce(per_name.get(name)) if per_name else stated, args.reference,
                     published_origin(args.origin, folder) if args.origin else None)
               for folder, name in zip(folders, names, strict=True)]
    try:
        from m3svd.progress import mode

        records = submit_many(entries, args.protocol, args.root, args.dir_leaderboard,
                              log=lambda line: print(line, file=sys.stderr), progress=mode(args.no_progress))
    except SubmissionError as error:
        if len(error.problems) > 1:
            for problem in error.problems:
                print(problem)
        raise
    for record in records:
        print(f"submitted {record.id}: {record.path}")
    table = build(args.dir_leaderboard, write=False)
    print(render(table, "table", records[0].manifest["protocol"]["key"]))
    return 0


def _metadata_file(path: Path) -> dict:
    from m3svd.leaderboard.schema import SubmissionError

    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise SubmissionError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise SubmissionError(f"{path}: expected a JSON object mapping each --name to its metadata fields")
    return value


def cmd_leaderboard(args) -> int:
    from m3svd.leaderboard.build import build
    from m3svd.leaderboard.render import load_reported, protocols_in, render, render_reported
    from m3svd.leaderboard.site import write_site

    folder = Path(args.dir_leaderboard)
    if args.reported:  # the papers' numbers ship with the package: no leaderboard folder needed
        print(render_reported(load_reported(folder), args.format))
        return 0
    if not folder.is_dir():
        raise LeaderboardError(f"{folder}: no leaderboard folder (records from `m3svd submit` go to "
                               f"{folder}/submissions/<id>/; pass --dir)")
    if args.html:
        from m3svd.files import writable_folder

        writable_folder(args.html, "the site folder (--html)")  # before the build, not after it
    table = build(folder, write=args.action == "build", log=lambda line: print(line, file=sys.stderr))
    left_out = table.attrs.get("left_out", [])
    if args.action == "build":
        print(f"wrote {folder / 'leaderboard.parquet'}: {table['submission'].nunique()} submission(s), "
              f"{table['protocol'].nunique()} protocol(s), {len(table)} rows"
              + (f"; {len(left_out)} damaged record(s) left out (named above)" if left_out else ""), file=sys.stderr)
    if args.readme:
        from m3svd.leaderboard.readme import write_readme

        changed = write_readme(args.readme, table)
        print(f"{args.readme}: leaderboard section {'rewritten' if changed else 'already up to date'}",
              file=sys.stderr)
    if args.protocol:
        table = table[table["protocol"].isin(protocols_in(table, args.protocol))]
    if args.html:
        site = write_site(table, args.html, folder, cards=args.cards, root=args.root, fused=args.fused)
        print(f"wrote {site / 'index.html'}", file=sys.stderr)
    print(render(table, args.format, None))
    return 1 if left_out else 0  # built, but not every record is in it


def add_commands(sub) -> None:
    """Add ``validate``, ``submit`` and ``leaderboard`` to the ``m3svd`` sub-command parser ``sub``."""
    from m3svd.leaderboard.render import FORMATS

    def common(p, protocol_required=True, several=False):
        p.add_argument("dir", type=Path, metavar="DIR", nargs="+" if several else None,
                       help="fused frames: DIR/<clip>/<frame>.png, one lossless image per frame of each clip, "
                       "numbered from 0 or 1" + ("; several folders are scored in one pass" if several else ""))
        p.add_argument("--protocol", required=protocol_required, metavar="P",
                       help="protocol id or .toml file (see `m3svd ls protocols`)")
        p.add_argument("--root", type=Path, metavar="R", help="dataset folder, or the root holding it (default: "
                       "$M3SVD_ROOT or the cache directory)")
        p.add_argument("--dir", dest="dir_leaderboard", type=Path, default=Path("leaderboard"), metavar="LB",
                       help="leaderboard folder whose submissions are checked for duplicates (default leaderboard)")

    val = sub.add_parser(
        "validate", help="check fused frames before submitting them",
        description="Check that DIR is a fair submission for protocol P, without scoring it: every clip and frame "
        "present and numbered, lossless, decodable, 8-bit, the clip's size, not a copy of an input stream (byte for "
        "byte, or within one grey level; the stream is named), not degenerate (a near-constant frame, a frame that "
        "is one source up to a grey-level mapping, a frozen video on a video protocol; thresholds in "
        "leaderboard/README.md), not a duplicate of a submission already in the leaderboard. "
        "Every problem is printed on its own line naming its file. Exits 1 if there is any.",
    )
    common(val)
    val.set_defaults(func=cmd_validate)

    sm = sub.add_parser(
        "submit", help="score fused frames and add a verified record to the leaderboard",
        description="Validate DIR (as `m3svd validate`), recompute every metric of protocol P from the fused "
        "frames with `m3svd evaluate --predictions` (reported numbers are never accepted), and write a record to "
        "LB/submissions/<id>/: results.parquet, summary.parquet, run.json and manifest.json (hashes, versions, "
        "provenance, the metadata below). Only runs on the protocol's complete data are accepted. Several folders "
        "are validated first, then scored in one pass (source statistics and flows computed once); if one is "
        "refused, none is recorded. Safe to run from several processes at once.",
    )
    common(sm, several=True)
    sm.add_argument("--name", required=True, metavar="N[,N...]", help="the name shown in the leaderboard (one per "
                    "folder, separated by commas)")
    sm.add_argument("--metadata", type=Path, metavar="FILE", help="a JSON object mapping each name to its metadata "
                    "fields (method, paper, code, weights_sha256, training_data, trained_on_m3svd_train)")
    sm.add_argument("--origin", metavar="SUBSET", help="the folders are methods' published outputs from download "
                    "subset SUBSET (e.g. tno42-fused): every file is checked against its pinned hash and the record "
                    "names the repository, commit and path they come from")
    sm.add_argument("--no-progress", action="store_true", help="no progress while scoring (a bar on a terminal, "
                    "otherwise a plain line every 10%% of clips or 30 s)")
    sm.add_argument("--reference", action="store_true", help="a reference row (a source or a trivial baseline): "
                    "shown apart, never ranked, so the copy and degenerate checks do not refuse it")
    sm.add_argument("--method", metavar="NAME", help="the method's own name, if N differs (e.g. a variant)")
    sm.add_argument("--paper", metavar="URL", help="paper link (http/https)")
    sm.add_argument("--code", metavar="URL", help="code link (http/https), ideally at a commit")
    sm.add_argument("--weights-sha256", metavar="H", help="sha256 of the weights that produced the frames")
    sm.add_argument("--training-data", metavar="TEXT", help="what the method was trained on")
    sm.add_argument("--trained-on-m3svd-train", type=_bool, metavar="true|false",
                    help="whether training used the M3SVD train split")
    sm.set_defaults(func=cmd_submit)

    lb = sub.add_parser(
        "leaderboard", help="show (or build) the verified leaderboard",
        description="Rank the verified records in LB/submissions/ per protocol by the score its [ranking] "
        "declares (weighted mean rank over its ranking metrics), with ↑/↓ and a rank per metric, "
        "refusing to mix protocol files, metric conventions or metric versions in one ranking. `build` also "
        "writes LB/leaderboard.parquet (long format). --html DIR writes a self-contained static site for every "
        "protocol (sortable tables with CIs and per-metric ranks, reference rows apart, each metric linked to its "
        "card; figures: rank stability under a bootstrap over clips, per-frame curves on video protocols, and a "
        "qualitative strip when --root and --fused are given; one page per method with its provenance). "
        "--reported shows the numbers copied from papers instead, labelled, never ranked with verified rows. A "
        "damaged record (unreadable, altered after submit, incomplete) is left out and named; the others still "
        "build, and the exit status is 1.",
    )
    lb.add_argument("action", nargs="?", choices=("build",), help="write LB/leaderboard.parquet too")
    lb.add_argument("--protocol", metavar="P", help="only this protocol (id or id@version)")
    lb.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    lb.add_argument("--html", type=Path, metavar="DIR", help="also write the static site to DIR")
    lb.add_argument("--readme", type=Path, metavar="FILE", help="rewrite FILE's generated leaderboard section (the "
                    "top entries of each protocol, between its marker lines) from the table")
    lb.add_argument("--cards", type=Path, metavar="DIR", help="metric cards copied into the site (default: "
                    "metrics/cards of the source checkout)")
    lb.add_argument("--root", type=Path, metavar="R", help="dataset folder, for the qualitative strips' IR and VIS "
                    "frames")
    lb.add_argument("--fused", type=Path, metavar="DIR", help="submitted frames for the qualitative strips: "
                    "DIR/<submission id or name>/<clip>/<frame>.png (used only where their hashes equal the record's)")
    lb.add_argument("--reported", action="store_true", help="show the paper-reported table (not verified)")
    lb.add_argument("--dir", dest="dir_leaderboard", type=Path, default=Path("leaderboard"), metavar="LB",
                    help="leaderboard folder (default leaderboard)")
    lb.set_defaults(func=cmd_leaderboard)
