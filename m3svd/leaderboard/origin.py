"""Where a record's fused frames come from, proven by hashes.

Published methods' outputs are download subsets (``m3svd download --subset tno42-fused``): their manifest pins the
repository, commit, path and sha256 of every file. :func:`published_origin` checks a folder against that manifest
file by file, so a record can say "these are DenseFuse's TNO results as published in Linfeng-Tang/Image-Fusion at
commit dba5bf3…" and mean it. Such files are accepted even when lossy (VIFB publishes JPEG): they are scored as
published, which is what reproduces the published tables.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from m3svd.files import sha256_file
from m3svd.leaderboard.schema import SubmissionError

_GITHUB_RAW = re.compile(r"^https://github\.com/([^/]+/[^/]+)/raw/([0-9a-f]{40})/(.+)$")


def published_origin(subset_name: str, directory: str | Path) -> dict:
    """The origin of ``directory`` (one method's folder of a published-outputs subset), every file verified.

    Returns ``{"subset", "repository", "commit", "path", "files": {relative path: sha256}}``; raises
    :class:`SubmissionError` naming the first file that is missing, extra or different.
    """
    from m3svd.data.subsets import get_subset

    subset = get_subset(subset_name)
    directory = Path(directory)
    method = directory.name
    entries = {e.path[len(method) + 1:]: e for e in subset.files if e.path.startswith(method + "/")}
    if not entries:
        methods = sorted({e.path.split("/", 1)[0] for e in subset.files})
        raise SubmissionError(f"{directory}: subset {subset_name} has no method {method!r} (the folder name must be "
                              f"one of {', '.join(methods)})")
    present = {p.relative_to(directory).as_posix(): p for p in directory.rglob("*")
               if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)}
    for relative in sorted(set(entries) - set(present)):
        raise SubmissionError(f"{directory / relative}: missing; subset {subset_name} lists it")
    for relative in sorted(set(present) - set(entries)):
        raise SubmissionError(f"{present[relative]}: not a file of subset {subset_name}; a published output is "
                              f"submitted exactly as published")
    files = {}
    for relative, entry in sorted(entries.items()):
        digest = sha256_file(present[relative])
        if entry.sha256 and digest != entry.sha256:
            raise SubmissionError(f"{present[relative]}: sha256 {digest[:12]}… differs from subset {subset_name}'s "
                                  f"{entry.sha256[:12]}…; not the published file")
        files[relative] = digest
    sources = [_GITHUB_RAW.match(url) for e in entries.values() for url in e.urls]
    repository, commit, paths = _common_source([m for m in sources if m])
    return {"subset": subset_name, "repository": repository, "commit": commit, "path": paths, "files": files}


def _common_source(matches: list) -> tuple[str, str, str]:
    """The one repository and commit the files come from, and the folder pattern of their paths."""
    if not matches:
        return "", "", ""
    repositories = {m.group(1) for m in matches}
    commits = {m.group(2) for m in matches}
    folders = sorted({unquote(m.group(3)).rsplit("/", 1)[0] + "/" for m in matches})
    return ", ".join(sorted(repositories)), ", ".join(sorted(commits)), folders[0] if len(folders) == 1 else (
        f"{_prefix(folders)}… ({len(folders)} folders)")


def _prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def toolkit_origin(method: str, protocol_key: str, options: dict | None = None) -> dict:
    """The origin of frames this toolkit's own baseline made (``m3svd evaluate --method``)."""
    from m3svd import __version__, methods

    built = methods.create(method, **(options or {}))
    identity = built.identity()
    return {"toolkit": f"m3svd {__version__}", "method": method, "method_version": identity["method_version"],
            "options": identity["options"], "command": f"m3svd evaluate --method {method} --protocol {protocol_key}"}


def describe(origin: dict | None) -> str:
    """One line for tables: ``owner/repo@commit7 path`` or the toolkit command."""
    if not origin:
        return ""
    if origin.get("repository"):
        return f"{origin['repository']}@{origin['commit'][:7]} {origin['path']}"
    return origin.get("command", "")
