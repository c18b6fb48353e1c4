"""``parwatch bench``'s printed table and analyst lines: every figure of the result is shown,
with its unit, from the result's own values."""

from __future__ import annotations

from parwatch.bench import BenchOptions, BenchResult
from parwatch.bench_analyst import AnalystFigures
from parwatch.commands.bench import format_analyst, format_table


def test_the_table_shows_the_pipeline_figures_and_its_cpu() -> None:
    r = BenchResult(
        events=200_000, baseline_events_per_s=120_000.0, pipeline_events_per_s=30_000.0,
        ratio=0.25, pipeline_s=6.5, pipeline_total_s=9.25, pipeline_cpu_us_per_msg=47.25,
        baseline_s=1.5, baseline_total_s=1.75, worker_ready_s=2.5, cpu_model="AMD EPYC",
        cpu_count=2, verified=True,
    )  # fmt: skip
    lines = format_table(r, BenchOptions()).splitlines()
    pipeline = next(line for line in lines if line.startswith("  pipeline: batch worker"))
    assert pipeline.split()[-3:] == ["30,000", "6.50", "9.25"]
    ratio = next(line for line in lines if line.startswith("  ratio pipeline / baseline"))
    assert ratio.split()[-1] == "0.250"
    cpu = next(line for line in lines if line.startswith("  pipeline CPU, µs a message"))
    assert "47.2" in cpu.split() and "all threads)" in cpu
    assert lines[lines.index(ratio) + 1] == cpu  # right under the ratio
    assert "machine: AMD EPYC, 2 cores" in lines[1]


def test_the_analyst_lines_show_the_medians_and_every_run() -> None:
    a = AnalystFigures(
        events=9_999_464, build_s=51.0, kpi_month_json_s=3.33, report_s=6.25,
        kpi_month_json_runs_s=[3.34, 3.33, 3.14], report_runs_s=[6.25, 5.63, 6.72],
    )  # fmt: skip
    text = format_analyst(a)
    assert "over a warehouse of 9,999,464 events" in text and "median of 3 runs" in text
    assert "parwatch kpi --period month --json 3.33 s (3.34, 3.33, 3.14)" in text
    assert "parwatch report 6.25 s (6.25, 5.63, 6.72)" in text
