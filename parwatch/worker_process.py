"""A ``parwatch worker`` in a subprocess, watched through its status file: for ``parwatch
demo`` and ``parwatch bench``, which both run the worker through its command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from parwatch.errors import UsageError
from parwatch.progress import Progress
from streams.worker.status import read_status


def _process_tree(pid: int) -> set[int]:
    """``pid`` and its live descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier.extend(children)
    return tree


def process_tree_memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, peak RSS) of ``pid`` and its descendants, from /proc, in MiB (peaks summed)."""
    rss = peak = 0.0
    for p in _process_tree(pid):
        try:
            lines = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith(("VmRSS:", "VmHWM:")):
                kib = float(line.split()[1])
                if line.startswith("VmRSS:"):
                    rss += kib / 1024
                else:
                    peak += kib / 1024
    return rss, peak


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user and system, every thread) used so far by ``pid`` and its live
    descendants, from /proc; a descendant that has exited is no longer counted."""
    ticks = 0
    for p in _process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


class Mark(NamedTuple):
    """A status of the worker seen by ``wait_for``: the status file's time, the messages durable
    then, and the CPU seconds of the worker's process tree when the status was read (at most
    one poll, 50 ms, after)."""

    at: float
    messages: int
    cpu_s: float


class WorkerProcessError(UsageError):
    """The worker exited, or did not make the messages durable in time (see its log)."""


class WorkerProcess:
    """A ``parwatch worker`` subprocess, its log (``work_dir/worker.log``) and its status file
    (``work_dir/worker-status.json``: the worker's ``PARWATCH_DATA_DIR`` must be ``work_dir``).

    ``stop()`` sends SIGTERM and waits (then kills after 60 s); ``wait_for`` raises
    ``WorkerProcessError`` when the worker exits or the deadline passes."""

    def __init__(self, env: Mapping[str, str], work_dir: Path, *, migrate: bool = False) -> None:
        self.env, self.log_path = dict(env), work_dir / "worker.log"
        self.status_path = work_dir / "worker-status.json"
        self.migrate = migrate
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def start(self) -> None:
        args = [sys.executable, "-m", "parwatch.cli", "worker", "--loglevel", "warning"]
        if not self.migrate:
            args.append("--no-migrate")
        with self.log_path.open("ab") as log:
            self.started_at = time.time()
            self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def memory_mb(self) -> tuple[float, float]:
        assert self.proc is not None
        return process_tree_memory_mb(self.proc.pid)

    def wait_for(
        self, expected: int, *, after: int = 0, timeout_s: float, progress: Progress
    ) -> tuple[Mark, Mark]:
        """Poll the status file until ``expected`` messages are durable. Returns the ``Mark``
        of the first status past ``after`` messages and of the last."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        first: Mark | None = None
        while True:
            status = read_status(self.status_path) or {}
            done = int(status.get("messages", 0))
            stamp = status.get("updated_at")
            at = datetime.fromisoformat(stamp).timestamp() if stamp else time.time()
            if first is None and done > after:
                first = Mark(at, done, process_tree_cpu_s(self.proc.pid))
            progress(done - after)
            if done >= expected:
                progress.done(done - after)
                assert first is not None
                return first, Mark(at, done, process_tree_cpu_s(self.proc.pid))
            if self.proc.poll() is not None:
                raise WorkerProcessError(
                    f"the worker exited (code {self.proc.returncode}); see {self.log_path}"
                )
            if time.monotonic() > deadline:
                raise WorkerProcessError(
                    f"the worker made {done:,} of {expected:,} messages durable in "
                    f"{timeout_s:.0f} s; see {self.log_path}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
