"""The analyst step's synthetic warehouse (``parwatch.bench_analyst.build``): it stores about
the number of events asked for, so the figures are measured at the size they are reported at."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.clickhouse


def test_the_build_stores_about_the_events_asked_for(tmp_path: Path) -> None:
    asked = 100_000
    path = tmp_path / "analyst-warehouse"
    # In a child process, as the bench runs it: chdb opens one warehouse per process.
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c",
         f"from parwatch.bench_analyst import build; build({str(path)!r}, {asked})"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    stored = int(done.stdout.strip().splitlines()[-1])
    assert abs(stored - asked) <= asked // 100, stored
