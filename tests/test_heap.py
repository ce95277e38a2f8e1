"""Large buffers go back to the kernel when freed: glibc's mmap threshold stays fixed."""

from __future__ import annotations

import ctypes.util
import os
import subprocess
import sys

import pytest

# In a fresh interpreter: free one 4 MiB buffer, then how many bytes a 2 MiB one holds in mmapped
# chunks (glibc's mallinfo2 hblkhd), with or without `return_large_buffers` first. Freeing the first
# raises glibc's dynamic threshold to 4 MiB, so by its rule (size >= threshold) the second can only
# come from the heap, unless the threshold is fixed at 1 MiB.
PROBE = """
import ctypes, ctypes.util, sys
import numpy as np
from smugir.heap import return_large_buffers
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.mallinfo2.restype = Info
if sys.argv[1] == "fixed":
    assert return_large_buffers()
first = np.ones(1 << 19)  # 4 MiB, mmapped; freed, glibc raises its threshold to it unless fixed
del first
before = libc.mallinfo2().hblkhd
second = np.ones(1 << 18)
print(libc.mallinfo2().hblkhd - before)
"""


def _mapped_bytes(mode: str) -> int:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    out = subprocess.run([sys.executable, "-I", "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env).stdout
    return int(out)


@pytest.mark.skipif(ctypes.util.find_library("c") is None or not hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2"),
                    reason="not glibc 2.33 or later: no mmap threshold to fix")
def test_a_large_buffer_freed_once_is_mapped_again_not_kept_in_the_heap():
    assert _mapped_bytes("default") == 0  # the premise: glibc keeps the second buffer in its heap
    assert _mapped_bytes("fixed") >= 2 << 20
