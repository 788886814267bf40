"""Checks a dataset must pass before anyone trusts numbers computed on it.

Three checks per clip, from one decoding pass over every stream:

- **integrity**: streams pair frame for frame, frame numbers have no gap, every frame decodes, sizes
  agree, IR is really grey (identical channels when stored as three, lossless files only), no stream is
  dead (every frame blank, or one picture throughout), no blank frames or frozen runs (a frame repeated
  exactly), frame rates agree;
- **registration**: the residual IR↔VIS shift, by phase correlation of Sobel-magnitude images under a
  Hanning window on evenly spaced frames (the measurement in ``docs/dataset-m3svd.md``); the median
  over frames whose correlation peak carries information (response ≥ 0.05) and agrees with the others is
  compared with the layout's tolerance, and the response is reported with it; a clip measured on one
  frame only needs a response above what unrelated image pairs reach;
- **sync**: the frame offset between IR and VIS, as the lag that best aligns the *spatial pattern of
  frame-to-frame change* (block-averaged absolute differences, standardised per frame) of the two
  modalities: moving things change both images in the same places even where their intensities differ.
  It fails only on evidence: enough shared motion, an offset of 2+ frames, and a confidence (paired test,
  change map by change map) above anything synchronised clips reach; too little motion is inconclusive.
  The thresholds come from ``benchmarks/check_calibration.py`` (``docs/check-calibration.md``).

Degraded clips get the integrity check (their streams, and pairing and size against the clean reference,
which is checked as a clip of its own); registration and sync are measured on clean clips, where noise and
blur do not bias the estimates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from m3svd.data.clip import Clip
from m3svd.data.frames import to_grey
from m3svd.data.layouts import ClipSet
from m3svd.errors import DataError

OK, WARN, FAIL, INCONCLUSIVE, SKIPPED = "ok", "warn", "fail", "inconclusive", "skipped"
HEADINGS = {OK: "ok  ", WARN: "warn", FAIL: "FAIL", INCONCLUSIVE: "??  "}
REGISTRATION_FRAMES = 5
REGISTRATION_SMOOTHING = 1.5  # Gaussian σ (px) before the Sobel operator
MIN_RESPONSE = 0.05  # below this a phase-correlation peak carries no information (measured on the release)
# A lone informative frame (image pairs; clips where one frame has texture) needs a response above what
# unrelated IR/VIS pairs reach: 99th percentile 0.08, maximum 0.10 (docs/check-calibration.md).
LONE_RESPONSE = 0.11
REGISTRATION_AGREE_PX = 1.5  # informative frames within this of their median count as agreeing
SYNC_GRID = (32, 24)  # blocks (w, h) of the change maps
SYNC_MAX_LAG = 10
# Sync decision thresholds, from the null distributions measured by benchmarks/check_calibration.py
# (table in docs/check-calibration.md):
SYNC_MIN_PEAK = 0.12  # peak correlation of unrelated clip pairs: 99th percentile 0.08-0.11 by window length
SYNC_STRONG_PEAK = 0.3  # "strong motion" bin of the calibration table
SYNC_CONFIDENCE = 0.99  # offsets of 2+ frames; synchronised clips reach at most 0.69
SYNC_CONFIDENCE_ONE = 0.999  # a 1-frame offset (warn only); synchronised clips reach 0.997
BLANK_RANGE = 2  # a frame whose grey levels span at most this is blank (black, white or a flat fill)
FROZEN_MAD_LOSSY = 0.25  # mean |difference| below which two decoded lossy frames count as the same


def worst(statuses) -> str:
    """The heading of several statuses: ``fail`` > ``warn`` > ``inconclusive`` > ``ok``."""
    found = set(statuses)
    return next((s for s in (FAIL, WARN, INCONCLUSIVE) if s in found), OK)


@dataclass
class Check:
    name: str
    status: str
    message: str
    values: dict = field(default_factory=dict)


@dataclass
class ClipReport:
    clip: str
    split: str | None
    variant: str | None
    frames: int
    fps: float | None
    size: tuple[int, int] | None
    lossy: bool
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    @property
    def status(self) -> str:
        """The clip's heading: its worst check, ``fail`` > ``warn`` > ``inconclusive`` > ``ok``."""
        return worst(c.status for c in self.checks)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)


@dataclass
class DatasetReport:
    root: str
    layout: str
    clips: list[ClipReport]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.clips)

    def to_dict(self) -> dict:
        from m3svd import __version__

        return {
            "root": self.root, "layout": self.layout, "ok": self.ok, "toolkit_version": __version__,
            "clip_count": len(self.by_clip()),  # clips; "clips" below has one entry per clip × variant
            "clips": [{**asdict(c), "ok": c.ok, "status": c.status} for c in self.clips],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def by_clip(self) -> dict[tuple[str, str | None], list[ClipReport]]:
        """The reports of each clip (name and split), its variants (clean, degraded) together."""
        grouped: dict[tuple[str, str | None], list[ClipReport]] = {}
        for c in self.clips:
            grouped.setdefault((c.clip, c.split), []).append(c)
        return grouped

    def format(self) -> str:
        """Clips, not clip × variant: one heading per clip (its worst status), each variant's line and checks
        under it; the counts are of clips, a clip passing when every variant does."""
        grouped = self.by_clip()
        variants = len(self.clips)
        extra = f" ({variants} clip-variants)" if variants != len(grouped) else ""
        lines = [f"{self.root}: layout {self.layout}, {len(grouped)} clip(s){extra}"]
        statuses = {}
        for (name, split), reports in grouped.items():
            statuses[name, split] = worst(r.status for r in reports)
            lines.append(f"{HEADINGS[statuses[name, split]]} {name}" + (f" [{split}]" if split else ""))
            for c in reports:
                size = f"{c.size[1]}×{c.size[0]}" if c.size else "?"
                fps = f"{c.fps:g} fps" if c.fps else "fps n/a"
                lines.append(f"     {c.variant or 'clip'}: {c.frames} frames {size} {fps}" + (" lossy" if c.lossy
                                                                                               else ""))
                lines.extend(f"       {k.name:<12} {k.status:<12} {k.message}" for k in c.checks)
        failed = sum(s == FAIL for s in statuses.values())
        warned = sum(s == WARN for s in statuses.values())
        unsure = sum(s == INCONCLUSIVE for s in statuses.values())
        lines.append(f"{len(grouped) - failed} of {len(grouped)} clip(s) passed; {warned} with warnings, "
                     f"{unsure} inconclusive (??: a check could not decide; see its line)")
        return "\n".join(lines)


# -- the decoding pass -----------------------------------------------------------------------------------
@dataclass
class _Stream:
    """What one pass over a stream keeps: small change maps for every frame, a few full frames."""

    label: str
    blocks: list[np.ndarray] = field(default_factory=list)
    keep: dict[int, np.ndarray] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    sizes: set = field(default_factory=set)
    frozen: list[tuple[int, int]] = field(default_factory=list)  # (first index, run length)
    blank: list[tuple[int, int]] = field(default_factory=list)  # (index, grey level) of constant frames
    frames: int = 0


def block_image(grey: np.ndarray) -> np.ndarray:
    """The ``SYNC_GRID`` block averages of a grey frame, from which sync builds its change maps."""
    return cv2.resize(grey.astype(np.float32), SYNC_GRID, interpolation=cv2.INTER_AREA)


def _scan(label: str, source, n: int, keep: set[int], is_ir: bool, progress) -> _Stream:
    out = _Stream(label)
    prev, run_start, bad_channels = None, None, 0
    first_size, first_bad, odd_size = None, None, None  # the file named when channels or sizes disagree
    frozen_mad = FROZEN_MAD_LOSSY if source.lossy else 0.0
    for i in range(n):
        try:
            raw = source.read(i)
        except DataError as error:
            out.problems.append(f"{label} frame {i} does not decode: {error}")
            prev = None
            progress(1)
            continue
        if is_ir and raw.ndim == 3 and not source.lossy and not (raw == raw[..., :1]).all():
            bad_channels += 1
            first_bad = first_bad if first_bad is not None else i
        grey = to_grey(raw)
        first_size = first_size or grey.shape[:2]
        if odd_size is None and grey.shape[:2] != first_size:
            odd_size = i
        out.frames += 1
        if int(grey.max()) - int(grey.min()) <= BLANK_RANGE:
            out.blank.append((i, int(np.median(grey))))
        out.sizes.add(grey.shape[:2])
        out.blocks.append(block_image(grey))
        if i in keep:
            out.keep[i] = grey
        if prev is not None and prev.shape == grey.shape:
            same = np.abs(grey.astype(np.int16) - prev).mean() <= frozen_mad
            if same and run_start is None:
                run_start = i - 1
            elif not same and run_start is not None:
                out.frozen.append((run_start, i - run_start))
                run_start = None
        prev = grey
        progress(1)
    if run_start is not None:
        out.frozen.append((run_start, n - run_start))
    if bad_channels:
        out.problems.append(f"{label}: {bad_channels} frame(s) stored with 3 channels that are not identical (first: "
                            f"{_frame_name(source, first_bad)})")
    if len(out.sizes) > 1:
        out.problems.append(f"{label}: frame sizes vary ({', '.join(f'{w}×{h}' for h, w in sorted(out.sizes))}; "
                            f"first differing: {_frame_name(source, odd_size)})")
    return out


def _frame_name(source, i: int) -> str:
    """The file of frame ``i`` where the stream is a folder of images, else its number."""
    paths = getattr(source, "paths", None)
    return str(paths[i]) if paths is not None and i < len(paths) else f"frame {i}"


def _dead(s: _Stream) -> str | None:
    """Why the stream carries no picture at all (every frame blank, or one frame repeated), or ``None``."""
    if s.frames and len(s.blank) == s.frames:
        levels = sorted({level for _, level in s.blank})
        return f"{s.label} is dead: all {s.frames} frames are blank (grey level {', '.join(map(str, levels[:3]))})"
    if s.frames > 1 and s.frozen and s.frozen[0] == (0, s.frames):
        return f"{s.label} is dead: all {s.frames} frames are the same picture"
    return None


def _integrity(clip: Clip, streams: list[_Stream], fps: dict[str, float | None]) -> Check:
    problems = clip.pairing_problems()
    for s in streams:
        problems += s.problems
        dead = _dead(s)
        if dead:
            problems.append(dead)
    sizes = {s.label: next(iter(s.sizes)) for s in streams if len(s.sizes) == 1}
    if clip.reference is not None and not problems:
        try:
            sizes["clean reference"] = clip.reference.size
        except (DataError, IndexError) as error:
            problems.append(f"clean reference: {error}")
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{k} {w}×{h}" for k, (h, w) in sizes.items())
        problems.append(f"sizes differ between streams ({listed})")
    rates = {k: v for k, v in fps.items() if v}
    if len({round(v, 3) for v in rates.values()}) > 1:
        problems.append("frame rates differ (" + ", ".join(f"{k} {v:g}" for k, v in rates.items()) + ")")
    frozen = {s.label: s.frozen for s in streams if s.frozen}
    blank = {s.label: [i for i, _ in s.blank] for s in streams if s.blank}
    values = {"frozen_runs": {k: [list(r) for r in v] for k, v in frozen.items()}, "blank_frames": blank, "fps": fps}
    if problems:
        return Check("integrity", FAIL, "; ".join(problems), {**values, "problems": problems})
    if frozen or blank:
        found = [f"blank frames: {k} {len(v)}, first {v[0]}" for k, v in blank.items()]
        found += [f"frozen frames: {k} {len(v)} run(s), first {v[0][0]}..{v[0][0] + v[0][1] - 1}"
                  for k, v in frozen.items()]
        return Check("integrity", WARN, "; ".join(found), values)
    n = len(streams[0].blocks) if streams else 0
    return Check("integrity", OK, f"{len(streams)} streams × {n} frames decode, sizes and rates agree", values)


# -- registration ----------------------------------------------------------------------------------------
def _gradient_magnitude(grey: np.ndarray) -> np.ndarray:
    # Smoothing first keeps sensor noise (TNO's intensified VIS, night frames) from swamping the peak.
    image = cv2.GaussianBlur(grey.astype(np.float32), (0, 0), REGISTRATION_SMOOTHING)
    magnitude = cv2.magnitude(cv2.Sobel(image, cv2.CV_32F, 1, 0), cv2.Sobel(image, cv2.CV_32F, 0, 1))
    return (magnitude - magnitude.mean()) / (magnitude.std() + 1e-6)


def estimate_shift(ir: np.ndarray, vi_grey: np.ndarray) -> tuple[float, float, float]:
    """``(dx, dy, response)``: VIS content sits ``(dx, dy)`` px from the same content in IR."""
    window = cv2.createHanningWindow(ir.shape[::-1], cv2.CV_32F)
    (dx, dy), response = cv2.phaseCorrelate(_gradient_magnitude(ir), _gradient_magnitude(vi_grey), window)
    return float(dx), float(dy), float(response)


def _registration(ir: _Stream, vi: _Stream, tolerance: float) -> Check:
    return check_registration([(i, ir.keep[i], vi.keep[i]) for i in sorted(ir.keep) if i in vi.keep], tolerance)


def check_registration(pairs: list[tuple[int, np.ndarray, np.ndarray]], tolerance: float) -> Check:
    """The registration check on ``(frame index, grey IR, grey VIS)`` pairs (also run by the calibration)."""
    pairs = [(i, a, b) for i, a, b in pairs if a.shape == b.shape]
    if not pairs:
        return Check("registration", SKIPPED, "no frame pair of equal size to compare")
    per_frame = [(i, *estimate_shift(a, b)) for i, a, b in pairs]
    values = {
        "tolerance_px": tolerance,
        "per_frame": [{"frame": i, "dx": dx, "dy": dy, "response": r} for i, dx, dy, r in per_frame],
    }
    informative = [(dx, dy, r) for _, dx, dy, r in per_frame if r >= MIN_RESPONSE]
    if not informative:
        best = max(r for *_, r in per_frame)
        message = f"no informative correlation peak (best response {best:.3f} < {MIN_RESPONSE})"
        return Check("registration", INCONCLUSIVE, message, values)
    centre = np.median(np.array(informative)[:, :2], axis=0)
    agreeing = [v for v in informative if np.hypot(v[0] - centre[0], v[1] - centre[1]) <= REGISTRATION_AGREE_PX]
    if len(agreeing) < min(2, len(per_frame)):  # one frame alone may be a wrapped or spurious peak
        message = f"correlation peaks disagree ({len(agreeing)} of {len(per_frame)} frames agree)"
        return Check("registration", INCONCLUSIVE, message, values)
    if len(agreeing) == 1 and agreeing[0][2] < LONE_RESPONSE:
        message = (f"one informative frame, response {agreeing[0][2]:.3f} < {LONE_RESPONSE} (unrelated image pairs "
                   f"reach this)")
        return Check("registration", INCONCLUSIVE, message, values)
    dx, dy, response = (float(np.median([v[k] for v in agreeing])) for k in range(3))
    magnitude = float(np.hypot(dx, dy))
    values.update({"shift_px": [dx, dy], "magnitude_px": magnitude, "response": response})
    status = OK if magnitude <= tolerance else FAIL
    message = (
        f"VIS offset from IR ({dx:+.2f}, {dy:+.2f}) px, |{magnitude:.2f}| {'≤' if status == OK else '>'} "
        f"{tolerance:g} px (response {response:.2f}, {len(agreeing)}/{len(per_frame)} frames agree)"
    )
    return Check("registration", status, message, values)


# -- temporal sync -------------------------------------------------------------------------------------
def _change_maps(blocks: list[np.ndarray]) -> np.ndarray:
    """``(T-1)×blocks`` frame-to-frame |change|, without its static part, each map standardised.

    The per-block mean change over the window is removed first: regions that change all the time
    (foliage, sensor noise in dark areas) correlate equally at every lag and would only flatten the peak.
    """
    stack = np.stack(blocks).astype(np.float64)
    change = np.abs(np.diff(stack, axis=0)).reshape(len(stack) - 1, -1)
    change -= change.mean(axis=0, keepdims=True)
    change -= change.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(change, axis=1, keepdims=True)
    return np.divide(change, norm, out=np.zeros_like(change), where=norm > 1e-9)


def _lag_correlations(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lags, C)``: ``C[t, j]`` correlates IR change map ``t`` with VIS map ``t + lags[j]`` (NaN outside)."""
    n = min(len(a), len(b))
    max_lag = min(max_lag, max(n - 3, 0))  # at least 3 overlapping change maps per lag
    lags = np.arange(-max_lag, max_lag + 1)
    table = np.full((n, len(lags)), np.nan)
    for j, lag in enumerate(lags):
        if lag >= 0:
            table[: n - lag, j] = (a[: n - lag] * b[lag:n]).sum(axis=1)
        else:
            table[-lag:n, j] = (a[-lag:n] * b[: n + lag]).sum(axis=1)
    return lags, table


def _confidence(differences: np.ndarray) -> float:
    """One-sided confidence that the mean of paired per-map differences is above 0 (Student t)."""
    from scipy.special import stdtr

    d = differences[~np.isnan(differences)]
    if len(d) < 2:
        return 0.5
    spread = d.std(ddof=1)
    if spread < 1e-12:
        return 1.0 if d.mean() > 0 else 0.5
    return float(stdtr(len(d) - 1, d.mean() / (spread / np.sqrt(len(d)))))


@dataclass
class SyncEstimate:
    """The best lag, how well the modalities' motion correlates there, and how sure the data is of it.

    ``confidence`` compares the best lag with lag 0 (with the runner-up when 0 is best), map by map;
    ``support`` is the confidence that the maps correlate at the best lag at all, so that one burst of
    change (a gain jump, a pan) in a few maps cannot carry the verdict alone.
    """

    lag: int
    peak: float
    confidence: float
    support: float
    runner_up: int
    maps: int
    scores: dict[int, float]


def estimate_offset(ir_blocks: list[np.ndarray], vi_blocks: list[np.ndarray],
                    max_lag: int = SYNC_MAX_LAG) -> SyncEstimate:
    """VIS frame ``i + lag`` shows what IR frame ``i`` shows, with a confidence (see :class:`SyncEstimate`)."""
    lags, table = _lag_correlations(_change_maps(ir_blocks), _change_maps(vi_blocks), max_lag)
    scores = np.nanmean(table, axis=0)
    best = int(np.argmax(scores))
    zero = int(np.flatnonzero(lags == 0)[0])
    others = scores.copy()
    others[best] = -np.inf
    runner_up = int(np.argmax(others)) if len(lags) > 1 else best
    against = zero if best != zero else runner_up
    confidence = _confidence(table[:, best] - table[:, against]) if against != best else 0.5
    support = _confidence(table[:, best])
    return SyncEstimate(int(lags[best]), float(scores[best]), confidence, support, int(lags[runner_up]),
                        len(table), {int(k): float(v) for k, v in zip(lags, scores, strict=True)})


def motion_level(peak: float) -> str:
    """``weak`` (too little shared motion to time), ``moderate`` or ``strong``: the calibration table's bins."""
    return "weak" if peak < SYNC_MIN_PEAK else "moderate" if peak < SYNC_STRONG_PEAK else "strong"


def _sync(ir: _Stream, vi: _Stream) -> Check:
    return check_sync(ir.blocks, vi.blocks)


def check_sync(ir_blocks: list[np.ndarray], vi_blocks: list[np.ndarray]) -> Check:
    """The sync check on the block images of :func:`block_image` (also run by the calibration)."""
    if min(len(ir_blocks), len(vi_blocks)) < 4:
        return Check("sync", SKIPPED, f"{min(len(ir_blocks), len(vi_blocks))} frame(s): too few to measure")
    est = estimate_offset(ir_blocks, vi_blocks)
    # The confidence of a non-zero offset is the weaker of: beating lag 0, and correlating at all.
    sure = est.confidence if est.lag == 0 else min(est.confidence, est.support)
    values = {
        "offset_frames": est.lag, "confidence": sure, "confidence_vs_lag0": est.confidence, "support": est.support,
        "score": est.peak, "motion": motion_level(est.peak), "runner_up": est.runner_up, "change_maps": est.maps,
        "scores": {str(k): v for k, v in est.scores.items()},
    }
    detail = f"(correlation {est.peak:.2f}, confidence {sure:.3f}, lags ±{max(est.scores)} searched)"
    if est.peak < SYNC_MIN_PEAK:
        return Check("sync", INCONCLUSIVE, f"too little shared motion to time the streams: correlation "
                     f"{est.peak:.2f} < {SYNC_MIN_PEAK} (unrelated clips reach this)", values)
    if est.lag == 0:
        return Check("sync", OK, f"offset 0 frames {detail}", values)
    direction = "behind" if est.lag > 0 else "ahead of"
    claim = f"VIS is {abs(est.lag)} frame(s) {direction} IR"
    if abs(est.lag) == 1:
        if sure >= SYNC_CONFIDENCE_ONE:
            return Check("sync", WARN, f"{claim}: within the ±1 frame synchronised clips show, but with more "
                         f"evidence than any of them {detail}", values)
        return Check("sync", OK, f"offset within ±1 frame: best lag {est.lag:+d}, the ±1 frame synchronised clips "
                     f"show too {detail}", values)
    if sure >= SYNC_CONFIDENCE:
        return Check("sync", FAIL, f"{claim} {detail}", values)
    against = "lag 0" if est.confidence < est.support else "no correlation"
    return Check("sync", INCONCLUSIVE, f"best lag {est.lag:+d} but not significant against {against}: confidence "
                 f"{sure:.3f} < {SYNC_CONFIDENCE} {detail}", values)


# -- entry points --------------------------------------------------------------------------------------
def check_clip(clip: Clip, tolerance_px: float = 2.0, progress=None) -> ClipReport:
    """Run the three checks on one clip (one decoding pass per stream)."""
    progress = progress or (lambda k: None)
    sources = {"IR": clip.ir_source, "VIS": clip.vi_source}
    try:
        counts = {label: len(s) for label, s in sources.items()}
    except DataError as error:
        return ClipReport(clip.name, clip.split, clip.variant, 0, None, None, clip.lossy,
                          [Check("integrity", FAIL, str(error))])
    n = max(counts.values())
    keep = set(np.linspace(0, n - 1, min(REGISTRATION_FRAMES, n)).round().astype(int).tolist()) if n else set()
    measure = clip.reference is None
    streams = [
        _scan(label, s, counts[label], keep if measure else set(), label == "IR", progress)
        for label, s in sources.items()
    ]
    fps = {label: s.fps for label, s in sources.items()}
    checks = [_integrity(clip, streams, fps)]
    if measure:
        checks += [_registration(streams[0], streams[1], tolerance_px), _sync(streams[0], streams[1])]
    size = next(iter(streams[0].sizes)) if streams[0].sizes else None
    return ClipReport(clip.name, clip.split, clip.variant, min(counts.values()), clip.fps, size, clip.lossy, checks)


def check_dataset(clipset: ClipSet, clips: Iterable[Clip] | None = None, show_progress: bool = True) -> DatasetReport:
    """Check every clip of ``clipset`` (or the given subset), with one progress bar over all frames."""
    from tqdm.auto import tqdm

    clips = list(clipset.clips if clips is None else clips)
    with tqdm(desc="checking", unit="frame", disable=not show_progress, leave=False) as bar:
        reports = []
        for clip in clips:
            bar.set_postfix_str(clip.name)
            reports.append(check_clip(clip, clipset.registration_tolerance_px, bar.update))
    return DatasetReport(str(clipset.root), clipset.layout, reports)
