"""``parwatch demo``: the whole pipeline on a bare machine, measured against the ground truth."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from datetime import date, datetime
from typing import Any

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.progress import Progress
from parwatch.settings import Settings
from parwatch.table import table_lines

HEADLINES = (
    ("full_process_offering_rate", "TTHC đủ điều kiện cung cấp DVCTT toàn trình"),
    ("prefill_design_coverage", "DVCTT có biểu mẫu điền sẵn dữ liệu"),
    ("online_inspection_share", "Cuộc kiểm tra qua môi trường mạng"),
)
"""The plan's three headline targets: KPI key (EVENTS.md) and its Vietnamese label."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run everything embedded: broker, worker, warehouse, simulated traffic",
        description=(
            "Start the embedded Kafka broker (Tansu), a stream worker and the embedded "
            "warehouse (chdb, in a new folder under PARWATCH_DATA_DIR), publish seeded traffic "
            "from the simulator for every agency of the catalog (inspections, dossier "
            "lifecycles, service offerings), wait until the worker has made every message "
            "durable, then print the plan's three headline targets and other KPIs, measured "
            "beside the simulator's ground truth, and how to query the data afterwards. Takes "
            "a minute or two on 2 cores. PARWATCH_KAFKA_BOOTSTRAP and PARWATCH_CLICKHOUSE_URL "
            "are ignored here."
        ),
    )
    p.add_argument("--seed", type=int, default=2024, help="simulator seed (default 2024)")
    p.add_argument("--events", type=int, default=40_000, help="messages (default 40000)")
    p.add_argument("--invalid-share", type=float, default=0.01,
                   help="share of deliberately invalid messages (default 0.01)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=900, help="seconds to wait (default 900)")
    p.set_defaults(run=run)


def _compare(truth: list[dict[str, object]], measured: list[dict[str, object]]) -> list[str]:
    t = {(r["agency_code"], r["period"]): r for r in truth}
    m = {(r["agency_code"], r["period"]): r for r in measured}
    problems = [f"missing {k}" for k in t.keys() - m.keys()]
    problems += [f"unexpected {k}" for k in m.keys() - t.keys()]
    problems += [f"differs {k}" for k in t.keys() & m.keys() if t[k] != m[k]]
    return sorted(problems)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from parwatch.broker import EmbeddedBroker
    from parwatch.worker_process import WorkerProcess
    from producers.simulation.raw import publish_raw
    from producers.simulation.simulator import SimulationConfig, describe, simulate, write_truth
    from schemas.kpi import rows_to_json
    from streams.warehouse.kpi_query import read_kpis
    from streams.worker.status import read_status

    if args.events <= 0:
        raise UsageError("--events must be positive")
    demo_dir = (settings.data_dir / f"demo-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    demo_dir.mkdir(parents=True)
    url = f"chdb://{demo_dir / 'warehouse'}"
    print(f"parwatch demo: data in {demo_dir}")
    catalog = wiring.catalog(settings)
    sim = simulate(
        SimulationConfig(
            seed=args.seed, events=args.events, invalid_share=args.invalid_share,
            hybrid_counts_as_online=settings.hybrid_counts_as_online,
        ),
        catalog,
    )  # fmt: skip
    print(describe(sim))
    write_truth(sim, demo_dir / "truth.json")

    with EmbeddedBroker(topics=settings.topic_specs, binary=settings.tansu_bin) as broker:
        print(f"broker: {broker.bootstrap} (embedded Tansu, memory only)")
        env = {**os.environ, "PARWATCH_KAFKA_BOOTSTRAP": broker.bootstrap,
               "PARWATCH_DATA_DIR": str(demo_dir), "PARWATCH_CLICKHOUSE_URL": url,
               "PARWATCH_BROKER_SESSION_TIMEOUT_S": "3"}  # fmt: skip
        worker = WorkerProcess(env, demo_dir, migrate=True)
        worker.start()
        try:
            progress = Progress("publishing", len(sim.messages))
            started = time.monotonic()
            publish_raw(
                broker.bootstrap, settings.topics,
                ((m.kind, m.key, m.value) for m in sim.messages), progress=progress,
            )  # fmt: skip
            progress.done(len(sim.messages))
            worker.wait_for(len(sim.messages), timeout_s=args.timeout,
                            progress=Progress("ingested", len(sim.messages)))  # fmt: skip
            elapsed = time.monotonic() - started
        finally:
            worker.stop()
    status = read_status(worker.status_path) or {}
    results = status["by_result"]
    print(
        f"worker: {status['messages']} messages in {elapsed:.1f} s from first publish "
        f"({status['messages'] / elapsed:,.0f}/s): {results['accepted']} accepted, "
        f"{results['duplicate']} duplicates skipped, {results['refused']} refused"
    )
    settings_demo = settings.model_copy(update={"clickhouse_url": url})
    client = wiring.open_warehouse(settings_demo)
    truth = rows_to_json(sim.truth)
    measured = []
    for kind in ("month", "quarter", "year"):
        measured += rows_to_json(read_kpis(client, kind))
    rows = client.query("SELECT reason, count() FROM dead_letters GROUP BY reason").result_rows
    refused: dict[str, int] = {str(r): int(n) for r, n in rows}
    periods = headline_periods(sim.config.start, sim.config.end)
    headline_rows = [
        (grain, period, _province_row(client, grain, period), settings.targets)
        for grain, period in periods
    ]
    from dashboards.report import write_report

    report = write_report(client, demo_dir / "report.html").path
    client.close()
    (demo_dir / "measured.json").write_text(
        json.dumps(measured, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    _print_side_by_side(truth, measured)
    print()
    print("\n".join(headline_table(headline_rows, truth)))
    expected_refused = {k: v for k, v in sim.expected_refusals.items() if v}
    print(f"dead letters by reason: {refused}  (expected {expected_refused})")
    problems = _compare(truth, measured)
    ok = not problems and refused == expected_refused
    if ok:
        print(f"measured = expected: all {len(truth)} KPI rows (month, quarter, year, every "
              "agency and the province) are equal.")  # fmt: skip
    else:
        print(f"MISMATCH: {len(problems)} KPI rows differ, e.g. {problems[:5]}")
    q = shlex.quote
    print(
        "\nQuery the data now (the demo has stopped; the warehouse stays in the folder):\n"
        f"  export PARWATCH_CLICKHOUSE_URL={q(url)}\n"
        "  parwatch kpi --period year\n"
        "  parwatch kpi --agency TH-S-TP --json\n"
        '  parwatch sql "SELECT period, online_inspection_share, target_online_inspection_share'
        ' FROM kpi_month WHERE agency_code IS NULL ORDER BY period"\n'
        f"Ground truth: {demo_dir / 'truth.json'}; measured: {demo_dir / 'measured.json'}\n"
        f"Report (the Grafana dashboards as one HTML page): {report}"
    )
    return 0 if ok else 1


def headline_periods(start: date, end: date) -> list[tuple[str, str]]:
    """(grain, period) of the headline table: the latest year wholly inside ``start``..``end``
    (if any), then the range's last month."""
    year = end.year if (end.month, end.day) == (12, 31) else end.year - 1
    out = [("year", str(year))] if date(year, 1, 1) >= start else []
    return [*out, ("month", f"{end:%Y-%m}")]


def _province_row(client: Any, grain: str, period: str) -> dict[str, Any]:
    """The province's headline KPIs and the view's ``target_<kpi>`` columns (those it has)."""
    names = {
        str(r[0])
        for r in client.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            "AND table = {t:String}", parameters={"t": f"kpi_{grain}"},
        ).result_rows
    }  # fmt: skip
    wanted = [k for k, _ in HEADLINES] + [f"target_{k}" for k, _ in HEADLINES]
    columns = [c for c in wanted if c in names]
    if not columns:
        return {}
    rows = client.query(
        f"SELECT {', '.join(columns)} FROM kpi_{grain} "  # noqa: S608 (names from HEADLINES)
        "WHERE agency_code IS NULL AND period = {p:String}",
        parameters={"p": period},
    ).result_rows
    return dict(zip(columns, rows[0], strict=True)) if rows else {}


def _pct(value: object) -> str:
    return "-" if value is None else f"{100 * float(value):.1f}%"  # type: ignore[arg-type]


def headline_table(
    rows: list[tuple[str, str, dict[str, Any], dict[str, float | None]]],
    truth: list[dict[str, object]],
) -> list[str]:
    """The plan's headline targets for the whole province: per period (``rows``: grain, period,
    the warehouse's province row, the settings' targets), each KPI measured beside the truth
    and its target (the view's ``target_<kpi>``, else the setting)."""
    t = {r["period"]: r for r in truth if r["agency_code"] is None}
    body = []
    for _grain, period, measured, targets in rows:
        for key, label in HEADLINES:
            target = measured.get(f"target_{key}", targets.get(key))
            got = measured.get(key)
            met = "-" if got is None or target is None else ("đạt" if got >= target else "chưa")
            expected = t.get(period, {}).get(key)
            body.append([f"{label} ({key})", period, _pct(got), _pct(expected), _pct(target), met])
    head = ["Chỉ tiêu (target KPI)", "Kỳ (period)", "Đo được (measured)", "Sự thật (truth)",
            "Mục tiêu (target)", "Đạt? (met)"]  # fmt: skip
    title = "Ba chỉ tiêu chính của kế hoạch, toàn tỉnh (the plan's headline targets, province)"
    return [title, *table_lines(head, body, right=(2, 3, 4))]


def _print_side_by_side(truth: list[dict[str, object]], measured: list[dict[str, object]]) -> None:
    keys = ("online_inspection_share", "online_dossier_rate", "full_process_dossier_rate",
            "data_reuse_rate", "on_time_rate", "electronic_result_rate")  # fmt: skip
    short = ("online insp.", "online dossiers", "full-proc. doss.", "data reuse", "on time",
             "e-results")  # fmt: skip
    m = {(r["agency_code"], r["period"]): r for r in measured}
    print("\nWhole province, per year: measured (expected)")
    print("period  " + "  ".join(f"{s:>20}" for s in short))
    for t in truth:
        if t["agency_code"] is not None or len(str(t["period"])) != 4:
            continue
        got = m.get((None, t["period"]), {})
        cells = []
        for k in keys:
            a, b = got.get(k), t[k]
            fa = "-" if a is None else f"{100 * float(a):.2f}%"  # type: ignore[arg-type]
            fb = "-" if b is None else f"{100 * float(b):.2f}%"  # type: ignore[arg-type]
            cells.append(f"{fa} ({fb})")
        print(f"{t['period']:<6}  " + "  ".join(f"{c:>20}" for c in cells))
