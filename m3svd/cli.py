"""The ``m3svd`` command. Thin: parse arguments, call the library, print.

Every failure the user can fix is an :class:`~m3svd.errors.M3SVDError`, printed as one line
(``m3svd: error: ...``) with exit status 2; a check that runs and finds problems exits with 1.
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
from pathlib import Path

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


def _ls_metrics(convention: str | None, names_only: bool) -> None:
    """One row per registered metric; ``unchecked`` marks those no reference implementation was compared with."""
    from m3svd import metrics

    known = metrics.convention_names()
    if convention is not None and convention not in known:
        raise M3SVDError(f"ls metrics --convention: no convention {convention!r}; there are {', '.join(known)}"
                         + did_you_mean(convention, known))
    registered = metrics.list(convention)
    if names_only:
        print("\n".join(dict.fromkeys(m.name for m in registered)))
        return
    if not registered:
        print(f"no metrics in m3svd {__version__} yet")
    for m in registered:
        direction = "higher better" if m.higher_is_better else "lower better"
        checked = "checked" if m.reference else "unchecked"
        print(f"  {m.name:<12} {m.convention:<8} {direction:<13} {checked:<9} {m.description}")
    unchecked = sum(not m.reference for m in registered)
    if unchecked:
        print(f"{unchecked} of {len(registered)} unchecked: compared with no reference implementation (their metric "
              "cards say so)")


def cmd_ls(args) -> int:
    if args.kind != "metrics" and (args.convention or args.names):
        raise M3SVDError(f"ls {args.kind}: --convention and --names apply to `m3svd ls metrics` only")
    if args.kind == "datasets":
        rows = _dataset_rows()
        width = max(len(name) for name, _ in rows)
        print("Datasets and layouts `m3svd info PATH` and `m3svd check PATH` recognise:")
        for name, text in rows:
            print(f"  {name:<{width}}  {text}")
    elif args.kind == "metrics":
        _ls_metrics(args.convention, args.names)
    elif args.kind == "methods":
        from m3svd import methods

        for cls in methods.list():
            inputs = "+".join(cls.inputs)
            window = f"{cls.temporal_window} frames" + (f", overlap {cls.window_overlap}" if cls.window_overlap else "")
            print(f"  {cls.name:<13} v{cls.version:<4} {inputs:<6} {window:<20} {cls.description}")
    else:
        from m3svd import protocols

        for protocol in protocols.list():
            print(f"  {protocol.id:<22} v{protocol.version:<3} {protocol.description}")
    return 0


def _info_rows(clipset) -> list[dict]:
    """One row per clip × variant: frame counts per modality (never the shorter alone), size, rate, storage."""
    rows = []
    for clip in clipset.clips:
        row = {"clip": clip.name, "split": clip.split, "variant": clip.variant, "frames": None, "ir_frames": None,
               "vi_frames": None, "width": None, "height": None, "fps": clip.fps or None, "lossy": bool(clip.lossy),
               "error": None}
        try:
            row["ir_frames"], row["vi_frames"] = len(clip.ir_source), len(clip.vi_source)
            row["height"], row["width"] = clip.size
            if row["ir_frames"] == row["vi_frames"]:  # unequal counts: `check` fails such a clip
                row["frames"] = row["ir_frames"]
        except (M3SVDError, IndexError) as error:
            row["error"] = str(error)
        rows.append(row)
    return rows


def cmd_info(args) -> int:
    import json

    from m3svd.data.layouts import open_dataset

    clipset = open_dataset(args.path, strict=False)
    rows = _info_rows(clipset)
    if args.json:
        print(json.dumps({"root": str(clipset.root), "layout": clipset.layout, "clip_count": len(clipset.names),
                          "splits": [s for s in clipset.splits if s], "variants": [v for v in clipset.variants if v],
                          "clips": rows}, indent=2))
        return 0
    splits = ", ".join(s for s in clipset.splits if s) or "none"
    print(f"{clipset.root}: layout {clipset.layout}, {len(clipset.names)} clip(s), splits {splits}, "
          f"variants {', '.join(v for v in clipset.variants if v) or 'none'}")
    header = f"  {'clip':<16} {'split':<6} {'variant':<9} {'frames':>7} {'fps':>6} {'size':>9}  storage"
    print(header)
    for row in rows:
        mismatch = ""
        if row["error"] is not None:
            frames, size = "?", f"unreadable: {row['error']}"
        else:
            frames, size = str(row["frames"]), f"{row['width']}×{row['height']}"
            if row["frames"] is None:
                frames = "≠"
                mismatch = f"; frame counts differ: IR {row['ir_frames']}, VIS {row['vi_frames']}"
        fps = f"{row['fps']:g}" if row["fps"] else "-"
        storage = "lossy" if row["lossy"] else "lossless"
        print(f"  {row['clip']:<16} {row['split'] or '-':<6} {row['variant'] or '-':<9} {frames:>7} {fps:>6} "
              f"{size:>9}  {storage}{mismatch}")
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


def cmd_import(args) -> int:
    from m3svd.data.importer import import_dataset
    from m3svd.paths import default_root

    report = import_dataset(args.path, args.root or default_root(), name=args.name, extract_frames=args.extract_frames,
                            progress=sys.stderr.isatty(), link=args.link)
    print(report.format())
    return 0 if report.ok else 1


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, found {text}")
        return value
    return parse


def cmd_download(args) -> int:
    from m3svd.data import download as dl
    from m3svd.data.subsets import get_subset
    from m3svd.files import human
    from m3svd.paths import default_root

    subset = get_subset(args.subset)
    root = (args.root or default_root()).expanduser()
    options = dl.Options(workers=args.workers, timeout=args.timeout, retries=args.retries)
    progress = _progress(args)
    if args.dry_run:
        files = subset.files if subset.kind == "files" else None
        print(f"{subset.name} (v{subset.version}): {subset.description}\n  source: {subset.source}\n"
              f"  terms: {subset.terms}\n  into: {dl.target_dir(subset, root)}")
        if subset.excluded:
            print(f"  left out: {subset.excluded}")
        if subset.unverified:
            print(f"  {len(subset.unverified)} file(s) only pinned by git blob SHA-1 (absent from the snapshot the "
                  f"manifest was made from): {', '.join(subset.unverified[:3])}")
        if files is None:
            print(f"  files are listed by {subset.kind} at download time; about {human(subset.size_hint)}"
                  if subset.size_hint else f"  files are listed by {subset.kind} at download time")
            return 0
        for entry in files:
            print(f"  {entry.path}  {human(entry.size)}")
        known = [f.size for f in files if f.size is not None]
        unknown = len(files) - len(known)
        print(f"{len(files)} files, {human(sum(known))}" + (f" + {unknown} of unknown size" if unknown else ""))
        return 0
    if args.verify:
        problems = dl.verify(subset, root, show_progress=progress == "bar")
        if subset.kind == "google-drive" and (root / subset.name).exists():
            from m3svd.data.importer import verify_import

            problems += verify_import(root / subset.name)  # the tree imported from the archive
        for line in problems:
            print(line)
        print(f"{subset.name} in {dl.target_dir(subset, root)}: "
              + (f"{len(problems)} problem(s)" if problems else "every file present and verified"))
        return 1 if problems else 0
    report = dl.download(subset, root, options, mirrors=args.mirror, show_progress=progress)
    print(report.format())
    complete = report.ok
    if report.ok and subset.kind == "google-drive" and not (root / subset.name).exists():
        from m3svd.data.importer import import_dataset

        for result in report.files:  # the archive: unpack, arrange, verify layout and frame counts
            imported = import_dataset(report.target / result.path, root, name=subset.name,
                                      progress=progress == "bar")
            print(imported.format())
            print(f"the archive stays at {report.target / result.path}; delete it to free the space")
            complete = complete and imported.ok
    print(f"terms: {subset.terms}")
    return 0 if complete else 1


def _parse_options(method_name: str, pairs: list[str]) -> dict:
    """``KEY=VALUE`` pairs typed by the option's default: ``true``/``false`` for flags, never truthy strings."""
    from m3svd import methods

    defaults = methods.get(method_name).options
    options = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep:
            raise M3SVDError(f"--option expects KEY=VALUE, found {pair!r}")
        default = defaults.get(key)
        try:
            if isinstance(default, bool):
                if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = text.lower() in ("true", "1", "yes")
            elif isinstance(default, int | float):
                value = type(default)(text)
            else:
                value = text
        except ValueError:
            raise M3SVDError(f"--option {key}: expected a {type(default).__name__}, found {text!r}") from None
        options[key] = value
    return options


def cmd_evaluate(args) -> int:
    from m3svd import protocols
    from m3svd.evaluate import MethodSpec, Predictions, Subset, evaluate_methods
    from m3svd.memory import keep_freed_memory

    if (args.method is None) == (args.predictions is None):
        raise M3SVDError("give --method NAME or --predictions DIR (with --name), not both or neither")
    if args.predictions is not None and not args.name:
        raise M3SVDError("--predictions needs --name: the name the results carry")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise M3SVDError(f"--device {args.device}: no CUDA device on this machine; use --device cpu")
    protocol = protocols.load(args.protocol)
    keep_freed_memory()
    subset = None
    if args.clips or args.frames:
        subset = Subset(tuple(_listed("--clips", args.clips)) if args.clips else None, args.frames)
    common = dict(root=args.root, workers=args.workers, executor=args.executor, ray_address=args.ray_address,
                  flow_cache=False if args.no_flow_cache else args.flow_cache, metrics_device=args.metrics_device,
                  progress=_progress(args), log=lambda line: print(line, file=sys.stderr), subset=subset)
    if args.predictions is not None:
        folders, names = _listed("--predictions", args.predictions), _listed("--name", args.name)
        if len(folders) != len(names):
            raise M3SVDError(f"--predictions has {len(folders)} folder(s) but --name {len(names)} name(s); give one "
                             f"name per folder")
        sources = [Predictions(folder, name) for folder, name in zip(folders, names, strict=True)]
    else:
        names = _listed("--method", args.method)
        if len(names) > 1 and (args.weights or args.option):
            raise M3SVDError("--weights and --option belong to one method; evaluate such a method on its own")
        sources = [MethodSpec(n, args.device, str(args.weights) if args.weights else None,
                              tuple(sorted(_parse_options(n, args.option).items()))) for n in names]
    if args.out is None:  # a partial run keeps apart from the full one it previews
        outs = [Path("m3svd-results") / n / (protocol.id + ("-partial" if subset else "")) for n in names]
    else:
        outs = [args.out] if len(names) == 1 else [args.out / n for n in names]
    runs = evaluate_methods(protocol, list(zip(sources, outs, strict=True)), **common)
    for run in runs:
        _print_run(run, protocol)
    if len(runs) > 1:
        from m3svd.evaluate.compare import compare, format_comparison

        print()
        order = list(protocol.image_metrics + protocol.temporal_metrics)
        print(format_comparison(compare([run.out for run in runs]), order=order))
    return 0


def cmd_compare(args) -> int:
    from m3svd.evaluate.compare import compare, format_comparison

    metrics = _listed("--metrics", args.metrics) if args.metrics else None
    print(format_comparison(compare(args.folders), metrics))
    return 0


def _progress(args) -> bool | str:
    from m3svd.progress import mode

    return mode(args.no_progress)


def _frames(text: str) -> tuple[int, int | None]:
    """``START:STOP`` (STOP may be left out: to the end of the protocol's range), 0-based, STOP excluded."""
    start, sep, stop = text.partition(":")
    try:
        if not sep:
            raise ValueError
        value = (int(start) if start else 0, int(stop) if stop else None)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:STOP (e.g. 0:16), found {text!r}") from None
    if value[0] < 0 or (value[1] is not None and value[1] <= value[0]):
        raise argparse.ArgumentTypeError(f"expected 0 <= START < STOP, found {text!r}")
    return value


def _listed(flag: str, text: str) -> list[str]:
    """The comma-separated items of a flag, each once."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items or len(set(items)) < len(items):
        raise M3SVDError(f"{flag} {text!r}: name each item once")
    return items


def _print_run(run, protocol) -> None:
    from m3svd.evaluate import format_summary

    label = run.results["method"].iloc[0]
    print(f"{label} on {protocol.key} ({len(run.results['clip'].unique())} clip(s), "
          f"{run.results.drop_duplicates(['clip', 'frame']).shape[0]} frames)"
          + (" — PARTIAL (--clips/--frames): a preview, not the protocol's result; submit refuses it"
             if run.partial else ""))
    temporal = run.summary["metric"].isin(protocol.temporal_metrics)
    print(format_summary(run.summary[~temporal], list(protocol.image_metrics)))
    if temporal.any():
        print(f"temporal (flow {run.results['flow_estimator'].iloc[0]}; one value per frame pair or triplet):")
        print(format_summary(run.summary[temporal], list(protocol.temporal_metrics)))
    print(f"results: {run.out / 'results.parquet'}  summary: {run.out / 'summary.parquet'}")


def _recipe(method_name: str):
    """The ``train`` module of a method's package (``m3svd.methods.<package>.train``), or None."""
    import importlib

    from m3svd import methods

    package = ".".join(methods.get(method_name).__module__.split(".")[:3])
    try:
        return importlib.import_module(f"{package}.train")
    except ModuleNotFoundError as error:
        if error.name is not None and not f"{package}.train".startswith(error.name):
            raise  # a missing dependency inside the recipe, not a missing recipe
        return None


def cmd_train(args) -> int:
    from m3svd import methods

    recipe = _recipe(args.method)
    if recipe is None:
        trainable = [m.name for m in methods.list() if _recipe(m.name) is not None]
        raise M3SVDError(f"method {args.method!r} has no training recipe; trainable: {', '.join(trainable)}")
    out = args.out or Path("m3svd-runs") / args.method
    extra = {"weights": args.weights} if args.weights else {}  # frozen networks a recipe builds on (magicfuse)
    if extra and "weights" not in inspect.signature(recipe.train).parameters:
        raise M3SVDError(f"method {args.method!r} trains from scratch: its recipe takes no --weights")
    checkpoint = recipe.train(args.root, out, split=args.split, iterations=args.iterations, seed=args.seed,
                              resume=not args.no_resume, device=args.device, config=args.config,
                              progress=not args.no_progress and sys.stderr.isatty(), **extra)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one line from the first process only
        print(f"{args.method}: trained {args.iterations} iterations; weights: {checkpoint}")
    return 0


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
    ls.add_argument("--convention", metavar="C", help="metrics: only those registered in convention C")
    ls.add_argument("--names", action="store_true", help="metrics: metric names only, one per line")
    ls.set_defaults(func=cmd_ls)

    info = sub.add_parser("info", help="show the layout and clips of a dataset",
                          description="Detect the layout of PATH and list its clips: split, variant, frame "
                          "count, frame rate, size, and whether frames are stored lossy.")
    info.add_argument("path", metavar="PATH")
    info.add_argument("--json", action="store_true", help="print the layout and one object per clip × variant as "
                      "JSON (frames null when IR and VIS counts differ)")
    info.set_defaults(func=cmd_info)

    check = sub.add_parser(
        "check", help="check integrity, registration and temporal sync",
        description="Decode every frame of every clip under PATH and check: integrity (frames present in every "
        "variant and modality, no numbering gap, decodable, equal sizes, grey IR, no dead stream, blank or "
        "frozen frames, frame rates), spatial "
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

    imp = sub.add_parser(
        "import", help="import a release downloaded by hand (folder or archive), with hashes",
        description="Import an M3SVD release downloaded by hand into ROOT/NAME/ in the canonical layout "
        "({split}/{infrared_Enhance,visible_Enhance,infrared_noise,visible_Blur}/<clip>/ for frames or "
        "<clip>.mp4 for videos; the GitHub {split}/{infrared,visible}/<clip>.mp4 layout as is). PATH is a folder, "
        "a .zip, the first part of a multi-part x.zip.001, or a .tar/.tar.gz/.tgz; a wrapping top folder is "
        "found. TemCoCo folder names are renamed; clips outside split folders get their official split. "
        "The full release publishes no checksums, so the sha256 of every file is recorded in "
        "NAME/.m3svd/files.csv (and the source in import.json). All or nothing: an interrupted import leaves "
        "no NAME folder. ROOT is --root, else $M3SVD_ROOT, else $XDG_CACHE_HOME/m3svd or ~/.cache/m3svd. "
        "Exits 0 when complete, 1 when imported but something is missing (listed), 2 on errors.",
    )
    imp.add_argument("path", metavar="PATH", help="release folder or archive")
    imp.add_argument("--root", type=Path, help="dataset root (default: $M3SVD_ROOT or the cache directory)")
    imp.add_argument("--name", default="full", help="folder under ROOT to create (default: full)")
    imp.add_argument("--extract-frames", action="store_true",
                     help="also decode every video into PNG frames {i:04d}.png (0-based) in the image layout; "
                     "recorded as lossy-derived")
    imp.add_argument("--link", action="store_true", help="hard-link files of a folder source instead of copying")
    imp.set_defaults(func=cmd_import)

    download = sub.add_parser(
        "download", help="download a public subset, verified and resumable",
        description="Download a subset of M3SVD (or TNO) into ROOT/<subset>/. Every file is checked against its "
        "size and hashes before it is moved into place; interrupted downloads resume where they stopped "
        "(partial bytes live in ROOT/.partial/). Files with no published hash (Google Drive, figshare) have "
        "their sha256 recorded on first download. ROOT is --root, else $M3SVD_ROOT, else the user cache "
        "directory. Exits 1 if any file could not be fetched and verified.",
    )
    download.add_argument("--subset", default="test-videos", help="test-videos (default), val-frames, "
                          "full-videos, tno, tno42, vifb21, tno42-fused or vifb21-fused")
    download.add_argument("--root", type=Path, help="dataset root (default: $M3SVD_ROOT or the cache directory)")
    download.add_argument("--dry-run", action="store_true", help="list the files and total size; fetch nothing")
    download.add_argument("--verify", action="store_true", help="re-hash the files already under ROOT; fetch nothing")
    download.add_argument("--mirror", action="append", default=[], metavar="URL",
                          help="try URL/<path> before the official URLs (repeatable)")
    download.add_argument("--workers", type=_positive(int), default=4, help="parallel downloads (default 4)")
    download.add_argument("--timeout", type=_positive(float), default=30.0,
                          help="seconds without data before a connection is retried (default 30)")
    download.add_argument("--retries", type=_positive(int), default=4, help="attempts per mirror (default 4)")
    download.add_argument("--no-progress", action="store_true", help="no progress (a bar on a terminal, otherwise a "
                          "plain line every 10%% of the bytes or 30 s)")
    download.set_defaults(func=cmd_download)

    ev = sub.add_parser(
        "evaluate", help="score a method (or saved fused frames) on a benchmark protocol",
        description="Run a method on every clip of a protocol (see `m3svd ls protocols`), write its fused frames "
        "once as lossless PNG, score every frame with the protocol's metrics and write long-format results "
        "(OUT/results.parquet, one row per clip x frame x metric, with provenance) and a summary (per clip, and the "
        "mean over clips with a 95% bootstrap confidence interval). A rerun skips clips whose inputs, method, "
        "weights and metrics are unchanged. Data is looked for under --root, else $M3SVD_ROOT or the cache "
        "directory; --protocol sample runs on the built-in clip with no download.",
    )
    what = ev.add_mutually_exclusive_group()
    what.add_argument("--method", metavar="NAME[,NAME...]", help="a method (see `m3svd ls methods`), or several "
                      "separated by commas: scored in one pass that computes source statistics and flows once")
    what.add_argument("--predictions", metavar="DIR[,DIR...]",
                      help="fused frames made elsewhere: DIR/<clip>/<frame>.png, one image per frame of the clip; "
                      "several folders separated by commas are scored in one pass, like several methods")
    ev.add_argument("--name", metavar="NAME[,NAME...]", help="the name results carry when scoring --predictions, one "
                    "per folder")
    ev.add_argument("--protocol", default="m3svd-clean", help="protocol id or a .toml file (default m3svd-clean)")
    ev.add_argument("--root", type=Path, help="dataset folder, or the root holding it (default: $M3SVD_ROOT or the "
                    "cache directory)")
    ev.add_argument("--weights", type=Path, help="weights file or folder for a deep method (sha256 goes into results)")
    ev.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="a method option, typed by its default (flags take true/false); repeatable")
    ev.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    ev.add_argument("--workers", type=_positive(int), default=1, help="clips evaluated in parallel (default 1)")
    ev.add_argument("--executor", choices=("local", "ray"), default="local",
                    help="local processes (default) or Ray tasks, one per clip (the `distributed` extra)")
    ev.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster (default: start a local one)")
    ev.add_argument("--flow-cache", type=Path, metavar="DIR", help="where source-video flows for the temporal "
                    "metrics are kept, shared by every method and run (default: ROOT/cache/flow)")
    ev.add_argument("--no-flow-cache", action="store_true", help="keep source flows in memory only")
    ev.add_argument("--metrics-device", metavar="DEVICE", help="score the m3svd image metrics that have a torch "
                    "path on DEVICE (cuda, cuda:N, cpu) in float64: the same values as the default numpy path")
    ev.add_argument("--out", type=Path, help="output folder (default m3svd-results/<method>/<protocol>, or "
                    "<protocol>-partial with --clips/--frames; with several methods, OUT/<method>)")
    ev.add_argument("--clips", metavar="NAME[,NAME...]", help="a quick look: only these protocol clips (results "
                    "marked partial in run.json; `m3svd submit` refuses them)")
    ev.add_argument("--frames", type=_frames, metavar="START:STOP", help="a quick look: only frames START to STOP-1 "
                    "of each clip, inside the protocol's range (results marked partial)")
    ev.add_argument("--no-progress", action="store_true", help="no progress (a bar on a terminal, otherwise a "
                    "plain line with an ETA every 10%% of clips or 30 s)")
    ev.set_defaults(func=cmd_evaluate)

    cmp = sub.add_parser(
        "compare", help="one table of several methods' results, with confidence intervals",
        description="Print one table of several results on the same protocol: per metric the mean over clips and "
        "half its 95%% bootstrap interval (mean±h), * on each metric's best method. The sources and the plain "
        "average (ir, vi, average; a record's reference flag) are shown apart, under the ranked rows. Each FOLDER "
        "is an `m3svd evaluate` output folder or a leaderboard record (LB/submissions/<id>/); a partial run "
        "(--clips/--frames) is labelled.",
    )
    cmp.add_argument("folders", nargs="+", type=Path, metavar="FOLDER")
    cmp.add_argument("--metrics", metavar="NAME[,NAME...]", help="only these metrics, in this order")
    cmp.set_defaults(func=cmd_compare)

    tr = sub.add_parser(
        "train", help="train a deep method with its published recipe",
        description="Train a method's network with the recipe from its spec (losses, optimiser, schedule, clip and "
        "patch sizes), seeded and resumable: checkpoints go to OUT (written atomically) and a rerun continues from "
        "the last one. Weights trained here are the toolkit's, not the paper's; results say so via their sha256.",
    )
    tr.add_argument("--method", required=True, help="videofusion, temcoco or magicfuse")
    tr.add_argument("--root", required=True, help="dataset folder (any layout with IR/VIS clips) or `sample`")
    tr.add_argument("--split", default="train", help="split to train on (default train)")
    tr.add_argument("--iterations", type=_positive(int), default=1000, help="optimiser steps (default 1000)")
    tr.add_argument("--config", default="full", help="network configuration: full (default) or small")
    tr.add_argument("--seed", type=int, default=0, help="seed for initialisation, sampling and crops (default 0)")
    tr.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    tr.add_argument("--out", type=Path, help="checkpoint folder (default m3svd-runs/<method>)")
    tr.add_argument("--weights", type=Path, metavar="FOLDER", help="frozen networks the recipe builds on (magicfuse: "
                    "the folder with the authors' ae.pth, ikr.pth and ckg.pth)")
    tr.add_argument("--no-resume", action="store_true", help="start afresh even if OUT holds a checkpoint")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.set_defaults(func=cmd_train)
    from m3svd.leaderboard.cli import add_commands

    add_commands(sub)  # validate, submit, leaderboard
    _add_weights(sub, ev, tr)
    return parser


def _add_weights(sub, *runs) -> None:
    """``m3svd weights ...`` and ``--offline`` on the commands that may fetch weights (evaluate, train)."""
    from m3svd.weights.cli import add_commands

    add_commands(sub)
    for p in runs:
        p.add_argument("--offline", action="store_true", help="never touch the network: a weights file not in the "
                       "cache is one line naming it and where to put it (as M3SVD_OFFLINE=1)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from m3svd.weights.cli import apply_offline

    apply_offline(args)
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
    except OSError as error:  # a path the user gave: read-only, a file where a folder belongs, a full disk
        from m3svd.files import os_error_line

        print(f"m3svd: error: {os_error_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
