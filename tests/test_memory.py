"""keep_freed_memory: freed frame-sized planes are reused from the heap instead of being unmapped and faulted in
again, which is what makes repeated scoring cheaper."""

import platform
import subprocess
import sys

import pytest

from m3svd.memory import keep_freed_memory

FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from m3svd.memory import keep_freed_memory
    assert keep_freed_memory()
def chunk():  # a chunk's frame-sized float64 planes (640x480): live together, then dropped together
    planes = [np.ones((480, 640)) for _ in range(40)]
    del planes
chunk()  # warm up: the first chunk faults its pages in either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    chunk()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_planes_are_reused_instead_of_faulted_in_again():
    assert keep_freed_memory() is True and keep_freed_memory() is True  # accepted, and idempotent
    kept, default = _faults("keep"), _faults("default")
    assert default > 10 * 10_000, default  # by default glibc gives the freed planes back: ~24,000 faults a chunk
    assert kept < default / 10, (kept, default)
