"""Inline SVG charts and value formatting for the HTML report: no JavaScript, no external files.

Every function returns markup (escaped text inside); numbers are formatted the Vietnamese way
(``48,2%``, ``12.345``). Colours follow the dashboards: red below a target, green from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from html import escape
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
RED, GREEN, GREY, ORANGE = "#d62728", "#2ca02c", "#9aa0a6", "#ff9800"

Number = int | float


def fmt_value(value: object, unit: str) -> str:
    """A cell or stat value as text: percentages, counts, seconds, times, text."""
    if value is None:
        return "—"
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=ZoneInfo("UTC"))
        return moment.astimezone(VN).strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "—"
    if unit == "percentunit":
        return f"{100 * value:.1f}%".replace(".", ",")
    if unit == "s":
        return _duration(float(value))
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    return f"{int(value):,}".replace(",", ".")


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} giây"
    if s < 7200:
        return f"{s // 60} phút"
    if s < 172_800:
        return f"{s // 3600} giờ"
    return f"{s // 86400} ngày"


def threshold_colour(value: Number | None, target: float | None) -> str:
    if value is None or target is None:
        return PALETTE[0]
    return GREEN if value >= target else RED


def gauge(value: Number | None, target: float | None, label: str) -> str:
    """A half-circle gauge from 0 to 1 with the target marked."""
    w, h, r, cx, cy = 260, 180, 100, 130, 130

    def point(frac: float, radius: float) -> tuple[float, float]:
        angle = math.pi * (1 - frac)
        return cx + radius * math.cos(angle), cy - radius * math.sin(angle)

    def arc(a: float, b: float, colour: str) -> str:
        (x1, y1), (x2, y2) = point(a, r), point(b, r)
        return (f'<path d="M{x1:.1f},{y1:.1f} A{r},{r} 0 0 1 {x2:.1f},{y2:.1f}" fill="none" '
                f'stroke="{colour}" stroke-width="22"/>')  # fmt: skip

    parts = [arc(0, 0.9999, "#e8eaed")]
    frac = 0.0 if value is None else max(0.0, min(1.0, float(value)))
    if frac > 0:
        parts.append(arc(0, min(frac, 0.9999), threshold_colour(value, target)))
    if target is not None:
        (x1, y1), (x2, y2) = point(min(target, 1.0), r - 16), point(min(target, 1.0), r + 16)
        parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                     'stroke="#202124" stroke-width="3"/>')  # fmt: skip
        tx, ty = point(min(target, 1.0), r + 28)
        anchor = "end" if target > 0.9 else "start" if target < 0.1 else "middle"
        if anchor != "middle":
            ty = cy + 42
        parts.append(f'<text x="{tx:.1f}" y="{ty:.1f}" font-size="11" text-anchor="{anchor}">'
                     f"mục tiêu {escape(fmt_value(target, 'percentunit'))}</text>")  # fmt: skip
    parts.append(f'<text x="{cx}" y="{cy - 10}" font-size="30" font-weight="bold" '
                 f'text-anchor="middle" fill="{threshold_colour(value, target)}">'
                 f"{escape(fmt_value(value, 'percentunit'))}</text>")  # fmt: skip
    parts.append(f'<text x="{cx}" y="{cy + 22}" font-size="12" text-anchor="middle">'
                 f"{escape(label)}</text>")  # fmt: skip
    return (f'<svg class="chart gauge" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'role="img">{"".join(parts)}</svg>')  # fmt: skip


def bars(rows: Sequence[tuple[str, Number | None]], unit: str, target: float | None) -> str:
    """Horizontal bars, one per row (label, value), scaled to 1 for shares, else to the max."""
    if not rows:
        return '<p class="empty">Không có dữ liệu trong khoảng thời gian này.</p>'
    label_w, bar_w, row_h = 330, 360, 20
    top = max((float(v) for _, v in rows if v is not None), default=1.0)
    scale = 1.0 if unit == "percentunit" else (top or 1.0)
    h = row_h * len(rows) + 10
    parts = []
    for i, (label, value) in enumerate(rows):
        y = 5 + i * row_h
        length = 0.0 if value is None else bar_w * max(0.0, float(value)) / scale
        colour = threshold_colour(value, target)
        text = label if len(label) <= 48 else label[:47] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" font-size="11" text-anchor="end">'
                     f"{escape(text)}</text>")  # fmt: skip
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{bar_w}" height="{row_h - 6}" '
                     'fill="#f1f3f4"/>')  # fmt: skip
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{length:.1f}" '
                     f'height="{row_h - 6}" fill="{colour}"/>')  # fmt: skip
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 14}" font-size="11">'
                     f"{escape(fmt_value(value, unit))}</text>")  # fmt: skip
    if target is not None and unit == "percentunit":
        x = label_w + bar_w * target
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{h}" stroke="#202124" '
                     'stroke-dasharray="4 3"/>')  # fmt: skip
    w = label_w + bar_w + 70
    return (f'<svg class="chart bars" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
            f'role="img">{"".join(parts)}</svg>')  # fmt: skip


def series_chart(
    times: Sequence[datetime],
    series: Sequence[tuple[str, Sequence[Number | None]]],
    unit: str,
    *,
    stacked_bars: bool = False,
    dashed: Sequence[str] = (),
) -> str:
    """A time chart: lines (gaps where a value is missing) or stacked bars; legend below."""
    if not times:
        return '<p class="empty">Không có dữ liệu trong khoảng thời gian này.</p>'
    w, h, left, right, top, bottom = 900, 280, 60, 20, 12, 40
    pw, ph = w - left - right, h - top - bottom
    n = len(times)
    if stacked_bars:
        totals = [sum(float(s[1][i] or 0) for s in series) for i in range(n)]
        ymax = max(totals, default=0.0)
    else:
        ymax = max((float(v) for _, vs in series for v in vs if v is not None), default=0.0)
    ymax = max(ymax, 1.0) if unit == "percentunit" and ymax > 0.5 else ymax * 1.1 or 1.0

    def xpos(i: int) -> float:
        return left + (pw * (i + 0.5) / n)

    def ypos(v: float) -> float:
        return top + ph * (1 - v / ymax)

    parts = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" '
             'stroke="#dadce0"/>']  # fmt: skip
    for k in range(5):
        v = ymax * k / 4
        y = ypos(v)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" '
                     'stroke="#e8eaed"/>')  # fmt: skip
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="10" text-anchor="end">'
                     f"{escape(fmt_value(round(v) if unit == 'short' else v, unit))}"
                     "</text>")  # fmt: skip
    local = [(t if t.tzinfo else t.replace(tzinfo=ZoneInfo("UTC"))).astimezone(VN) for t in times]
    span = local[-1] - local[0]
    pattern = "%m/%Y" if span.days >= 60 else "%d/%m" if span.days >= 2 else "%H:%M"
    step = max(1, n // 12)
    for i in range(0, n, step):
        text = local[i].strftime(pattern)
        parts.append(f'<text x="{xpos(i):.1f}" y="{h - bottom + 14}" font-size="10" '
                     f'text-anchor="middle">{escape(text)}</text>')  # fmt: skip
    legend = []
    base = [0.0] * n
    for k, (name, values) in enumerate(series):
        colour = RED if name in dashed else PALETTE[k % len(PALETTE)]
        if stacked_bars:
            bw = max(1.0, pw / n * 0.7)
            for i, bar in enumerate(values):
                if not bar:
                    continue
                y1, y0 = ypos(base[i] + float(bar)), ypos(base[i])
                parts.append(f'<rect x="{xpos(i) - bw / 2:.1f}" y="{y1:.1f}" width="{bw:.1f}" '
                             f'height="{y0 - y1:.1f}" fill="{colour}"/>')  # fmt: skip
                base[i] += float(bar)
        else:
            path, pen = [], "M"
            for i, point in enumerate(values):
                if point is None:
                    pen = "M"
                    continue
                path.append(f"{pen}{xpos(i):.1f},{ypos(float(point)):.1f}")
                pen = "L"
            dash = ' stroke-dasharray="8 6"' if name in dashed else ""
            parts.append(f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" '
                         f'stroke-width="2"{dash}/>')  # fmt: skip
            if n <= 60 and name not in dashed:
                parts += [
                    f'<circle cx="{xpos(i):.1f}" cy="{ypos(float(v)):.1f}" r="2.5" '
                    f'fill="{colour}"/>'
                    for i, v in enumerate(values)
                    if v is not None
                ]
        legend.append(f'<span class="key"><i style="background:{colour}"></i>{escape(name)}</span>')
    svg = (f'<svg class="chart series" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
           f'role="img">{"".join(parts)}</svg>')  # fmt: skip
    return svg + f'<div class="legend">{"".join(legend)}</div>'
