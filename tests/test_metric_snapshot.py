"""Every registered metric's values are pinned (tests/metric_snapshot.json): a change fails until that metric's
``version`` is bumped and the snapshot regenerated (``python tests/metric_snapshot.py``), so results that carry a
metric's version always mean one definition."""

from __future__ import annotations

import json

import metric_snapshot as snap
from conftest import shared


def test_every_registered_metric_matches_its_snapshot_or_says_which_moved():
    shared("m3svd")
    snapshot = json.loads(snap.SNAPSHOT.read_text())
    exact = snapshot["environment"] == snap.environment()  # to the bit where it was made; else to RTOL
    problems = snap.differences(snapshot["metrics"], snap.compute(), exact)
    assert not problems, "\n".join(problems)


def test_a_moved_value_without_a_version_bump_is_named():
    """The comparison itself: a last-digit change fails, a bumped version is asked to regenerate, undefined
    values compare as such."""
    old = {"x@c": {"version": "1", "values": [1.0, None]}}
    assert snap.differences(old, {"x@c": {"version": "1", "values": [1.0, None]}}) == []
    moved = snap.differences(old, {"x@c": {"version": "1", "values": [1.0 + 2.3e-16, None]}})  # one ulp
    assert snap.differences(old, {"x@c": {"version": "1", "values": [1.0 + 2.3e-16, None]}}, exact=False) == []
    assert len(moved) == 1 and "values changed" in moved[0] and "bump the metric's version" in moved[0]
    bumped = snap.differences(old, {"x@c": {"version": "2", "values": [1.5, None]}})
    assert "version 1 → 2" in bumped[0] and "regenerate" in bumped[0]
    assert "not in the snapshot" in snap.differences({}, old)[0]
