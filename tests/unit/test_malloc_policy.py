"""The worker's malloc policy: large blocks come from mmap even after glibc raised its threshold."""

from __future__ import annotations

import ctypes
import platform
import subprocess
import sys
from pathlib import Path

import pytest

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


CHECK = """
from parwatch import malloc_policy
from tests.unit.test_malloc_policy import _mmapped_bytes
raised = bytearray(8 << 20)
del raised
assert malloc_policy.configure() is True
before = _mmapped_bytes()
block = bytearray(2 << 20)
grown = _mmapped_bytes() - before
del block
kept = _mmapped_bytes() - before
print(grown, kept)
"""


def test_large_blocks_are_mmapped_and_returned() -> None:
    # In a fresh interpreter: once chdb is loaded (other tests), another allocator serves
    # part of the process and glibc's counters no longer see these blocks.
    # glibc raises its mmap threshold to the size of a freed mmapped block: after the 8 MiB
    # block, blocks of up to 8 MiB would come from the heap and stay in the process once freed.
    done = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=False, timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    grown, kept = (int(x) for x in done.stdout.split())
    assert grown >= 2 << 20  # served by mmap, not by the heap
    assert kept < 2 << 20  # and unmapped when freed
