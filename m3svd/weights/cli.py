"""``m3svd weights ls|download|verify|path``: the weights registry from the command line (kept apart from cli.py)."""

from __future__ import annotations

import argparse
import os
import sys
import time

from m3svd.errors import M3SVDError
from m3svd.files import human


def _human(n) -> str:
    return human(n) if n is not None else "size ?"


def cmd_ls(args) -> int:
    from m3svd import weights

    print(f"weights cache: {weights.cache_dir()}" + ("  (offline)" if weights.offline() else ""))
    for name, item in weights.registry().items():
        if args.name and name not in args.name:
            continue
        found = weights.locate(name)
        state = "present" if found is not None else ("manual" if item.manual else "missing")
        print(f"{name:<14} {item.file:<38} {_human(item.size):>10}  {state:<8} used by {', '.join(item.users)}")
        print(f"  {item.description}")
        for url in item.urls:
            print(f"  url    {url}")
        if item.manual:
            print(f"  manual download by hand from {item.manual}, then put it at {weights.cache_dir() / item.file}")
        print(f"  hash   {item.hash_line()}" + (f"  (prefix {item.sha256_prefix} in the file name)"
                                                 if item.sha256_prefix else ""))
        print(f"  from   {item.hash_source}")
        print(f"  terms  {item.terms}")
        if found is not None and found != weights.cache_dir() / item.file:
            print(f"  found  {found}")
    return 0


def cmd_path(args) -> int:
    from m3svd import weights

    item = weights.get(args.name)
    found = weights.locate(args.name)
    print(found or weights.cache_dir() / item.file)
    return 0 if found is not None else 1


def cmd_download(args) -> int:
    from m3svd import weights
    from m3svd.data.download import Options

    names = list(weights.registry()) if args.all else args.name
    if not names:
        raise M3SVDError("name the files to download (see `m3svd weights ls`) or pass --all")
    for name in names:
        weights.get(name)  # an unknown name fails before anything is fetched
    options = Options(workers=1, timeout=args.timeout, retries=args.retries)
    failed = 0
    for name in names:
        start = time.perf_counter()
        try:
            found = weights.ensure(name, mirror=args.mirror + weights.mirrors(), options=options,
                                   progress=not args.no_progress and sys.stderr.isatty())
        except (weights.WeightsMissing, weights.WeightsRefused) as error:
            print(f"{name}: {error}")
            failed += 1
            continue
        took = time.perf_counter() - start
        what = (f"downloaded {human(found.bytes)} in {took:.1f} s" if found.how == "downloaded"
                else f"already present ({found.how}), verified")
        print(f"{name}: {found.path} {what}; sha256 {found.sha256}")
    return 1 if failed else 0


def cmd_verify(args) -> int:
    from m3svd import weights

    names = args.name or None
    for name in names or ():
        weights.get(name)
    results = weights.verify(names)
    for _, status, line in results:
        if status != "missing" or names:
            print(line)
    counts = {s: sum(r[1] == s for r in results) for s in ("ok", "refused", "missing")}
    print(f"{weights.cache_dir()}: {counts['ok']} verified, {counts['refused']} refused, {counts['missing']} not "
          "present")
    return 1 if counts["refused"] or (names and counts["missing"]) else 0


def add_commands(sub) -> None:
    """The ``weights`` command and its four verbs, added to the ``m3svd`` sub-parsers ``sub``."""
    w = sub.add_parser(
        "weights", help="list, download, verify or locate the weights files methods and metrics use",
        description="The weights registry: every file a method, metric or flow estimator can use, with its URLs at "
        "a pinned revision, size, hash, terms and users. Files are kept in the weights cache (ROOT/weights; ROOT is "
        "$M3SVD_ROOT or the user cache directory) and downloaded, verified, on first use; a file whose hash differs "
        "is refused, never replaced. M3SVD_OFFLINE=1 (or --offline) never touches the network.",
    )
    verbs = w.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(w))
    ls = verbs.add_parser("ls", help="every registered file: URLs, size, hash, terms, users, whether present")
    ls.add_argument("name", nargs="*", help="only these entries")
    ls.set_defaults(func=cmd_ls)
    dl = verbs.add_parser("download", help="fetch files into the cache now (verified), instead of on first use")
    dl.add_argument("name", nargs="*", help="registry names (see `m3svd weights ls`)")
    dl.add_argument("--all", action="store_true", help="every downloadable file (about 1.9 GB)")
    dl.add_argument("--mirror", action="append", default=[], metavar="URL",
                    help="try URL/<file> before the registry's URLs (repeatable; also $M3SVD_WEIGHTS_MIRROR)")
    dl.add_argument("--timeout", type=float, default=30.0, help="seconds without data before a retry (default 30)")
    dl.add_argument("--retries", type=int, default=4, help="attempts per URL (default 4)")
    dl.add_argument("--no-progress", action="store_true", help="no progress bar")
    dl.add_argument("--offline", action="store_true", help="never touch the network (as M3SVD_OFFLINE=1)")
    dl.set_defaults(func=cmd_download)
    ve = verbs.add_parser("verify", help="re-hash the files in the cache against the registry")
    ve.add_argument("name", nargs="*", help="only these entries (a missing one is then a problem)")
    ve.set_defaults(func=cmd_verify)
    pa = verbs.add_parser("path", help="where a file is (or goes); exits 1 when it is not there")
    pa.add_argument("name")
    pa.set_defaults(func=cmd_path)


def apply_offline(args: argparse.Namespace) -> None:
    """``--offline`` on any command: the same as ``M3SVD_OFFLINE=1`` for this process and its workers."""
    if getattr(args, "offline", False):
        os.environ["M3SVD_OFFLINE"] = "1"
