"""glibc malloc settings for the worker: large buffers always from mmap, so freeing them frees RSS.

The worker's large Python buffers (Kafka fetch responses, the batches sent to the decoding
process, encoded inserts: megabytes each) come from glibc malloc. glibc serves a large block
with mmap, but each time such a block is freed it raises its mmap threshold to that size (up to
32 MiB), and from then on serves those blocks from its heaps, where freed memory stays in the
process. Measured (``parwatch bench``, N = 200,000, idle worker after 4N): glibc held 110-123
MiB of free memory, grown by 25 MiB from N to 4N. A fixed threshold turns the dynamic raising
off: blocks of ``MMAP_THRESHOLD`` or more are mmapped and go back to the system when freed.
(ClickHouse's own memory, in chdb, is jemalloc's, not glibc's: untouched here.)

Not glibc (musl, macOS): ``configure`` does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024
TRIM_THRESHOLD = 4 * 1024 * 1024


def configure(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Fix glibc's mmap and trim thresholds for this process; False where there is no mallopt."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(M_TRIM_THRESHOLD, trim_threshold)
    )
