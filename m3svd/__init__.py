"""m3svd: benchmark toolkit for infrared-visible video fusion around the M3SVD dataset."""

__version__ = "0.1.0"
