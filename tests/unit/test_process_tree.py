"""The bench's readings of a process tree (``parwatch.worker_process``): CPU seconds and memory
of a process and its descendants, as the worker and its decoding process are measured."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from parwatch.worker_process import process_tree_cpu_s, process_tree_memory_mb

# A parent starts a child; both burn BURN_S of CPU, then sleep until killed.
BURN_S = 0.6


def test_the_tree_counts_the_cpu_of_every_descendant() -> None:
    script = (
        "import subprocess, sys, time\n"
        "def burn():\n"
        f"    end = time.process_time() + {BURN_S}\n"
        "    while time.process_time() < end:\n"
        "        pass\n"
        "if len(sys.argv) > 1:\n"
        "    burn(); print('child', flush=True); time.sleep(60)\n"
        "else:\n"
        "    child = subprocess.Popen([sys.executable, '-c', SRC, 'x'],"
        " stdout=subprocess.PIPE)\n"
        "    burn(); child.stdout.readline(); print('both', flush=True); time.sleep(60)\n"
    )
    source = script.replace("SRC", repr(script))
    parent = subprocess.Popen(
        [sys.executable, "-c", source], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == b"both\n"
        cpu = process_tree_cpu_s(parent.pid)
        # two processes burnt BURN_S each, plus their start-up; one alone would be below 2x
        assert 2 * BURN_S <= cpu < 2 * BURN_S + 3, cpu
        time.sleep(0.3)  # asleep now: the reading does not grow
        assert process_tree_cpu_s(parent.pid) - cpu < 0.05
        rss, peak = process_tree_memory_mb(parent.pid)
        assert 10 < rss <= peak  # two Python interpreters
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # the child too
        parent.wait()
