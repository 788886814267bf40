"""One module per convention; each registers its metrics on import."""
