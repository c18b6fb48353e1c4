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


def test_the_figures_are_the_median_of_three_alternating_runs(tmp_path: Path) -> None:
    import os

    from parwatch.bench_analyst import RUNS, analyst_figures

    said: list[str] = []
    figures = analyst_figures(tmp_path, 20_000, dict(os.environ), said.append)
    assert abs(figures.events - 20_000) <= 200, figures.events
    assert RUNS == 3
    assert len(figures.kpi_month_json_runs_s) == len(figures.report_runs_s) == RUNS
    assert figures.kpi_month_json_s == sorted(figures.kpi_month_json_runs_s)[1] > 0
    assert figures.report_s == sorted(figures.report_runs_s)[1] > 0
    # kpi and report alternate, so that a busy spell of the machine touches both alike
    runs = [line for line in said if "(run " in line]
    assert [("kpi" in line, f"run {i // 2 + 1} of 3" in line) for i, line in enumerate(runs)] == [
        (i % 2 == 0, True) for i in range(2 * RUNS)
    ]
    assert (tmp_path / "analyst-report.html").stat().st_size > 0
