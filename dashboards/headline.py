"""The report's first section: in one screen, where the province stands on the plan's three
targets in the plan year and what the projection says for December, with the size of each gap
list. Built from the plan dashboard's own panel results (``dashboards.panels.plan``), so the
figures are those of the gauges, projections and lists below it. Pure: rows in, HTML out."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from dashboards import charts
from dashboards.macros import TimeRange
from dashboards.panels.plan import KPIS
from dashboards.spec import Targets

Result = tuple[list[str], list[Any]]

_GAP_WORDS = {
    "full_process_offering_rate": "dịch vụ đủ điều kiện chưa toàn trình",
    "prefill_design_coverage": "dịch vụ trực tuyến chưa thiết kế điền sẵn",
    "online_inspection_share": "cơ quan dưới mục tiêu",
}


def _first(result: Result) -> dict[str, Any]:
    columns, rows = result
    return dict(zip(columns, rows[0], strict=True)) if rows else {}


def _pct(v: Any) -> str:
    return charts.fmt_value(v, "percentunit")


def headline(
    targets: Targets, results: Mapping[str, Result], period: str, kpi_range: TimeRange
) -> str:
    """The section's HTML: a one-line verdict, then one card per target. When the data reach
    December of the plan year, the year is over: the cards say whether it met each target
    instead of projecting to a December already measured."""
    end = kpi_range.end.astimezone(charts.VN)
    year_over = str(end.year) == period and end.month == 12
    cards, met_now, met_projected = [], 0, 0
    for k in KPIS:
        target = targets.get(k.key)
        value = _first(results[f"{k.key}_gauge"]).get(k.key)
        projection = _first(results[f"{k.key}_projection"])
        projected, year = projection.get("projected"), projection.get("plan_year", period)
        gaps = len(results[f"{k.key}_gaps"][1])
        now_ok = value is not None and target is not None and value >= target
        proj_ok = projected is not None and target is not None and projected >= target - 1e-9
        met_now += now_ok
        met_projected += proj_ok
        colour = charts.threshold_colour(value, target)
        if year_over:
            word = "ĐẠT" if now_ok else "CHƯA ĐẠT"
            verdict = f"Năm {period} đã có số liệu tháng 12: {word} mục tiêu."
        elif projected is None:
            verdict = "Chưa đủ số liệu tháng để dự báo."
        else:
            word = "ĐẠT" if proj_ok else "CHƯA ĐẠT"
            verdict = f"Dự báo tháng 12/{year}: {_pct(projected)}, {word} mục tiêu."
        gap_text = f"Còn {gaps} {_GAP_WORDS[k.key]}."
        short = (
            ""
            if value is None or target is None or now_ok
            else f" (còn thiếu {_pct(target - value)})"
        )
        cards.append(
            f'<div class="card {"met" if now_ok else "miss"}"><h3>{escape(k.title)}</h3>'
            f'<div class="big" style="color:{colour}">{escape(_pct(value))}</div>'
            f"<p>Năm {escape(period)}, mục tiêu {escape(_pct(target))}{escape(short)}.</p>"
            f'<p class="verdict"><b>{escape(verdict)}</b></p>'
            f"<p>{escape(gap_text)}</p></div>"
        )
    until = charts.fmt_value(kpi_range.end, "")[:10]
    summary = f"Năm {period} (số liệu đến {until}): đạt {met_now}/3 mục tiêu của kế hoạch; " + (
        "năm kế hoạch đã kết thúc."
        if year_over
        else f"theo xu hướng các tháng gần nhất, {met_projected}/3 mục tiêu sẽ đạt vào tháng 12."
    )
    return (
        '<section id="headline"><h2>Tỉnh đang ở đâu so với ba mục tiêu</h2>'
        f'<p class="verdict"><b>{escape(summary)}</b></p>'
        f'<div class="head">{"".join(cards)}</div>'
        '<p class="desc">Giá trị: cả năm, mọi cơ quan (như parwatch kpi --period year). Dự '
        "báo: đường thẳng qua 6 tháng gần nhất kéo dài đến tháng 12. Danh sách cần làm ở "
        "phần 'Mục tiêu kế hoạch cải cách hành chính' bên dưới.</p></section>"
    )
