"""Helpers shared by the leaderboard tests: a short protocol on the built-in sample, and fused-frame folders."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from synthetic import protocol_file


def short_protocol(folder: Path, description: str = "four frames of the sample, three metrics; for tests",
                   clips="all", name: str = "short.toml", image=("en", "sd", "nabf"),
                   ranking: str | None = 'primary = ["en", "sd", "nabf"]') -> Path:
    """Scores 4 of the sample's 32 frames on 3 metrics: a submission costs well under a second to score."""
    return protocol_file(Path(folder) / name, id="short-sample", description=description, layouts=["sample"],
                         folders=["sample"], split=None, clips=clips, image=list(image), ranking=ranking)


@lru_cache(maxsize=1)
def sample_frames() -> tuple[np.ndarray, np.ndarray]:
    from m3svd.data import open_dataset

    clip = open_dataset("sample").select(variant="clean")[0]
    return clip.frames(0, len(clip))


def blend(weight: float) -> np.ndarray:
    """A plausible fusion (weighted IR/VIS mix) that differs for every weight."""
    ir, vi = sample_frames()
    mixed = weight * ir[..., None].astype(np.float64) + (1 - weight) * vi.astype(np.float64)
    return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def write_frames(folder: Path, frames: np.ndarray, clip: str = "sample", compression: int = 1) -> Path:
    """``folder/<clip>/000000.png ...`` (RGB frames written as PNG); returns ``folder``."""
    target = Path(folder) / clip
    target.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        bgr = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(target / f"{i:06d}.png"), bgr, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    return Path(folder)


def submitter(writer: int, folders: list[str], protocol: str, leaderboard_dir: str, barrier, queue) -> None:
    """One concurrent writer process: wait until every writer is ready, then submit each folder in turn.

    Puts ``(writer, [(folder, "ok:<id>" | "refused:<first problem>")], error)`` on ``queue``; any exception other
    than a refusal is sent back as ``error`` (it would be a loss).
    """
    import traceback

    outcomes: list[tuple[str, str]] = []
    try:
        from m3svd.leaderboard import SubmissionError, submit

        barrier.wait(timeout=120)
        for folder in folders:
            try:
                record = submit(folder, f"writer {Path(folder).name}", protocol, leaderboard_dir=leaderboard_dir)
                outcomes.append((folder, f"ok:{record.id}"))
            except SubmissionError as error:
                outcomes.append((folder, f"refused:{error.problems[0] if error.problems else error}"))
        queue.put((writer, outcomes, None))
    except BaseException:  # noqa: B036 - report everything to the parent, which fails the test
        queue.put((writer, outcomes, traceback.format_exc()))


def reference_record(leaderboard_dir: Path, protocol: Path, method: str, root=None) -> str:
    """A reference record of a toolkit method (``ir``, ``vi``, ``average``): its frames fused by the toolkit and
    submitted with ``reference=True`` (shown apart, never ranked, not refused as a copy of a source)."""
    from m3svd import protocols
    from m3svd.evaluate import MethodSpec, fuse
    from m3svd.leaderboard import submit

    loaded = protocols.load(str(protocol))
    folder = fuse(loaded, MethodSpec(method), Path(leaderboard_dir).parent / f"fused-{method}", root=root)
    name = method.upper() if method in ("ir", "vi") else method.capitalize()
    return submit(folder, name, loaded, root=root, leaderboard_dir=leaderboard_dir, reference=True).id
