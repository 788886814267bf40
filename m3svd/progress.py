"""Progress that suits where it goes: a tqdm bar on a terminal, plain lines with an ETA in a log or CI (where a bar
is invisible or a flood of carriage returns), nothing with ``--no-progress``."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable


def mode(no_progress: bool) -> bool | str:
    """What the CLI shows: ``"bar"`` when stderr is a terminal, else ``"lines"``; False with --no-progress."""
    if no_progress:
        return False
    return "bar" if sys.stderr.isatty() else "lines"


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class LineProgress:
    """One plain line (done/total, percent, elapsed, ETA) each time another ``step`` of the work is done or ``every``
    seconds have passed since the last line, whichever comes first; ``step=None`` prints by time only. ``amount``
    formats counts (e.g. bytes as "1.2 GB"); ``total`` None: unknown, no percent or ETA. Safe to update from
    several threads (download workers)."""

    def __init__(self, total: int | None, desc: str, unit: str = "frame", step: float | None = 0.1,
                 every: float = 30.0, stream=None, clock=None, amount: Callable[[int], str] | None = None):
        import time

        self.total, self.desc, self.unit, self.step, self.every = total, desc, unit, step, every
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock or time.monotonic
        self.amount = amount
        self.start = self.last = self.clock()
        self.n = self.shown = 0
        self._lock = threading.Lock()

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n
            now = self.clock()
            steps = round(1 / self.step) if self.step else 0  # integer steps: 3/10 of the way is step 3, not 2.999…
            crossed = bool(steps and self.total) and self.n * steps // self.total > self.shown * steps // self.total
            if crossed or now - self.last >= self.every:
                self._print(now)

    def close(self) -> None:
        with self._lock:
            if self.n != self.shown and self.step is not None:
                self._print(self.clock())

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _print(self, now: float) -> None:
        elapsed = now - self.start
        if self.amount is not None:
            line = f"{self.desc}: {self.amount(self.n)}" + (f" of {self.amount(self.total)}" if self.total else "")
        else:
            line = f"{self.desc}: {self.n}/{self.total if self.total is not None else '?'} {self.unit}s"
        if self.total:
            line += f" ({100 * self.n / self.total:.0f}%)"
        line += f", {_duration(elapsed)} elapsed"
        if self.total and 0 < self.n < self.total:
            line += f", ETA {_duration(elapsed / self.n * (self.total - self.n))}"
        print(line, file=self.stream, flush=True)
        self.last, self.shown = now, self.n


def progress_bar(show: bool | str, total: int, desc: str, unit: str = "frame", step: float | None = 0.1):
    """A tqdm bar (``show`` True or ``"bar"``), plain :class:`LineProgress` lines (``"lines"``), or nothing."""
    if not show:
        return _NoBar()
    if show == "lines":
        return LineProgress(total, desc, unit, step)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)
