"""Errors that carry one clear line for the user: the file, what was expected, what was found."""


class M3SVDError(Exception):
    """Base class; the CLI prints ``str(error)`` as a single line and exits non-zero."""


class DataError(M3SVDError, ValueError):
    """A dataset on disk is missing, malformed or does not match a known layout."""


def did_you_mean(name: str, choices) -> str:
    """Suffix such as `` (did you mean 'qabf'?)`` for an unknown name, or ``''``."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
