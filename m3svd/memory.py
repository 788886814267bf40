"""Process-wide allocator setting for long scoring runs (``m3svd evaluate`` and its workers)."""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit
_KEEP = 512 << 20  # freed memory kept at the top of the heap: a chunk's dropped source statistics fit
_done = False


def keep_freed_memory() -> bool:
    """Ask glibc to allocate blocks up to 32 MiB from its heap and keep up to 512 MiB of freed heap for reuse,
    instead of returning freed blocks to the OS.

    Scoring creates and drops many frame-sized float64 planes (2.4 MB each at 640×480). By default glibc unmaps
    each freed one and the next page-faults afresh, which costs as much as the arithmetic on it: the cddfuse
    metric set with fresh source statistics takes 0.097 s/frame, 0.078 with this (``benchmarks/metrics_speed.py``).
    The process keeps up to 512 MiB above its live memory instead of shrinking. Returns False (and changes
    nothing) without glibc.
    """
    global _done
    if _done:
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _KEEP))
    return _done
