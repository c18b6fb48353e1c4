"""The analyst's figures of ``parwatch bench``: how fast ``parwatch kpi --period month --json``
and ``parwatch report`` answer over a warehouse of a province's scale (about 10M events a year).

The warehouse is written the quickest way, not through the broker: ``INSERT … SELECT`` from
``numbers()`` in the engine itself, one year (2024) of seeded synthetic events with the
simulator's shape (about 70% service events in dossiers of one to four events, 30% inspection
events in inspections of four, a share of service/1 dossiers, supplement pauses, payments,
rejections, withdrawals and dossiers left open, some ``thanh_tra`` inspections), the bundled
offering catalog, and the worker's derived tables (``dossier_lifecycle``,
``inspection_classifications``) computed from those events in SQL. Both commands then run as a
user runs them, in their own processes, and are timed from start to exit.

The build runs in a child process (chdb opens one warehouse per process).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

YEAR_START = "toDateTime64('2024-01-01 00:00:00', 3, 'Asia/Ho_Chi_Minh')"

# The mean events a synthetic dossier stores, from _service_sql's slot rules over r, uniform in
# 0..99 (r < 15: service/1, which drops slots 1 and 2):
#   slot 0 submitted, always:                                                   1
#   slot 1 paid (r % 3 = 0: 34 values) or supplement_requested (r % 5 = 0 and
#          r % 3 != 0: 13), less the 5 + 2 of them under 15:     (34 + 13 - 7) / 100 = 0.40
#   slot 2 supplement_received (r % 5 = 0 and r % 3 != 0: 13, less 5 and 10): 11 / 100 = 0.11
#   slot 3 completed, rejected or withdrawn (r < 96):                          96 / 100 = 0.96
EVENTS_PER_DOSSIER = 1 + 0.40 + 0.11 + 0.96  # 2.47


RUNS = 3
"""Timed runs of each command; its figure is their median (the machine's noise moves one run by
a tenth or more)."""


@dataclass
class AnalystFigures:
    """Seconds from process start to exit of each command, over ``events`` stored events (the
    synthetic generator's slots that carry an event): the median of ``RUNS`` runs, and each run
    in the order they ran."""

    events: int = 0
    build_s: float = 0.0
    kpi_month_json_s: float = 0.0
    report_s: float = 0.0
    kpi_month_json_runs_s: list[float] = field(default_factory=list)
    report_runs_s: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _service_sql(dossiers: int, agencies: str, n_agencies: int, procs: str, n_procs: int) -> str:
    """Four event slots per dossier (slot 0 submitted, 1 paid or supplement requested, 2 its
    reply, 3 the end); slots a dossier does not use are dropped."""
    return f"""
INSERT INTO service_events (event_id, event_type, occurred_at, agency_code, procedure_code,
    dossier_id, channel, service_level, fields_total, fields_prefilled, on_time, schema,
    payload, _topic, _partition, _offset, _ingested_at, due_at, digitized, reused_components,
    payment_channel, result_electronic)
SELECT generateUUIDv4(number), et, at, ag, pr, did, ch, sl, ft, fp, ot, sc, '', 'bench', 0,
       number, now64(3), due, dig, reu, pc, re
FROM
(
    SELECT number, intDiv(number, 4) AS d, number % 4 AS slot,
        {agencies}[1 + cityHash64(d, 1) % {n_agencies}] AS ag,
        {procs}[1 + cityHash64(d, 2) % {n_procs}] AS pr,
        concat('D', toString(d)) AS did,
        {YEAR_START} + toIntervalSecond(cityHash64(d, 3) % (365 * 86400)) AS t0,
        cityHash64(d, 4) % 100 AS r,
        if(r < 15, 'service/1', 'service/2') AS sc,
        multiIf(slot = 0, 'submitted',
                slot = 1, if(r % 3 = 0, 'paid', if(r % 5 = 0, 'supplement_requested', 'none')),
                slot = 2, if(r % 3 != 0 AND r % 5 = 0, 'supplement_received', 'none'),
                multiIf(r < 85, 'completed', r < 93, 'rejected', r < 96, 'withdrawn', 'none'))
            AS et,
        t0 + toIntervalSecond(slot * 86400 * (1 + cityHash64(d, 5) % 4)) AS at,
        if(slot = 0, if(r % 10 < 6, 'online', 'counter'), NULL) AS ch,
        if(slot = 0 AND r % 10 < 6, if(r % 2 = 0, 'full_process', 'partial'), NULL) AS sl,
        if(slot = 0 AND r % 10 < 6, toUInt32(10), NULL) AS ft,
        if(slot = 0 AND r % 10 < 6, toUInt32(r % 5), NULL) AS fp,
        if(slot = 0 AND sc = 'service/2', t0 + toIntervalDay(7), NULL) AS due,
        if(slot = 0 AND sc = 'service/2', toUInt8(r % 4 != 0), NULL) AS dig,
        if(slot = 0 AND sc = 'service/2', toUInt32(r % 3), NULL) AS reu,
        if(et = 'paid', if(r % 2 = 0, 'online', 'counter'), NULL) AS pc,
        if(et = 'completed' AND sc = 'service/2', toUInt8(r % 5 != 0), NULL) AS re,
        if(et = 'completed' AND sc = 'service/1', toUInt8(r % 7 != 0), NULL) AS ot
    FROM numbers({dossiers * 4})
)
WHERE et != 'none'
  AND NOT (sc = 'service/1' AND et IN ('paid', 'supplement_requested', 'supplement_received'))
"""


def _inspection_sql(inspections: int, agencies: str, n_agencies: int) -> str:
    return f"""
INSERT INTO inspection_events (event_id, event_type, occurred_at, agency_code, inspection_id,
    activity_mode, activity_online, schema, payload, _topic, _partition, _offset,
    _ingested_at, kind)
SELECT generateUUIDv4(number), et, at, ag, iid, am, toUInt8(am != 'on_site'), 'inspection/1',
       '', 'bench', 0, number, now64(3), kd
FROM
(
    SELECT number, intDiv(number, 4) AS i, number % 4 AS slot,
        {agencies}[1 + cityHash64(i, 1) % {n_agencies}] AS ag,
        concat('I', toString(i)) AS iid,
        {YEAR_START} + toIntervalSecond(cityHash64(i, 3) % (365 * 86400)) + toIntervalDay(slot)
            AS at,
        multiIf(slot = 0, 'opened', slot < 3, 'activity', 'concluded') AS et,
        if(slot IN (1, 2), if(cityHash64(i, slot) % 3 = 0, 'video_conference', 'on_site'), NULL)
            AS am,
        if(slot = 0 AND cityHash64(i, 9) % 20 = 0, 'thanh_tra', NULL) AS kd
    FROM numbers({inspections * 4})
)
"""


# The worker's derived tables, computed from the synthetic events (the same meaning as
# schemas/lifecycle.py and the worker's classification, on this well-formed data).
_CLASSIFICATIONS_SQL = """
INSERT INTO inspection_classifications (agency_code, inspection_id, classification, has_online,
    has_in_person, activities, opened_at, concluded_at, cancelled, sector, version, updated_at,
    kind, activities_at, activities_online)
SELECT agency_code, inspection_id,
       multiIf(max(on_flag) = 1 AND max(ip_flag) = 1, 'hybrid', max(on_flag) = 1, 'online',
               max(ip_flag) = 1, 'in_person', 'unclassified'),
       max(on_flag), max(ip_flag),
       toUInt32(countIf(event_type = 'activity')), minIf(occurred_at, event_type = 'opened'),
       maxIf(occurred_at, event_type = 'concluded'), 0, NULL, count(), now64(3),
       if(countIf(kind = 'thanh_tra') > 0, 'thanh_tra', 'kiem_tra'),
       arrayMap(a -> a.1, arraySort(groupArrayIf((occurred_at, on_flag), event_type = 'activity'))),
       arrayMap(a -> a.2, arraySort(groupArrayIf((occurred_at, on_flag), event_type = 'activity')))
FROM
(
    SELECT *, toUInt8(event_type = 'activity' AND activity_online = 1) AS on_flag,
           toUInt8(event_type = 'activity' AND activity_online = 0) AS ip_flag
    FROM inspection_events
)
GROUP BY agency_code, inspection_id
HAVING 1
SETTINGS max_threads = 2
"""

_LIFECYCLE_SQL = """
INSERT INTO dossier_lifecycle
SELECT agency_code, dossier_id, s.2, if(s.1 = 0, NULL, fromUnixTimestamp64Milli(s.1, 'UTC')),
       s.3, s.4, s.5, s.6, s.7, if(s.8 < 0, NULL, fromUnixTimestamp64Milli(s.8, 'UTC')),
       if(s.3 = 'service/2', s.9, NULL), s.10,
       if(e.1 = 0, NULL, fromUnixTimestamp64Milli(e.1, 'UTC')), e.2, e.3,
       if(e.4 < 0, NULL, toUInt8(e.4)), if(e.3 = 'service/2', e.5, NULL),
       if(p.1 = 0, NULL, fromUnixTimestamp64Milli(p.1, 'UTC')), p.2,
       if(ps = 0, [], [fromUnixTimestamp64Milli(ps, 'UTC')]),
       if(ps = 0, [], [if(pe = 0, NULL, fromUnixTimestamp64Milli(pe, 'UTC'))]),
       -- effective due: due_at pushed back by the pause when it began by then
       if(s.8 < 0, NULL,
          if(ps = 0 OR ps > s.8, fromUnixTimestamp64Milli(s.8, 'UTC'),
             if(pe = 0, NULL, fromUnixTimestamp64Milli(s.8 + pe - ps, 'UTC')))),
       if(e.1 = 0 OR ps = 0 OR ps >= e.1, 0, toUInt64(least(if(pe = 0, e.1, pe), e.1) - ps)),
       count(), now64(3)
FROM
(
    SELECT agency_code, dossier_id,
        argMinIf(tuple(ms, toString(procedure_code), toString(schema),
                       toString(ifNull(channel, '')), toString(ifNull(service_level, '')),
                       toUInt32(ifNull(fields_total, 0)), toUInt32(ifNull(fields_prefilled, 0)),
                       ifNull(toUnixTimestamp64Milli(due_at), toInt64(-1)),
                       toUInt8(ifNull(digitized, 0)), toUInt32(ifNull(reused_components, 0))),
                 ms, event_type = 'submitted') AS s,
        argMinIf(tuple(ms, toString(event_type), toString(schema),
                       toInt8(ifNull(toInt8(on_time), -1)), toUInt8(ifNull(result_electronic, 0))),
                 ms, event_type IN ('completed', 'rejected', 'withdrawn')) AS e,
        argMinIf(tuple(ms, toString(ifNull(payment_channel, ''))), ms, event_type = 'paid') AS p,
        minIf(ms, event_type = 'supplement_requested') AS ps,
        minIf(ms, event_type = 'supplement_received') AS pe,
        count() AS n
    FROM (SELECT *, toUnixTimestamp64Milli(occurred_at) AS ms FROM service_events)
    GROUP BY agency_code, dossier_id
)
GROUP BY agency_code, dossier_id, s, e, p, ps, pe
SETTINGS max_threads = 2
"""


def build(path: str, events: int) -> None:
    """Write the synthetic warehouse at ``path`` (run in a child process) and print the number
    of events stored: about ``events`` (the generator's mean per dossier is exact, the draws
    are not: within a few tenths of a percent from 100,000 events on)."""
    from schemas.catalog import load_catalog
    from schemas.offering_catalog import bundled_offerings, offering_event
    from streams.warehouse import migrations
    from streams.warehouse.client import WarehouseConfig, connect
    from streams.warehouse.reference import KpiSettings, load_catalog_tables, write_kpi_settings

    client = connect(WarehouseConfig(url=f"chdb://{path}"), create_database=True)
    migrations.apply(client)
    catalog = load_catalog()
    load_catalog_tables(client, catalog)
    write_kpi_settings(client, KpiSettings())
    agencies = sorted(a.code for a in catalog.agencies.values() if a.valid_to is None)[:200]
    procs = sorted(catalog.procedures)
    agency_list = "[" + ",".join(f"'{a}'" for a in agencies) + "]"
    proc_list = "[" + ",".join(f"'{p}'" for p in procs) + "]"
    offerings = list(bundled_offerings())
    # The catalog's offering events count towards ``events``; the rest is 70% service events,
    # 30% inspection events (four each).
    generated = max(0, events - len(offerings))
    dossiers = round(generated * 0.70 / EVENTS_PER_DOSSIER)
    inspections = round(generated * 0.30 / 4)
    client.command(_service_sql(dossiers, agency_list, len(agencies), proc_list, len(procs)))
    client.command(_inspection_sql(inspections, agency_list, len(agencies)))
    client.command(_CLASSIFICATIONS_SQL)
    client.command(_LIFECYCLE_SQL)
    rows = []
    for offset, line in enumerate(offerings):
        ev = offering_event(line)
        rows.append([
            ev["event_id"], line.effective_at, line.agency_code, line.procedure_code, line.level,
            int(line.prefill_designed), "offering/1", "", "bench", 0, offset, line.effective_at,
        ])  # fmt: skip
    client.insert("offering_events", rows, column_names=[
        "event_id", "occurred_at", "agency_code", "procedure_code", "level", "prefill_designed",
        "schema", "payload", "_topic", "_partition", "_offset", "_ingested_at",
    ])  # fmt: skip
    stored = client.query(
        "SELECT (SELECT count() FROM service_events) + (SELECT count() FROM inspection_events)"
        " + (SELECT count() FROM offering_events)"
    ).result_rows[0][0]
    _settle(client)
    print(stored)


def _settle(client: Any, timeout_s: float = 300.0) -> None:
    """Wait until the engine's background merges of the new data are over: the commands are
    timed on a warehouse at rest, as a long-running one is most of the time (not while the
    next process, opening it, merges the build's parts)."""
    deadline = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < deadline and quiet < 3:
        busy = client.query(
            "SELECT count() FROM system.merges WHERE database = currentDatabase()"
        ).result_rows[0][0]
        quiet = 0 if busy else quiet + 1
        time.sleep(0.5)


def _timed(cmd: list[str], env: Mapping[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=dict(env), capture_output=True, text=True, check=False)  # noqa: S603
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])} failed: {done.stderr.strip()[-300:]}")
    return took


def analyst_figures(
    work_dir: Path, events: int, base_env: Mapping[str, str], say: Callable[[str], None]
) -> AnalystFigures:
    """Build a warehouse of ``events`` synthetic events under ``work_dir`` and time the two
    commands over it, ``RUNS`` times each, alternating."""
    path = (work_dir / "analyst-warehouse").resolve()
    say(f"analyst: writing a warehouse of about {events:,} synthetic events (SQL, in-engine)")
    start = time.perf_counter()
    built = subprocess.run(  # noqa: S603
        [sys.executable, "-c",
         f"from parwatch.bench_analyst import build; build({str(path)!r}, {events})"],
        env=dict(base_env), check=True, capture_output=True, text=True,
    )  # fmt: skip
    stored = int(built.stdout.strip().splitlines()[-1])
    figures = AnalystFigures(events=stored, build_s=time.perf_counter() - start)
    env = {
        **base_env,
        "PARWATCH_CLICKHOUSE_URL": f"chdb://{path}",
        "PARWATCH_DATA_DIR": str(work_dir),
    }
    cli = [sys.executable, "-m", "parwatch.cli"]
    kpi = [*cli, "kpi", "--period", "month", "--json"]
    report = [*cli, "report", "--out", str(work_dir / "analyst-report.html")]
    # The two commands alternate, so that a busy spell of the machine touches both alike.
    for run in range(1, RUNS + 1):
        say(f"analyst: parwatch kpi --period month --json (run {run} of {RUNS})")
        figures.kpi_month_json_runs_s.append(_timed(kpi, env))
        say(f"analyst: parwatch report (run {run} of {RUNS})")
        figures.report_runs_s.append(_timed(report, env))
    figures.kpi_month_json_s = statistics.median(figures.kpi_month_json_runs_s)
    figures.report_s = statistics.median(figures.report_runs_s)
    return figures
