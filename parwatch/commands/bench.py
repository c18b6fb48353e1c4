"""``parwatch bench``: the pipeline's throughput beside the bare broker and client, its latency,
its memory, and the publisher SDK beside bare kafka-python (logic in ``parwatch.bench``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parwatch.errors import UsageError
from parwatch.settings import Settings

if TYPE_CHECKING:
    from parwatch.bench import BenchOptions, BenchResult
    from parwatch.bench_analyst import AnalystFigures


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bench",
        help="measure throughput, latency and memory of the pipeline against bare Kafka clients",
        description=(
            "Benchmark, in one run, on fresh topics, a fresh consumer group and a fresh "
            "warehouse: (1) publish N simulated messages (invalid ones and duplicates included; "
            "untimed); (2) baseline: a bare aiokafka consumer reads them, json.loads on each "
            "(three reads; the one of median rate counts); "
            "(3) pipeline: a `parwatch worker` process makes them durable in the warehouse "
            "(--engine both: then a Faust-engine worker on the same messages); "
            "the ratio pipeline / baseline compares the two; (4) the worker's RSS after N and "
            "after 4N messages (3N more are published); (5) latency from publish to queryable "
            "(the row's _inserted_at) at a steady offered load; (6) the publisher SDK's send "
            "rate beside bare kafka-python's (five pairs of runs, alternating which goes "
            "first; medians; the SDK publishes as `parwatch publish` does, with "
            "Publisher.publish_many); (7) the analyst's figures: "
            "`parwatch kpi --period month --json` and "
            "`parwatch report` timed over a warehouse of --analyst-events synthetic events. "
            "Uses the embedded broker (Tansu) and an embedded "
            "warehouse (chdb) in a new folder under PARWATCH_DATA_DIR, or the configured "
            "PARWATCH_KAFKA_BOOTSTRAP (uniquely named topics, deleted afterwards) and an "
            "http(s) PARWATCH_CLICKHOUSE_URL (a new database, dropped afterwards); a chdb:// "
            "URL is not used. Rates exclude fixed start-up (both sides from their first batch "
            "out); totals from start are shown beside them. The default size takes 5-6 minutes "
            "on 2 cores; progress goes to stderr. Exit 0 when the warehouse holds exactly what "
            "was sent, 1 if not. Stop other work on the machine first: the figures are only as "
            "quiet as the machine; every run reports the processor, its cores and the load "
            "average at start and at end."
        ),
    )
    p.add_argument("--events", type=int, default=200_000, metavar="N",
                   help="messages per throughput run; 4N for memory (default 200000)")  # fmt: skip
    p.add_argument("--rate", type=float, default=500.0, metavar="R",
                   help="offered load of the latency run, events/s (default 500)")  # fmt: skip
    p.add_argument("--duration", type=float, default=60.0, metavar="S",
                   help="length of the latency run, seconds (default 60)")  # fmt: skip
    p.add_argument("--publisher-events", type=int, default=None, metavar="M",
                   help="events for the publisher runs (default N, at most 60000)")  # fmt: skip
    p.add_argument("--engine", choices=["batch", "faust", "both"], default="batch",
                   help="the worker's engine; both: the batch engine, then the Faust engine on "
                   "the same messages, each rate beside the baseline and batch / faust; the "
                   "later phases use the first (default batch)")  # fmt: skip
    p.add_argument("--analyst-events", type=int, default=10_000_000, metavar="E",
                   help="size of the warehouse the analyst's figures are measured on: "
                   "`parwatch kpi --period month --json` and `parwatch report`, each timed from "
                   "process start to exit over about E synthetic events written in-engine "
                   "(a province's year is about 10M; default 10000000; 0: skip)")  # fmt: skip
    p.add_argument("--only", choices=["publisher"], default=None,
                   help="run one phase alone: publisher, the SDK beside bare kafka-python on "
                   "the same events as a full run (the first --publisher-events of the N "
                   "simulated); no pipeline, memory, latency, check or analyst figures; exit 0 "
                   "when every SDK send was delivered")  # fmt: skip
    p.add_argument("--seed", type=int, default=2024, help="simulator seed (default 2024)")
    p.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    p.add_argument("--keep", action="store_true",
                   help="keep the work folder, the topics and the database")  # fmt: skip
    p.set_defaults(run=run)


def _check(args: argparse.Namespace) -> None:
    if args.events <= 0:
        raise UsageError(f"--events must be a positive whole number, got {args.events}")
    if not math.isfinite(args.rate) or args.rate <= 0:
        raise UsageError(f"--rate must be a positive number of events a second, got {args.rate:g}")
    if not math.isfinite(args.duration) or args.duration <= 0:
        raise UsageError(f"--duration must be a positive number of seconds, got {args.duration:g}")
    if args.rate * args.duration < 1:
        raise UsageError("--rate × --duration must be at least one event")
    if args.publisher_events is not None and args.publisher_events <= 0:
        raise UsageError(f"--publisher-events must be positive, got {args.publisher_events}")
    if args.analyst_events < 0:
        raise UsageError(f"--analyst-events must be 0 or more, got {args.analyst_events}")


def run(args: argparse.Namespace, settings: Settings) -> int:
    _check(args)
    from parwatch.bench import BenchOptions, run_bench

    opts = BenchOptions(
        events=args.events, rate=args.rate, duration_s=args.duration,
        publisher_events=args.publisher_events, seed=args.seed, keep=args.keep,
        engine=args.engine, only=args.only or "",
    )  # fmt: skip

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    result = run_bench(settings, opts, dict(os.environ), say)
    if opts.only:  # run_bench raised if any SDK send failed
        print(json.dumps(as_json(result), ensure_ascii=False, indent=1) if args.json
              else format_publisher_only(result))  # fmt: skip
        return 0
    analyst = _analyst(args, settings, say)
    if analyst is not None:  # the run ends with the analyst's figures
        result.load_average_1m_end = round(os.getloadavg()[0], 2)
    if args.json:
        out = as_json(result)
        if analyst is not None:
            out["analyst"] = {
                k: [round(x, 3) for x in v] if isinstance(v, list) else round(v, 3)
                for k, v in analyst.as_json().items()
            }
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        print(format_table(result, opts))
        if analyst is not None:
            print(format_analyst(analyst))
    return 0 if result.verified else 1


def _analyst(args: argparse.Namespace, settings: Settings, say: Any) -> AnalystFigures | None:
    if args.analyst_events == 0:
        return None
    from parwatch.bench_analyst import analyst_figures

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-analyst-", dir=settings.data_dir))
    try:
        return analyst_figures(work, args.analyst_events, dict(os.environ), say)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def format_analyst(a: AnalystFigures) -> str:
    return "\n".join([
        f"analyst, over a warehouse of {a.events:,} events (written in-engine in "
        f"{a.build_s:.0f} s), each command from process start to exit, median of "
        f"{len(a.kpi_month_json_runs_s)} runs (each run):",
        f"  parwatch kpi --period month --json {a.kpi_month_json_s:.2f} s "
        f"({_runs(a.kpi_month_json_runs_s)})   "
        f"parwatch report {a.report_s:.2f} s ({_runs(a.report_runs_s)})",
    ])  # fmt: skip


def _runs(seconds: list[float]) -> str:
    return ", ".join(f"{s:.2f}" for s in seconds)


def as_json(result: BenchResult) -> dict[str, Any]:
    """The figures: rates to 0.1/s, the ratio to 6 decimals, seconds and MiB to 3."""
    out = result.as_json()
    for key, value in out.items():
        if isinstance(value, float):
            ratio = key in ("ratio", "faust_ratio", "batch_over_faust")
            digits = 6 if ratio else 1 if key.endswith("_per_s") else 3
            out[key] = round(value, digits)
    return out


def format_table(r: BenchResult, opts: BenchOptions) -> str:
    c = r.warehouse_check
    if r.ratio_basis == "first-batch":
        note = [
            "  (events/s and seconds: after each side's first batch, start-up excluded;",
            f"   'total s' from consumer or process start; worker start-up about "
            f"{r.worker_ready_s:.1f} s)",
        ]
    else:
        note = ["  (N too small for more than one batch: events/s over 'total s', from consumer",
                "   or process start, start-up included)"]  # fmt: skip
    check = (
        f"{c.get('distinct_events', 0):,} distinct events (expected "
        f"{c.get('expected_distinct_events', 0):,}), {c.get('dead_letters', 0):,} dead letters "
        f"(expected {c.get('expected_dead_letters', 0):,})"
    )
    if r.latency_missing:
        check += f", {r.latency_missing} latency events missing"
    both = []
    if r.faust_events_per_s:
        both = [
            f"{'  pipeline: faust worker -> warehouse':42}{r.faust_events_per_s:>12,.0f}"
            f"{r.faust_s:>10.2f}{r.faust_total_s:>10.2f}",
            f"{'  ratio faust / baseline':42}{r.faust_ratio:>12.3f}",
            f"{'  batch / faust':42}{r.batch_over_faust:>12.2f}",
        ]
    rows = [
        f"parwatch bench: {r.events:,} messages (simulator mix)",
        machine_line(r),
        f"broker {r.broker}; warehouse {r.warehouse}",
        "",
        f"{'throughput':42}{'events/s':>12}{'seconds':>10}{'total s':>10}",
        f"{'  baseline: aiokafka + json.loads':42}{r.baseline_events_per_s:>12,.0f}"
        f"{r.baseline_s:>10.2f}{r.baseline_total_s:>10.2f}",
        f"{f'  pipeline: {r.engine} worker -> warehouse':42}{r.pipeline_events_per_s:>12,.0f}"
        f"{r.pipeline_s:>10.2f}{r.pipeline_total_s:>10.2f}",
        f"{'  ratio pipeline / baseline':42}{r.ratio:>12.3f}",
        f"{'  pipeline CPU, µs a message':42}{r.pipeline_cpu_us_per_msg:>12.1f}"
        "   (the worker's processes, all threads)",
        *both,
        *note,
        "",
        f"latency publish -> queryable, {r.latency_events:,} events at {opts.rate:g}/s "
        f"for {opts.duration_s:g} s:",
        f"  p50 {r.latency_p50_s:.3f} s   p95 {r.latency_p95_s:.3f} s   "
        f"p99 {r.latency_p99_s:.3f} s   max {r.latency_max_s:.3f} s",
        f"worker RSS: after N {r.rss_after_n_mb:,.0f} MiB, after 4N {r.rss_after_4n_mb:,.0f} MiB, "
        f"peak {r.rss_peak_mb:,.0f} MiB",
        *publisher_lines(r),
        f"warehouse check: {check}: {'OK' if r.verified else 'MISMATCH'}",
    ]
    return "\n".join(rows)


def machine_line(r: BenchResult) -> str:
    """The machine the figures were measured on, and how busy it was at start and at end."""
    return (
        f"machine: {r.cpu_model or 'unknown processor'}, {r.cpu_count} cores; load average "
        f"(1 min) {r.load_average_1m:g} at start, {r.load_average_1m_end:g} at end"
    )


def publisher_lines(r: BenchResult) -> list[str]:
    sdk_share = r.publisher_events_per_s / max(r.bare_producer_events_per_s, 1e-9)
    return [
        f"publisher, {r.publisher_events:,} events, median of {len(r.publisher_runs_per_s)} "
        f"alternating runs: SDK {r.publisher_events_per_s:,.0f}/s, bare kafka-python "
        f"{r.bare_producer_events_per_s:,.0f}/s (SDK / bare {sdk_share:.2f})",
        f"  SDK path: {r.publisher_path}; runs/s SDK "
        f"{', '.join(f'{x:,.0f}' for x in r.publisher_runs_per_s)}; bare "
        f"{', '.join(f'{x:,.0f}' for x in r.bare_producer_runs_per_s)}",
    ]


def format_publisher_only(r: BenchResult) -> str:
    return "\n".join([
        f"parwatch bench --only publisher: the first {r.publisher_events + r.publisher_refused:,} "
        f"of {r.events:,} simulated messages ({r.publisher_refused:,} refused by the SDK)",
        machine_line(r),
        f"broker {r.broker}",
        *publisher_lines(r),
    ])  # fmt: skip
