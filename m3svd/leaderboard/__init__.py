"""Verified leaderboard: validate submissions, recompute them into records, build and render rankings.

``validate`` checks a folder of fused frames; ``submit`` scores it with `m3svd evaluate` and writes a record;
``build`` turns the records into ``leaderboard.parquet``; ``render``/``write_site`` show it. Numbers copied from
papers live apart, in ``reported.csv``, and never enter a ranking.
"""

from m3svd.leaderboard.build import build
from m3svd.leaderboard.render import load_reported, render, render_reported
from m3svd.leaderboard.schema import LeaderboardError, Metadata, MixError, SubmissionError
from m3svd.leaderboard.site import write_site
from m3svd.leaderboard.submit import Submission, submit
from m3svd.leaderboard.validate import validate

__all__ = ["build", "load_reported", "render", "render_reported", "write_site", "LeaderboardError", "Metadata",
           "MixError", "SubmissionError", "Submission", "submit", "validate"]
