"""Large buffers from the kernel and back to it at once, not kept in the C heap.

glibc serves a large malloc by mmap, but after the first such buffer is freed it raises its
threshold (up to 32 MiB), and from then on gradient buffers of a few MiB come from the heap arenas,
which keep them when freed. On a TorchScript MLP-Mixer (onnxruntime without its arena, 8 points a
run) the process then grew by about 250 MB a run: peak 1.8-2.6 GB, against 1.26 GB with the
threshold fixed at 1 MiB, at the same speed (ResNet-50: 1.21 GB to 1.10 GB, within 3 % of the time).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter; fixing it also turns off its dynamic raise
THRESHOLD = 1 << 20


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold at THRESHOLD for this process; False where the C library is not
    glibc (musl, macOS, Windows: nothing to do)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
