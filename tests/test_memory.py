import platform

import pytest

from m3svd.memory import keep_freed_memory


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_keep_freed_memory_is_accepted_by_glibc_and_idempotent():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
