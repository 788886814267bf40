"""Temporal metrics (``kind="temporal"``): defined in :mod:`m3svd.metrics.temporal`, registered on import here."""

from m3svd.metrics import temporal  # noqa: F401
