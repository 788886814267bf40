"""The ``m3svd`` command. Thin: parse arguments, call the library, print.

Every failure the user can fix is an :class:`~m3svd.errors.M3SVDError`, printed as one line
(``m3svd: error: ...``) with exit status 2; a check that runs and finds problems exits with 1.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from m3svd import __version__
from m3svd.errors import M3SVDError, did_you_mean

LISTINGS = ("datasets", "protocols", "methods", "metrics")


class _Parser(argparse.ArgumentParser):
    """argparse with a did-you-mean hint for a mistyped sub-command or choice."""

    def error(self, message):
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            choices = re.findall(r"'?([\w.-]+)'?", found.group(2))
            message += did_you_mean(found.group(1), choices)
        super().error(message)


def _dataset_rows() -> list[tuple[str, str]]:
    from m3svd.data.layouts import DETECTORS, LOOKED_FOR

    rows = [("sample", "built-in procedural IR/VIS clip (offline; clean + degraded)")]
    rows += [(name, looked_for) for (name, _), looked_for in zip(DETECTORS, LOOKED_FOR, strict=True)]
    return rows


def cmd_ls(args) -> int:
    if args.kind == "datasets":
        rows = _dataset_rows()
        width = max(len(name) for name, _ in rows)
        print("Datasets and layouts `m3svd info PATH` and `m3svd check PATH` recognise:")
        for name, text in rows:
            print(f"  {name:<{width}}  {text}")
    else:
        print(f"no {args.kind} in m3svd {__version__} yet")
    return 0


def cmd_info(args) -> int:
    from m3svd.data.layouts import open_dataset

    clipset = open_dataset(args.path, strict=False)
    splits = ", ".join(s for s in clipset.splits if s) or "none"
    print(f"{clipset.root}: layout {clipset.layout}, {len(clipset.names)} clip(s), splits {splits}, "
          f"variants {', '.join(v for v in clipset.variants if v) or 'none'}")
    header = f"  {'clip':<16} {'split':<6} {'variant':<9} {'frames':>7} {'fps':>6} {'size':>9}  storage"
    print(header)
    for clip in clipset.clips:
        try:
            frames, size = str(len(clip)), "{1}×{0}".format(*clip.size)
        except (M3SVDError, IndexError) as error:
            frames, size = "?", f"unreadable: {error}"
        fps = f"{clip.fps:g}" if clip.fps else "-"
        storage = "lossy" if clip.lossy else "lossless"
        print(f"  {clip.name:<16} {clip.split or '-':<6} {clip.variant or '-':<9} {frames:>7} {fps:>6} {size:>9}  "
              f"{storage}")
    return 0


def cmd_check(args) -> int:
    from m3svd.data.checks import check_dataset
    from m3svd.data.layouts import open_dataset

    clipset = open_dataset(args.path, strict=False)
    clips = clipset.select(args.split, args.variant)
    if args.clip:
        for name in args.clip:
            clipset.clip(name, args.split, args.variant)  # an unknown name fails here, with a hint
        clips = [c for c in clips if c.name in args.clip]
    report = check_dataset(clipset, clips, show_progress=not args.no_progress and sys.stderr.isatty())
    print(report.to_json() if args.json else report.format())
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="m3svd",
        description="Benchmark toolkit for infrared-visible video fusion around the M3SVD dataset. "
        "PATH arguments take a dataset folder in any known layout (see `m3svd ls datasets`) or `sample`, "
        "the built-in offline clip.",
    )
    parser.add_argument("--version", action="version", version=f"m3svd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    ls = sub.add_parser("ls", help="list datasets, protocols, methods or metrics",
                        description="List what this installation knows about.")
    ls.add_argument("kind", nargs="?", default="datasets", choices=LISTINGS, help="what to list (default: datasets)")
    ls.set_defaults(func=cmd_ls)

    info = sub.add_parser("info", help="show the layout and clips of a dataset",
                          description="Detect the layout of PATH and list its clips: split, variant, frame "
                          "count, frame rate, size, and whether frames are stored lossy.")
    info.add_argument("path", metavar="PATH")
    info.set_defaults(func=cmd_info)

    check = sub.add_parser(
        "check", help="check integrity, registration and temporal sync",
        description="Decode every frame of every clip under PATH and check: integrity (frames present in every "
        "variant and modality, decodable, equal sizes, grey IR, no frozen runs, frame rates), spatial "
        "registration (residual IR-VIS shift by phase correlation of gradient magnitude, with its peak "
        "response) and temporal sync (IR-VIS frame offset from frame-to-frame change). Exits 1 if any "
        "check fails.",
    )
    check.add_argument("path", metavar="PATH")
    check.add_argument("--json", action="store_true", help="print the full report as JSON")
    check.add_argument("--clip", action="append", metavar="NAME", help="check only this clip (repeatable)")
    check.add_argument("--split", help="check only this split (e.g. test)")
    check.add_argument("--variant", choices=("clean", "degraded"), help="check only this variant")
    check.add_argument("--no-progress", action="store_true", help="no progress bar")
    check.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except M3SVDError as error:
        print(f"m3svd: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("m3svd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return 0


if __name__ == "__main__":
    sys.exit(main())
