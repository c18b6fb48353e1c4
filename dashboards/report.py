"""The HTML report: the dashboards' panels, same SQL, rendered as one self-contained page.

``write_report(client, out_path)`` runs every panel's query (expanded by ``dashboards.macros``
exactly as Grafana and the plugin would, with "All" agencies and sectors) against the warehouse
behind ``client`` (any clickhouse-connect client: embedded chdb or a server) and writes one
UTF-8 HTML file with inline CSS and SVG: no script, no external file, Vietnamese text in NFC.

Time ranges, by default "all data": the KPI dashboards cover the days (Asia/Ho_Chi_Minh) from
the first to the last counted fact (``kpi_facts.at``); the pipeline dashboard covers the minutes
from the first to the last write (``_ingested_at``, ``_refused_at``, ``_detected_at``), since
events are written long after they occurred when an agency sends its history. Targets are read
from ``kpi_settings``, as the KPI views do. Blocking; reads only.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from clickhouse_connect.driver.client import Client

from dashboards import charts
from dashboards.headline import headline
from dashboards.macros import ALL, TimeRange, Variable, expand, grafana_interval_ms
from dashboards.spec import Dashboard, Panel, Targets, build_dashboards

MAX_DATA_POINTS = 120
MAX_ROWS = 40
PIPELINE_UID = "parwatch-pipeline-health"
VN = ZoneInfo("Asia/Ho_Chi_Minh")

_CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:24px;color:#202124;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 4px;border-bottom:2px solid
#dadce0;padding-bottom:4px} h3{font-size:14px;margin:0 0 4px}
.meta,.desc{color:#5f6368;font-size:12px} .desc{margin:0 0 8px;max-width:900px}
.panel{border:1px solid #dadce0;border-radius:6px;padding:12px;margin:12px 0;display:inline-block;
vertical-align:top;max-width:100%}
.stats{display:flex;gap:12px;flex-wrap:wrap} .stat{border:1px solid #e8eaed;border-radius:4px;
padding:8px 14px;min-width:120px} .stat b{display:block;font-size:24px} .stat span{font-size:12px}
table{border-collapse:collapse;font-size:12px} th,td{border:1px solid #e8eaed;padding:3px 6px;
text-align:left} td.n{text-align:right} th{background:#f1f3f4}
.legend{font-size:11px;margin-top:4px} .key{margin-right:14px} .key i{display:inline-block;
width:10px;height:10px;margin-right:4px}
.empty{color:#5f6368;font-style:italic} .below{color:#d62728;font-weight:bold}
.above{color:#188038}
.head{display:flex;gap:16px;flex-wrap:wrap;margin:12px 0} .card{border:2px solid #dadce0;
border-radius:8px;padding:12px 16px;width:400px} .card.miss{border-color:#d62728}
.card.met{border-color:#2ca02c} .card h3{font-size:15px;margin:0 0 6px} .big{font-size:40px;
font-weight:bold} .card p{margin:4px 0;font-size:13px} .verdict{font-size:16px;margin:8px 0 0}
"""


@dataclass(frozen=True, slots=True)
class ReportInfo:
    path: Path
    kpi_range: TimeRange
    pipeline_range: TimeRange
    panels: int


def read_targets(client: Client) -> Targets:
    """The targets the KPI views use (``kpi_settings``: one ``target_<kpi>`` row per KPI with a
    target); the defaults of ``schemas/targets.py`` when no target was ever stored."""
    rows = client.query("SELECT name, argMax(value, updated_at) FROM kpi_settings GROUP BY name")
    stored = {str(n)[7:]: float(v) for n, v in rows.result_rows if str(n).startswith("target_")}
    return Targets(stored) if stored else Targets()


def _as_utc(value: Any) -> datetime | None:
    if not isinstance(value, datetime) or value.year <= 1970:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _range(client: Client, sql: str, now: datetime, unit: timedelta) -> TimeRange:
    """From the start of the first ``unit`` (a minute or a day, Asia/Ho_Chi_Minh) holding data
    to the end of the last one: the macros cut times to whole seconds, so a range that ends
    exactly on the newest row would leave it out."""
    lo, hi = (_as_utc(v) for v in client.query(sql).result_rows[0])
    if lo is None or hi is None:
        return TimeRange(now - timedelta(days=1), now)
    return TimeRange(_floor(lo, unit), _floor(hi, unit) + unit - timedelta(milliseconds=1))


def _floor(moment: datetime, unit: timedelta) -> datetime:
    local = moment.astimezone(VN)
    if unit >= timedelta(days=1):
        return local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.replace(second=0, microsecond=0)


def data_ranges(client: Client, now: datetime) -> tuple[TimeRange, TimeRange]:
    """(KPI facts range, pipeline writes range); a day before ``now`` when there is no data."""
    day, minute = timedelta(days=1), timedelta(minutes=1)
    kpi = _range(
        client,
        "SELECT fromUnixTimestamp64Milli(lo_ms), fromUnixTimestamp64Milli(hi_ms) FROM kpi_bounds",
        now,
        day,
    )
    writes = " UNION ALL ".join(
        f"SELECT min({c}) AS lo, max({c}) AS hi FROM {t}"
        for t, c in (("inspection_events", "_ingested_at"), ("service_events", "_ingested_at"),
                     ("offering_events", "_ingested_at"),
                     ("dead_letters", "_refused_at"), ("duplicates", "_detected_at"))
    )  # fmt: skip
    pipeline = _range(
        client, f"SELECT minOrNull(lo), maxOrNull(hi) FROM ({writes}) WHERE hi > 0", now, minute
    )
    return kpi, pipeline


def plan_year(kpi_range: TimeRange) -> str:
    """The period of the whole-period panels: the year (Asia/Ho_Chi_Minh) of the range's end."""
    return str(kpi_range.end.astimezone(VN).year)


def all_variables(period: str = "") -> dict[str, Variable]:
    """ "All" for the agency and sector variables (``$__conditionalAll`` turns their conditions
    into ``1=1``); ``period`` (a year) for the whole-period panels."""
    out = {name: Variable(name, [ALL]) for name in ("agency", "sector")}
    out["grain"] = Variable("grain", "year")
    out["period"] = Variable("period", period)
    return out


def run_panel(
    client: Client, panel: Panel, time_range: TimeRange, period: str = ""
) -> tuple[list[str], list[Any]]:
    """The panel's rows, from its SQL expanded for this range with every agency and sector and
    the year ``period`` (default: the year of the range's end)."""
    sql = expand(
        panel.sql,
        time_range=time_range,
        interval_ms=grafana_interval_ms(time_range, MAX_DATA_POINTS),
        variables=all_variables(period or plan_year(time_range)),
    )
    result = client.query(sql)
    return list(result.column_names), [tuple(r) for r in result.result_rows]


def _render_panel(panel: Panel, columns: list[str], rows: list[Any]) -> str:
    """The panel's HTML for its query's result. Every kind renders an empty result: stats and
    gauges show each value as missing, charts and tables say that there is no data."""
    if not rows and not columns:  # an empty result may come without its columns (chdb)
        columns = list(panel.labels)
    idx = {c: i for i, c in enumerate(columns)}
    shown = [c for c in panel.labels if c in idx]

    def unit(c: str) -> str:
        return panel.column_units.get(c, panel.unit)

    if panel.kind in ("gauge", "stat"):
        row = rows[0] if rows else tuple(None for _ in columns)
        if panel.kind == "gauge":
            c = shown[0]
            return charts.gauge(row[idx[c]], panel.target, panel.labels[c])
        cells = "".join(
            f'<div class="stat"><b>{escape(charts.fmt_value(row[idx[c]], unit(c)))}</b>'
            f"<span>{escape(panel.labels[c])}</span></div>"
            for c in shown
        )
        return f'<div class="stats">{cells}</div>'
    if panel.kind == "bargauge":
        label_col, value_col = shown[0], shown[1]
        pairs = [(str(r[idx[label_col]]), r[idx[value_col]]) for r in rows[:MAX_ROWS]]
        more = _more(len(rows))
        return charts.bars(pairs, unit(value_col), panel.target) + more
    if panel.kind in ("timeseries", "barchart"):
        times = [r[idx["time"]] for r in rows]
        series = [(panel.labels[c], [r[idx[c]] for r in rows]) for c in shown]
        dashed = [panel.labels[c] for c in shown if c == "target_line" or c in panel.dashed]
        bars = panel.kind == "barchart"
        return charts.series_chart(times, series, panel.unit, stacked_bars=bars, dashed=dashed)
    return _table(panel, shown, idx, rows)


def _more(n: int) -> str:
    if n <= MAX_ROWS:
        return ""
    return f'<p class="meta">… và {n - MAX_ROWS} dòng khác (xem trong Grafana).</p>'


def _table(panel: Panel, shown: list[str], idx: dict[str, int], rows: list[Any]) -> str:
    if not rows:
        return '<p class="empty">Không có dòng nào trong khoảng thời gian này.</p>'
    head = "".join(f"<th>{escape(panel.labels[c])}</th>" for c in shown)
    body = []
    for r in rows[:MAX_ROWS]:
        cells = []
        for c in shown:
            v = r[idx[c]]
            u = panel.column_units.get(c, panel.unit) if isinstance(v, float) else "short"
            num = isinstance(v, int | float) and not isinstance(v, bool)
            target = panel.target if c == panel.target_column else panel.column_targets.get(c)
            mark = "" if not num or target is None else " below" if v < target else " above"
            cls = f' class="n{mark}"' if num else ""
            cells.append(f"<td{cls}>{escape(charts.fmt_value(v, u))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>{_more(len(rows))}"


def render_report(
    client: Client, *, time_range: TimeRange | None = None, now: datetime | None = None
) -> tuple[str, ReportInfo]:
    """The page's HTML (NFC) and what it covers (``info.path`` is empty: not written).

    ``time_range`` replaces both default ranges ("all data") when given."""
    now = now or datetime.now(UTC)
    kpi_range, pipeline_range = data_ranges(client, now)
    if time_range is not None:
        kpi_range = pipeline_range = time_range
    targets = read_targets(client)
    period = plan_year(kpi_range)
    dashboards = build_dashboards(targets)
    # Each panel's query runs once: the first section reads the plan panels' rows.
    results: dict[str, dict[str, tuple[list[str], list[Any]]]] = {}
    sections, count = [], 0
    for d in dashboards:
        results[d.uid] = {}
        sections.append(_section(client, d, kpi_range, pipeline_range, period, results[d.uid]))
        count += sum(not p.live for p in d.panels)
    title = "parwatch — báo cáo cải cách hành chính tỉnh Thanh Hóa"
    intro = (
        f"Tạo lúc {charts.fmt_value(now, '')} (giờ Việt Nam). Cùng truy vấn SQL với các bảng "
        "điều khiển Grafana, mọi cơ quan và lĩnh vực; chỉ số cả kỳ tính cho năm "
        f"{period}, xu hướng theo tháng trong khoảng thời gian của số liệu."
    )
    page = (
        '<!DOCTYPE html>\n<html lang="vi"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{escape(title)}</h1><p class="meta">{escape(intro)}</p>'
        + headline(targets, results["parwatch-plan-targets"], period, kpi_range)
        + "".join(sections)
        + "</body></html>\n"
    )
    info = ReportInfo(Path(), kpi_range, pipeline_range, count)
    return unicodedata.normalize("NFC", page), info


def _section(
    client: Client,
    d: Dashboard,
    kpi_range: TimeRange,
    writes_range: TimeRange,
    period: str,
    rows_of: dict[str, tuple[list[str], list[Any]]],
) -> str:
    """The dashboard's section; each panel's (columns, rows) go into ``rows_of`` by key."""
    tr = writes_range if d.uid == PIPELINE_UID else kpi_range
    span = (f"{charts.fmt_value(tr.start, '')} – {charts.fmt_value(tr.end, '')} "
            "(giờ Việt Nam)")  # fmt: skip
    whole = "grain" in d.variables
    about = f"{d.description} " + (f"Kỳ: năm {period}; " if whole else "")
    about += f"khoảng thời gian: {span}."
    parts = [
        f'<section id="{escape(d.uid)}"><h2>{escape(d.title)}</h2>'
        f'<p class="desc">{escape(about)}</p>'
    ]
    live = [p for p in d.panels if p.live]
    for p in d.panels:
        if p.live:
            continue
        columns, rows = rows_of[p.key] = run_panel(
            client, p, writes_range if p.writes else tr, period
        )
        parts.append(
            f'<div class="panel" id="{escape(d.uid)}-{escape(p.key)}"><h3>{escape(p.title)}</h3>'
            f'<p class="desc">{escape(p.description)}</p>{_render_panel(p, columns, rows)}</div>'
        )
    if live:  # the workers' own metrics are in Prometheus, which this page does not read
        names = ", ".join(p.title.removeprefix("Trực tiếp: ") for p in live)
        parts.append(f'<p class="desc">Số liệu trực tiếp của các worker (Prometheus) chỉ có '
                     f"trong Grafana: {escape(names)}.</p>")  # fmt: skip
    parts.append("</section>")
    return "".join(parts)


def write_report(
    client: Client,
    out_path: Path,
    *,
    time_range: TimeRange | None = None,
    now: datetime | None = None,
) -> ReportInfo:
    """Render the report from the warehouse behind ``client`` and write it to ``out_path``."""
    page, info = render_report(client, time_range=time_range, now=now)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(page, encoding="utf-8")
    return ReportInfo(out_path, info.kpi_range, info.pipeline_range, info.panels)
