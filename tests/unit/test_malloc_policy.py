"""The worker's malloc policy: large blocks come from mmap even after glibc raised its threshold."""

from __future__ import annotations

import ctypes
import platform

import pytest

from parwatch import malloc_policy

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="mallopt and mallinfo2 are glibc's"
)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")
    ]  # fmt: skip


def _mmapped_bytes() -> int:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


def test_large_blocks_are_mmapped_and_returned() -> None:
    # glibc raises its mmap threshold to the size of a freed mmapped block: after this, blocks
    # of up to 8 MiB would come from the heap and stay in the process once freed.
    raised = bytearray(8 << 20)
    del raised
    assert malloc_policy.configure() is True
    before = _mmapped_bytes()
    block = bytearray(2 << 20)
    assert _mmapped_bytes() - before >= 2 << 20  # served by mmap, not by the heap
    del block
    assert _mmapped_bytes() - before < 2 << 20  # and unmapped when freed
