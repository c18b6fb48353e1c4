"""``parwatch report``: the panels' SQL rendered as one self-contained page, and the page
rendered by headless Chromium (Debian's chromium, from tests/setup-tools.sh) into a PNG."""

from __future__ import annotations

import re
import struct
import unicodedata
import zlib
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dashboards import charts
from dashboards.macros import TimeRange
from dashboards.report import render_report, write_report
from dashboards.screenshot import DEFAULT_SIZE, find_chromium, screenshot
from dashboards.spec import Targets, build_dashboards
from parwatch.cli import main
from schemas.kpi import rows_to_json
from streams.warehouse.kpi_query import read_kpis
from tests.dashboards.conftest import Loaded

pytestmark = pytest.mark.clickhouse


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and raw RGB(A) rows of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in (2, 6) and interlace == 0
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(v for j, v in enumerate(line) if j % 4 != 3))
        prev = line
    return width, height, rows


def test_report_is_self_contained_and_shows_the_kpis(loaded: Loaded, tmp_path: Path) -> None:
    out = tmp_path / "r" / "report.html"
    info = write_report(loaded.client, out)
    page = out.read_text(encoding="utf-8")
    assert page == unicodedata.normalize("NFC", page)
    n = sum(not p.live for d in build_dashboards(Targets()) for p in d.panels)
    assert info.panels == n and page.count('class="panel"') == n
    assert page.count("<svg") >= 12  # gauges, bars, time charts
    assert "<script" not in page and not re.search(r"(src|href)=|url\(|@import", page)
    assert "Kiểm tra qua mạng và hệ thống thông tin" in page
    assert "Bộ chỉ số 766" in page and "Sở Tư pháp" in page and "PAR INDEX" in page
    # the first section: the three targets for the latest year, as parwatch kpi shows them
    head = page[page.index('<section id="headline">') :]
    head = head[: head.index("</section>")]
    assert page.index('<section id="headline">') < page.index('<section id="parwatch-plan')
    province = {r["period"]: r for r in rows_to_json(read_kpis(loaded.client, "year"))
                if r["agency_code"] is None}  # fmt: skip
    for key in ("full_process_offering_rate", "prefill_design_coverage",
                "online_inspection_share"):  # fmt: skip
        shown = charts.fmt_value(province["2025"][key], "percentunit")
        assert f">{shown}</div>" in head, key
    # the data reach December 2025: the year is over, each card says met or not, no projection
    assert info.kpi_range.end.astimezone(charts.VN).strftime("%Y-%m") == "2025-12"
    assert "Dự báo tháng 12" not in head and "năm kế hoạch đã kết thúc" in head
    targets = Targets()
    for key in ("full_process_offering_rate", "prefill_design_coverage",
                "online_inspection_share"):  # fmt: skip
        word = "ĐẠT" if province["2025"][key] >= targets.get(key) else "CHƯA ĐẠT"
        assert f"Năm 2025 đã có số liệu tháng 12: {word} mục tiêu." in head, key
    # a range that ends in September: the cards project to December instead
    september = TimeRange(
        datetime(2025, 1, 1, tzinfo=charts.VN),
        datetime(2025, 10, 1, tzinfo=charts.VN) - timedelta(milliseconds=1),
    )
    early, _ = render_report(loaded.client, time_range=september)
    early_head = early[early.index('<section id="headline">') :]
    early_head = early_head[: early_head.index("</section>")]
    assert early_head.count("Dự báo tháng 12/2025") == 3 and "sẽ đạt vào tháng 12" in early_head
    # the default range covers all data: the gauge shows the whole data set's share, which
    # equals the province's share over the years (all inspections fall in 2024 and 2025)
    years = [r for r in rows_to_json(read_kpis(loaded.client, "year")) if r["agency_code"] is None]
    online = sum(r["inspections_online"] for r in years)
    classified = sum(r["inspections_online"] + r["inspections_hybrid"]
                     + r["inspections_in_person"] for r in years)  # fmt: skip
    assert f">{charts.fmt_value(online / classified, 'percentunit')}</text>" in page
    assert info.pipeline_range.start.year == 2026 and info.kpi_range.start.year == 2024
    # every write counts, the newest too (the range ends at the end of its minute)
    for label, n in (("Sự kiện nhận", loaded.results["accepted"]),
                     ("Thư lỗi", loaded.results["refused"]),
                     ("Trùng lặp bỏ qua", loaded.results["duplicate"])):  # fmt: skip
        assert f"<b>{charts.fmt_value(n, 'short')}</b><span>{label}</span>" in page


def test_cli_report_writes_html_and_a_png_with_charts(
    loaded: Loaded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    find_chromium()  # tests/setup-tools.sh installs Debian's chromium
    monkeypatch.setenv("PARWATCH_CLICKHOUSE_URL", loaded.client_url)
    monkeypatch.setenv("PARWATCH_CLICKHOUSE_DATABASE", loaded.database)
    html, png = tmp_path / "report.html", tmp_path / "report.png"
    assert main(["report", "--out", str(html), "--png", str(png)]) == 0
    width, height, rows = decode_png(png.read_bytes())
    assert (width, height) == DEFAULT_SIZE
    coloured = sum(
        1 for row in rows[::4] for i in range(0, len(row), 12)
        if not (row[i] > 240 and row[i + 1] > 240 and row[i + 2] > 240)
    )  # fmt: skip
    sampled = (height // 4) * (width // 4)
    assert coloured / sampled > 0.03  # text, bars, gauges: far from a blank page
    greens = sum(
        1 for row in rows[::4] for i in range(0, len(row), 12)
        if row[i + 1] > 140 and row[i] < 90 and row[i + 2] < 90
    )  # fmt: skip
    assert greens > 50  # the charts' green (at or above target) is drawn


def test_cli_report_bad_range_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--out", "x.html", "--from", "2025-01-01"]) == 2
    assert capsys.readouterr().err.strip() == (
        "parwatch: error: give both --from and --to, or neither (all data)"
    )


def test_screenshot_has_the_requested_size_and_a_blank_page_is_blank(tmp_path: Path) -> None:
    find_chromium()
    page = tmp_path / "p.html"
    page.write_text("<html><body style='background:#fff'></body></html>", encoding="utf-8")
    width, height, rows = decode_png(
        screenshot(page, tmp_path / "p.png", size=(200, 100)).read_bytes()
    )
    assert (width, height) == (200, 100)
    assert all(v > 240 for row in rows for v in row)  # the pixel check above can fail
