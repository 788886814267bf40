"""A corpus of bad inputs a user can give `m3svd` (issue 24 §5), each with the exit status and the cause its one-line
message must name, and the verdict it gets: ``clear`` (that status, one error line naming the cause, nothing
half-written left), ``misleading`` (an error, but not naming the cause, or several lines, or the wrong status),
``traceback`` (an exception escaped) or ``silent`` (exit 0 where a refusal was due).

Every case builds its own tiny world (one 8-frame 48×64 clip in the four-folder layout, a two-metric protocol,
fused frames made from it: a few milliseconds) and damages one thing. ``tests/test_bad_inputs.py`` asserts every
case is clear; ``python tests/bad_inputs.py`` prints the verdict counts (run it against another checkout of the
package with ``PYTHONPATH=OTHER python tests/bad_inputs.py`` to compare).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from synthetic import M3SVD_FOLDERS, make_m3svd, protocol_file, write_image, write_video

CLIP = "0111_1716"
N = 8
READ_ONLY = Path("/sys/m3svd-read-only")  # not creatable even by root (tests often run as root: chmod is no test)


@dataclass
class World:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def protocol(self) -> Path:
        return self.root / "p.toml"

    @property
    def pred(self) -> Path:
        return self.root / "pred"

    @property
    def lb(self) -> Path:
        return self.root / "lb"

    @property
    def out(self) -> Path:
        return self.root / "out"

    def frame(self, folder: int, i: int) -> Path:
        return self.data / "test" / M3SVD_FOLDERS[folder] / CLIP / f"{i:04d}.png"

    def fused(self, i: int) -> Path:
        return self.pred / CLIP / f"{i:06d}.png"

    def protocol_text(self, **fields) -> Path:
        defaults = dict(layouts=("m3svd",), folders=("data",), image=("en", "sd"), frames="all",
                        ranking='primary = ["en"]')
        return protocol_file(self.protocol, **{**defaults, **fields})


def make_world(root: Path) -> World:
    world = World(Path(root))
    frames = make_m3svd(world.data, clips=(CLIP,), n=N)
    world.protocol_text()
    for i in range(N):
        ir, vi = frames[0, CLIP][i], frames[1, CLIP][i]
        write_image(world.fused(i), np.rint(0.5 * ir[..., None] + 0.5 * vi).astype(np.uint8))
    return world


# -- the commands, on a world --------------------------------------------------------------------------------------
def evaluate(w: World, *extra: str) -> list[str]:
    return ["evaluate", "--method", "average", "--protocol", str(w.protocol), "--root", str(w.data), "--out",
            str(w.out), "--no-progress", *extra]


def predictions(w: World, *extra: str) -> list[str]:
    return ["evaluate", "--predictions", str(w.pred), "--name", "X", "--protocol", str(w.protocol), "--root",
            str(w.data), "--out", str(w.out), "--no-progress", *extra]


def validate(w: World, *extra: str) -> list[str]:
    return ["validate", str(w.pred), "--protocol", str(w.protocol), "--root", str(w.data), "--dir", str(w.lb), *extra]


def submit(w: World, *extra: str) -> list[str]:
    return ["submit", str(w.pred), "--name", "X", "--protocol", str(w.protocol), "--root", str(w.data), "--dir",
            str(w.lb), *extra]


def check(w: World, *extra: str) -> list[str]:
    return ["check", str(w.data), "--no-progress", *extra]


def info(w: World, *extra: str) -> list[str]:
    return ["info", str(w.data), *extra]


COMMANDS = {"evaluate": evaluate, "predictions": predictions, "validate": validate, "submit": submit, "check": check,
            "info": info}


@dataclass(frozen=True)
class Case:
    id: str
    damage: Callable[[World], object]  # changes the world; may return the argv (else ``command`` builds it)
    command: str  # a key of COMMANDS, or "" when damage returns argv
    code: int | tuple[int, ...]  # the exit status a clear answer has (or any of several)
    cause: str  # a substring the answer must hold (the file, key or flag at fault), "{root}" = the world's folder
    known: str = ""  # why this case is not clear yet (a part another change owns); xfail in the test


# -- damage to one frame of the dataset ----------------------------------------------------------------------------
def _corrupt(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _sixteen_bit(path: Path) -> None:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.uint16) * 257
    cv2.imwrite(str(path), image)


def _resize(path: Path) -> None:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(path), cv2.resize(image, (image.shape[1] + 8, image.shape[0])))


def _colour(path: Path) -> None:
    rng = np.random.default_rng(5)
    cv2.imwrite(str(path), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


FRAME_DAMAGE = {
    "corrupt": (_corrupt, "0003.png"),
    "truncated": (_truncate, "0003.png"),
    "empty": (_empty, "0003.png"),
    "16-bit": (_sixteen_bit, "0003.png"),
    "resized": (_resize, "0003.png"),
}
# what each command answers on a damaged dataset frame: check reports it (1); evaluate and submit refuse (2);
# validate reports it as a problem (1) or refuses (2): either names the dataset's file, not the submission's
DATA_COMMANDS = {"check": 1, "evaluate": 2, "validate": (1, 2), "submit": 2}
# the modality folder damaged: 0 infrared_Enhance (the clean IR stream every command reads)


def data_frame_cases() -> list[Case]:
    cases = []
    for kind, (damage, cause) in FRAME_DAMAGE.items():
        for command, code in DATA_COMMANDS.items():
            cases.append(Case(f"data-{kind}-frame-{command}", lambda w, d=damage: d(w.frame(0, 3)), command, code,
                              cause))
    for command, code in DATA_COMMANDS.items():
        cases += [
            Case(f"data-colour-ir-frame-{command}", lambda w: _colour(w.frame(0, 3)), command, code, "0003.png"),
            Case(f"data-missing-frame-{command}", lambda w: w.frame(1, 5).unlink(), command, code, "0005.png"),
            Case(f"data-extra-frame-{command}", lambda w: shutil.copy(w.frame(1, 7), w.frame(1, 8)), command, code,
                 "0008.png"),
            Case(f"data-renamed-frame-{command}", lambda w: w.frame(1, 2).rename(w.frame(1, 2).with_name("x.png")),
                 command, code, "x.png"),
            Case(f"data-missing-modality-{command}", lambda w: shutil.rmtree(w.frame(1, 0).parent), command, code,
                 CLIP),
        ]
    return cases


# -- damage to the fused frames ------------------------------------------------------------------------------------
def _write_fused(w: World, i: int, frame: np.ndarray, name: str | None = None) -> None:
    write_image(w.pred / CLIP / (name or f"{i:06d}.png"), frame)


def _jpeg(w: World) -> None:
    for i in range(N):
        frame = cv2.imread(str(w.fused(i)))
        cv2.imwrite(str(w.fused(i).with_suffix(".jpg")), frame)
        w.fused(i).unlink()


def _constant(w: World) -> None:
    for i in range(N):
        _write_fused(w, i, np.full((48, 64, 3), 128, np.uint8))


def _ir_copy(w: World) -> None:
    for i in range(N):
        shutil.copy(w.frame(0, i), w.fused(i))


PRED_DAMAGE: dict[str, tuple[Callable, str, dict[str, int]]] = {
    # name: (damage, cause, {command: code}) — predictions = `evaluate --predictions`
    "corrupt": (lambda w: _corrupt(w.fused(3)), "000003.png", {"predictions": 2, "validate": 1, "submit": 2}),
    "truncated": (lambda w: _truncate(w.fused(3)), "000003.png", {"predictions": 2, "validate": 1, "submit": 2}),
    "empty": (lambda w: _empty(w.fused(3)), "000003.png", {"predictions": 2, "validate": 1, "submit": 2}),
    "16-bit": (lambda w: _sixteen_bit(w.fused(3)), "000003.png", {"predictions": 2, "validate": 1, "submit": 2}),
    "resized": (lambda w: _resize(w.fused(3)), "000003.png", {"predictions": 2, "validate": 1, "submit": 2}),
    "missing-frame": (lambda w: w.fused(5).unlink(), "000005.png", {"predictions": 2, "validate": 1, "submit": 2}),
    "extra-frame": (lambda w: shutil.copy(w.fused(7), w.fused(8)), "000008.png",
                    {"predictions": 2, "validate": 1, "submit": 2}),
    "renamed-frame": (lambda w: w.fused(2).rename(w.pred / CLIP / "frame_b.png"), "frame_b.png",
                      {"predictions": 2, "validate": 1, "submit": 2}),
    "reordered-frames": (lambda w: (w.fused(2).rename(w.pred / CLIP / "x.png"),
                                    (w.pred / CLIP / "x.png").rename(w.fused(9))), "000002.png",
                         {"predictions": 2, "validate": 1, "submit": 2}),
    "duplicate-number": (lambda w: shutil.copy(w.fused(1), w.pred / CLIP / "1.png"), "1.png",
                         {"predictions": 2, "validate": 1, "submit": 2}),
    "missing-clip": (lambda w: shutil.rmtree(w.pred / CLIP), CLIP, {"predictions": 2, "validate": 1, "submit": 2}),
    "clip-is-a-file": (lambda w: (shutil.rmtree(w.pred / CLIP), (w.pred / CLIP).write_text("x")), CLIP,
                       {"predictions": 2, "validate": 1, "submit": 2}),
    "folder-missing": (lambda w: shutil.rmtree(w.pred), "pred", {"predictions": 2, "validate": 1, "submit": 2}),
    "folder-is-a-file": (lambda w: (shutil.rmtree(w.pred), w.pred.write_text("x")), "pred",
                         {"predictions": 2, "validate": 1, "submit": 2}),
    "lossy-jpeg": (_jpeg, "JPG", {"predictions": 0, "validate": 1, "submit": 2}),
    "constant": (_constant, "000000.png", {"validate": 1, "submit": 2}),
    "copy-of-ir": (_ir_copy, "IR", {"validate": 1, "submit": 2}),
    "stray-folder": (lambda w: (w.pred / "0999_9999").mkdir(), "0999_9999", {"validate": 1, "submit": 2}),
    "not-an-image": (lambda w: (w.pred / CLIP / "notes.txt").write_text("hi"), "notes.txt",
                     {"validate": 1, "submit": 2}),
}


def prediction_cases() -> list[Case]:
    return [Case(f"pred-{kind}-{command}", damage, command, code, cause)
            for kind, (damage, cause, commands) in PRED_DAMAGE.items() for command, code in commands.items()]


# -- bad protocol files --------------------------------------------------------------------------------------------
def _protocol(**fields):
    return lambda w: w.protocol_text(**fields)


def _protocol_raw(text: str):
    return lambda w: w.protocol.write_text(text)


def _protocol_edit(old: str, new: str):
    def edit(w: World) -> None:
        text = w.protocol.read_text()
        assert old in text, (old, text)
        w.protocol.write_text(text.replace(old, new))
    return edit


PROTOCOL_DAMAGE = {
    "not-toml": (_protocol_raw("id = [unclosed\n"), "not valid TOML"),
    "not-utf8": (lambda w: w.protocol.write_bytes(b"id = \"\xff\xfe\"\n"), "not valid TOML"),
    "empty": (_protocol_raw(""), "missing"),
    "clips-int": (_protocol_edit('clips = "all"', "clips = 5"), "clips"),
    "data-int": (lambda w: w.protocol.write_text("data = 5\n" + w.protocol.read_text().split("[data]")[0]
                                                 + "[metrics]" + w.protocol.read_text().split("[metrics]")[1]),
                 "data"),
    "layouts-string": (_protocol_edit('layouts = ["m3svd"]', 'layouts = "m3svd"'), "layouts"),
    "image-string": (_protocol_edit('image = ["en", "sd"]', 'image = "en"'), "image"),
    "version-bool": (_protocol_edit('version = "1"', "version = true"), "version"),
    "split-list": (_protocol_edit('split = "test"', 'split = ["test"]'), "split"),
    "unknown-key": (_protocol_edit('[data]', '[data]\ncolour = "yes"'), "colour"),
    "missing-key": (_protocol_edit('variant = "clean"\n', ""), "variant"),
    "frames-bad": (_protocol_edit('frames = "all"', 'frames = "some"'), "frames"),
    "frames-past-end": (_protocol(frames=(2, 40)), "40"),
    "inputs-ir-only": (_protocol(inputs=("ir",)), "inputs"),
    "unknown-metric": (_protocol(image=("en", "qqq")), "qqq"),
    "temporal-as-image": (_protocol(image=("en", "tgf")), "tgf"),
    "unknown-convention": (_protocol(convention="nope"), "nope"),
    "unknown-restoration": (_protocol(restoration=("lpips",)), "lpips"),
    "ranking-bad-weight": (_protocol(ranking="[ranking.groups]\na = { metrics = [\"en\"], weight = -1 }"), "weight"),
    "ranking-unknown-metric": (_protocol(ranking='primary = ["vif"]'), "vif"),
    "unknown-flow": (_protocol(temporal=("tgf",), flow="optical"), "optical"),
    "frozen-rewarded-alone": (_protocol(temporal=("flicker",)), "flicker"),
    "unknown-layout": (_protocol(layouts=("nope",)), "nope"),
    "clip-not-in-data": (_protocol(clips=["0999_9999"]), "0999_9999"),
}
PROTOCOL_COMMANDS = {"evaluate": 2, "validate": (1, 2), "submit": 2}  # validate: refused, or a listed problem


def protocol_cases() -> list[Case]:
    cases = [Case(f"protocol-{kind}-{command}", damage, command, code, cause)
             for kind, (damage, cause) in PROTOCOL_DAMAGE.items() for command, code in PROTOCOL_COMMANDS.items()]
    cases += [
        Case("protocol-no-such-id", lambda w: evaluate(w)[:4] + ["m3svd-cleen"] + evaluate(w)[5:], "", 2,
             "m3svd-clean"),
        Case("protocol-no-such-file", lambda w: evaluate(w)[:4] + [str(w.root / "nope.toml")] + evaluate(w)[5:],
             "", 2, "nope.toml"),
        Case("protocol-a-folder", lambda w: evaluate(w)[:4] + [str(_mkdir(w.root / "dir.toml"))] + evaluate(w)[5:],
             "", 2, "dir.toml"),
    ]
    return cases


# -- bad flags -----------------------------------------------------------------------------------------------------
FLAG_CASES = [
    ("device-unknown", lambda w: evaluate(w, "--device", "gpu"), 2, "gpu"),
    ("device-cuda-absent", lambda w: evaluate(w, "--device", "cuda:7"), 2, "cuda:7"),
    ("device-garbage", lambda w: evaluate(w, "--device", "cpu:x"), 2, "cpu:x"),
    ("metrics-device-unknown", lambda w: evaluate(w, "--metrics-device", "tpu"), 2, "tpu"),
    ("workers-zero", lambda w: evaluate(w, "--workers", "0"), 2, "--workers"),
    ("workers-text", lambda w: evaluate(w, "--workers", "many"), 2, "--workers"),
    ("executor-unknown", lambda w: evaluate(w, "--executor", "slurm"), 2, "slurm"),
    ("option-no-equals", lambda w: evaluate(w, "--option", "levels"), 2, "levels"),
    ("option-bad-type", lambda w: ["evaluate", "--method", "laplacian", "--option", "levels=three", "--protocol",
                                   str(w.protocol), "--root", str(w.data), "--out", str(w.out)], 2, "levels"),
    ("option-unknown", lambda w: ["evaluate", "--method", "laplacian", "--option", "colour=1", "--protocol",
                                  str(w.protocol), "--root", str(w.data), "--out", str(w.out)], 2, "colour"),
    ("method-unknown", lambda w: ["evaluate", "--method", "averag", "--protocol", str(w.protocol), "--root",
                                  str(w.data)], 2, "averag"),
    ("method-twice", lambda w: ["evaluate", "--method", "average,average", "--protocol", str(w.protocol)], 2,
     "--method"),
    ("method-and-predictions", lambda w: evaluate(w, "--predictions", str(w.pred)), 2, "--predictions"),
    ("neither-method-nor-predictions", lambda w: ["evaluate", "--protocol", str(w.protocol)], 2, "--method"),
    ("predictions-without-name", lambda w: [a for a in predictions(w) if a not in ("--name", "X")], 2, "--name"),
    ("names-count-mismatch", lambda w: predictions(w)[:4] + ["X,Y"] + predictions(w)[5:], 2, "--name"),
    ("weights-missing-file", lambda w: evaluate(w, "--weights", str(w.root / "none.pth")), 2, "none.pth"),
    ("check-variant-unknown", lambda w: check(w, "--variant", "noisy"), 2, "noisy"),
    ("check-clip-unknown", lambda w: check(w, "--clip", "0111_1717"), 2, "0111_1717"),
    ("check-split-unknown", lambda w: check(w, "--split", "tset"), 2, "tset"),
    ("download-workers-zero", lambda w: ["download", "--workers", "0", "--dry-run"], 2, "--workers"),
    ("download-subset-unknown", lambda w: ["download", "--subset", "everything", "--dry-run"], 2, "everything"),
    ("leaderboard-format-unknown", lambda w: ["leaderboard", "--format", "xml", "--dir", str(w.lb)], 2, "xml"),
    ("submit-paper-not-http", lambda w: submit(w, "--paper", "ftp://x/y"), 2, "ftp://x/y"),
    ("submit-weights-sha-short", lambda w: submit(w, "--weights-sha256", "abc"), 2, "abc"),
    ("submit-trained-flag-text", lambda w: submit(w, "--trained-on-m3svd-train", "maybe"), 2, "maybe"),
    ("submit-empty-name", lambda w: submit(w)[:3] + [""] + submit(w)[4:], 2, "name"),
    ("unknown-command", lambda w: ["evalute"], 2, "evalute"),
    ("train-unknown-method", lambda w: ["train", "--method", "average", "--root", str(w.data)], 2, "average"),
]


def flag_cases() -> list[Case]:
    return [Case(f"flag-{name}", build, "", code, cause) for name, build, code, cause in FLAG_CASES]


# -- unwritable and wrong-type paths -------------------------------------------------------------------------------
def _file_at(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("a file, not a folder\n")
    return path


PATH_CASES = [
    ("out-is-a-file", lambda w: evaluate(w)[:8] + [str(_file_at(w.out))] + evaluate(w)[9:], 2, "out"),
    ("out-under-a-file", lambda w: evaluate(w)[:8] + [str(_file_at(w.root / "f") / "o")] + evaluate(w)[9:], 2,
     "f/o"),
    ("out-read-only", lambda w: evaluate(w)[:8] + [str(READ_ONLY / "o")] + evaluate(w)[9:], 2, str(READ_ONLY)),
    ("predictions-out-read-only", lambda w: predictions(w)[:10] + [str(READ_ONLY)] + predictions(w)[11:], 2,
     str(READ_ONLY)),
    ("flow-cache-is-a-file", lambda w: (w.protocol_text(temporal=("tgf",)),
                                        evaluate(w, "--flow-cache", str(_file_at(w.root / "fc"))))[1], 2, "fc"),
    ("flow-cache-read-only", lambda w: (w.protocol_text(temporal=("tgf",)),
                                        evaluate(w, "--flow-cache", str(READ_ONLY)))[1], 2, str(READ_ONLY)),
    ("root-is-a-file", lambda w: evaluate(w)[:6] + [str(_file_at(w.root / "r"))] + evaluate(w)[7:], 2, "r"),
    ("root-missing", lambda w: evaluate(w)[:6] + [str(w.root / "none")] + evaluate(w)[7:], 2, "none"),
    ("root-empty", lambda w: evaluate(w)[:6] + [str(_mkdir(w.root / "empty"))] + evaluate(w)[7:], 2, "empty"),
    ("submit-dir-is-a-file", lambda w: submit(w)[:-1] + [str(_file_at(w.lb))], 2, "lb"),
    ("submit-dir-read-only", lambda w: submit(w)[:-1] + [str(READ_ONLY)], 2, str(READ_ONLY)),
    ("leaderboard-dir-is-a-file", lambda w: ["leaderboard", "build", "--dir", str(_file_at(w.lb))], 2, "lb"),
    ("leaderboard-dir-missing", lambda w: ["leaderboard", "--dir", str(w.root / "nolb")], 2, "nolb"),
    ("leaderboard-html-is-a-file", lambda w: _with_record(w, ["leaderboard", "--dir", str(w.lb), "--html",
                                                              str(_file_at(w.root / "site"))]), 2, "site"),
    ("leaderboard-html-read-only", lambda w: _with_record(w, ["leaderboard", "--dir", str(w.lb), "--html",
                                                              str(READ_ONLY)]), 2, str(READ_ONLY)),
    ("check-path-missing", lambda w: ["check", str(w.root / "none")], 2, "none"),
    ("check-path-is-a-file", lambda w: ["check", str(_file_at(w.root / "f.txt"))], 2, "f.txt"),
    ("check-empty-folder", lambda w: ["check", str(_mkdir(w.root / "e"))], 2, "e"),
    ("info-path-missing", lambda w: ["info", str(w.root / "none")], 2, "none"),
    ("info-path-is-a-file", lambda w: ["info", str(_file_at(w.root / "f.txt"))], 2, "f.txt"),
    ("info-stray-folder", lambda w: (_mkdir(w.data / "test" / "infrared_Enhance" / "0999_9999"), info(w))[1], 0,
     "0999_9999"),
    ("validate-dir-missing", lambda w: ["validate", str(w.root / "nope"), "--protocol", str(w.protocol), "--root",
                                        str(w.data)], 1, "nope"),
    ("import-root-is-a-file", lambda w: ["import", str(w.data), "--root", str(_file_at(w.root / "r"))], 2, "r"),
    ("import-root-read-only", lambda w: ["import", str(w.data), "--root", str(READ_ONLY)], 2, str(READ_ONLY)),
]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def path_cases() -> list[Case]:
    return [Case(f"path-{name}", build, "", code, cause) for name, build, code, cause in PATH_CASES]


# -- import: unsafe, truncated and foreign archives ----------------------------------------------------------------
def _zip(w: World, members: dict[str, bytes], name: str = "release.zip") -> Path:
    path = w.root / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path


def _tar_with(w: World, kind: str) -> Path:
    path = w.root / "release.tar"
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("test/infrared_Enhance/0111_1716/0000.png")
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            archive.addfile(info)
        elif kind == "device":
            info.type = tarfile.CHRTYPE
            archive.addfile(info)
        else:
            info = tarfile.TarInfo("../../escape.png")
            info.size = 3
            archive.addfile(info, io.BytesIO(b"abc"))
    return path


def _good_zip(w: World) -> Path:
    path = w.root / "release.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(w.data.rglob("*.png")):
            archive.write(file, file.relative_to(w.data).as_posix())
    return path


def _import(w: World, source: Path) -> list[str]:
    return ["import", str(source), "--root", str(w.root / "imported")]


IMPORT_CASES = [
    ("zip-dot-dot", lambda w: _import(w, _zip(w, {"../evil.png": b"x"})), 2, "../evil.png"),
    ("zip-absolute", lambda w: _import(w, _zip(w, {"/tmp/evil.png": b"x"})), 2, "/tmp/evil.png"),
    ("tar-dot-dot", lambda w: _import(w, _tar_with(w, "dotdot")), 2, "../../escape.png"),
    ("tar-symlink", lambda w: _import(w, _tar_with(w, "symlink")), 2, "is a link"),
    ("tar-device", lambda w: _import(w, _tar_with(w, "device")), 2, "device"),
    ("zip-truncated", lambda w: _import(w, (lambda p: (p.write_bytes(p.read_bytes()[:300]), p)[1])(_good_zip(w))), 2,
     "release.zip"),
    ("zip-garbage", lambda w: _import(w, (lambda p: (p.write_bytes(b"PK\x03\x04 not really"), p)[1])(
        w.root / "release.zip")), 2, "release.zip"),
    ("zip-empty-file", lambda w: _import(w, (lambda p: (p.write_bytes(b""), p)[1])(w.root / "release.zip")), 2,
     "release.zip"),
    ("zip-no-dataset", lambda w: _import(w, _zip(w, {"readme.txt": b"hello"})), 2, "no M3SVD release"),
    ("unknown-suffix", lambda w: _import(w, _file_at(w.root / "release.rar")), 2, "release.rar"),
    ("source-missing", lambda w: _import(w, w.root / "none.zip"), 2, "none.zip"),
    ("name-with-slash", lambda w: _import(w, w.data) + ["--name", "a/b"], 2, "a/b"),
    ("target-holds-files", lambda w: (_file_at(w.root / "imported" / "full" / "x"), _import(w, w.data))[1], 2,
     "already holds files"),
    ("multi-part-gap", lambda w: _import(w, (lambda p: (_file_at(p.with_name("r.zip.003")), p)[1])(
        _file_at(w.root / "r.zip.001"))), 2, "002"),
]


def import_cases() -> list[Case]:
    return [Case(f"import-{name}", build, "", code, cause) for name, build, code, cause in IMPORT_CASES]


# -- videos: truncated, audio-only, empty, mismatched frame counts -------------------------------------------------
def _video_world(w: World, damage: str) -> Path:
    from synthetic import smooth

    root = w.root / "videos"
    frames = [smooth(i) for i in range(8)]
    write_video(root / "test" / "infrared" / f"{CLIP}.mp4", frames)
    vi = write_video(root / "test" / "visible" / f"{CLIP}.mp4", frames[:5] if damage == "short" else frames)
    if damage == "truncated":
        vi.write_bytes(vi.read_bytes()[: len(vi.read_bytes()) // 3])
    elif damage == "empty":
        vi.write_bytes(b"")
    elif damage == "garbage":
        vi.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 4)
    elif damage == "audio-only":
        _audio_only(vi)
    return root


def _audio_only(path: Path) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = np.zeros((1, 1024), np.float32)
        for _ in range(8):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate = 8000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


VIDEO_DAMAGE = {"truncated": 2, "empty": 2, "garbage": 2, "audio-only": 2, "short": 2}


def video_cases() -> list[Case]:
    cases = []
    for damage in VIDEO_DAMAGE:
        cause = "frame" if damage == "short" else f"{CLIP}.mp4"
        cases.append(Case(f"video-{damage}-check", lambda w, d=damage: ["check", str(_video_world(w, d)),
                                                                        "--no-progress"], "", 1, cause))
        cases.append(Case(f"video-{damage}-evaluate", lambda w, d=damage: (
            w.protocol_text(layouts=("m3svd-video",), folders=("videos",)),
            evaluate(w)[:6] + [str(_video_world(w, d))] + evaluate(w)[7:])[1], "", 2, cause))
        cases.append(Case(f"video-{damage}-info", lambda w, d=damage: ["info", str(_video_world(w, d))], "", 0,
                          cause))
    return cases


# -- the leaderboard: damaged records, killed and concurrent submits -----------------------------------------------
def _with_record(w: World, argv: list[str]) -> list[str]:
    from m3svd.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        if main(submit(w)) != 0:
            raise RuntimeError("the corpus's good submission was refused")
    return argv


def _record(w: World) -> Path:
    return next((w.lb / "submissions").iterdir())


def _damage_record(change: Callable[[Path], object]):
    def damage(w: World) -> list[str]:
        _with_record(w, [])
        change(_record(w))
        return ["leaderboard", "build", "--dir", str(w.lb)]
    return damage


def _edit_manifest(edit: Callable[[dict], object]):
    def change(record: Path) -> None:
        manifest = json.loads((record / "manifest.json").read_text())
        edit(manifest)
        (record / "manifest.json").write_text(json.dumps(manifest))
    return change


RECORD_CASES = [
    ("manifest-not-json", lambda r: (r / "manifest.json").write_text("{"), "manifest.json"),
    ("manifest-missing", lambda r: (r / "manifest.json").unlink(), "manifest.json"),
    ("manifest-other-schema", _edit_manifest(lambda m: m.__setitem__("schema", 99)), "schema"),
    ("manifest-no-files", _edit_manifest(lambda m: m.pop("files")), "files"),
    ("manifest-incomplete", _edit_manifest(lambda m: m.__setitem__("complete", False)), "not a complete"),
    ("results-altered", lambda r: (r / "results.parquet").write_bytes((r / "results.parquet").read_bytes()[:-9]
                                                                      + b"\0" * 9), "results.parquet"),
    ("results-missing", lambda r: (r / "results.parquet").unlink(), "results.parquet"),
    ("results-truncated", lambda r: (r / "results.parquet").write_bytes(b"PAR1"), "results.parquet"),
]


def _second_submit_of_the_same_frames(w: World) -> list[str]:
    _with_record(w, [])
    return submit(w)[:3] + ["Y"] + submit(w)[4:]


def _killed_submit(w: World) -> list[str]:
    staging = w.lb / ".staging" / "0123456789abcdef"
    (staging / "run" / "clips").mkdir(parents=True)
    (staging / "run" / "clips" / f"{CLIP}.parquet").write_bytes(b"PAR1 half written")
    (staging / ".alive").touch()
    return submit(w)


def _damaged_clip_results(w: World) -> list[str]:
    from m3svd.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(evaluate(w))
    (w.out / "clips" / f"{CLIP}.parquet").write_bytes(b"PAR1 torn")
    return evaluate(w)


def _short_clip(w: World) -> list[str]:
    for folder in range(len(M3SVD_FOLDERS)):
        for i in range(4, N):
            w.frame(folder, i).unlink()
    return check(w)


def leaderboard_cases() -> list[Case]:
    cases = [Case(f"record-{name}", _damage_record(change), "", 1, cause) for name, change, cause in RECORD_CASES]
    cases += [
        Case("check-a-four-frame-clip", _short_clip, "", (0, 1), CLIP),
        Case("submit-duplicate-frames", _second_submit_of_the_same_frames, "", 2, "duplicate"),
        Case("submit-after-a-killed-submit", _killed_submit, "", 0, "submitted"),
        Case("evaluate-rerun-over-damaged-clip-results", _damaged_clip_results, "", 0, "recomputed"),
        Case("evaluate-ir-reference-undefined-metric", lambda w: (w.protocol_text(image=("en", "scd")),
                                                                   evaluate(w)[:2] + ["ir"] + evaluate(w)[3:])[1],
             "", 0, "undefined"),
        Case("evaluate-constant-predictions", lambda w: (_constant(w), w.protocol_text(image=("en", "scd", "cc")),
                                                         predictions(w))[2], "", 0, "undefined"),
    ]
    return cases


def all_cases() -> list[Case]:
    cases = (data_frame_cases() + prediction_cases() + protocol_cases() + flag_cases() + path_cases()
             + import_cases() + video_cases() + leaderboard_cases())
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids repeat"
    return cases


# -- running one case ----------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    verdict: str  # clear | misleading | traceback | silent
    code: int | None
    text: str  # what was printed (stdout then stderr)
    why: str = ""


def run_case(case: Case, root: Path) -> Outcome:
    from m3svd.cli import main

    world = make_world(root)
    out, err = io.StringIO(), io.StringIO()
    try:
        argv = case.damage(world)
        if not isinstance(argv, list):
            argv = COMMANDS[case.command](world)
    except Exception as error:  # a broken case, not a verdict on the package
        raise RuntimeError(f"case {case.id} could not be set up: {error!r}") from error
    before = _snapshot(world)
    code = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code if isinstance(exit_.code, int) else 2
    except Exception as error:
        import traceback

        text = out.getvalue() + err.getvalue() + "".join(traceback.format_exception(error))
        return Outcome("traceback", None, text, f"{type(error).__name__}: {error}")
    text = out.getvalue() + err.getvalue()
    cause = case.cause.replace("{root}", str(root))
    partial = _half_written(world, before)
    if "Traceback (most recent call last)" in text:
        return Outcome("traceback", code, text, "a traceback was printed")
    codes = case.code if isinstance(case.code, tuple) else (case.code,)
    if code == 0 and 0 not in codes:
        return Outcome("silent", code, text, "exit 0 where a refusal was due")
    if code not in codes:
        return Outcome("misleading", code, text, f"exit {code}, expected {case.code}")
    errors = [line for line in err.getvalue().splitlines() if "error:" in line]
    if code == 2 and len(errors) != 1:
        return Outcome("misleading", code, text, f"{len(errors)} error lines, expected one")
    listed = code == 2 and "listed above" in errors[0]  # several problems: one line each on stdout, then a count
    if cause not in (errors[0] if code == 2 and not listed else text):
        return Outcome("misleading", code, text, f"the answer does not name {cause!r}")
    if partial:
        return Outcome("misleading", code, text, f"left half-written: {partial[0]}")
    return Outcome("clear", code, text)


def _snapshot(world: World) -> set[Path]:
    return set(world.root.rglob("*"))


def _half_written(world: World, before: set[Path]) -> list[str]:
    """Temp files and staging leftovers: what a refused or finished command must never leave."""
    found = [p for p in world.root.rglob("*") if p.name.endswith(".tmp") and p.is_file()]
    staging = world.lb / ".staging"
    if staging.is_dir():
        found += list(staging.iterdir())
    imported = world.root / "imported"
    if imported.is_dir():
        found += [p for p in imported.rglob("*") if p not in before]
    return [str(p) for p in found]


def main() -> int:
    import tempfile
    from collections import Counter

    os.environ.setdefault("M3SVD_OFFLINE", "1")
    counts: Counter = Counter()
    with tempfile.TemporaryDirectory() as folder:
        os.environ["M3SVD_ROOT"] = str(Path(folder) / "m3svd-root")
        for k, case in enumerate(all_cases()):
            outcome = run_case(case, Path(folder) / f"case{k}")
            counts[outcome.verdict] += 1
            if outcome.verdict != "clear" or "-v" in sys.argv:
                last = outcome.text.strip().splitlines()[-1:] or [""]
                print(f"{outcome.verdict:<10} {case.id}: {outcome.why} | {last[0][:160]}")
    total = sum(counts.values())
    print(f"{total} cases: " + ", ".join(f"{counts[v]} {v}" for v in ("clear", "misleading", "traceback", "silent")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
