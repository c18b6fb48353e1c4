"""The report of a healthy pipeline: panels whose query returns no rows (no dead letters, no
duplicates) render as empty panels, whatever their kind; the engine may return an empty result
without its columns."""

from __future__ import annotations

import json
import re
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dashboards.report import _render_panel, run_panel
from dashboards.spec import Kind, Targets, build_dashboards
from parwatch.cli import main
from schemas.catalog import load_catalog
from streams.warehouse.reference import load_catalog_tables
from streams.warehouse.writer import write_tables
from streams.worker.processor import Result, RowBuffer, process
from streams.worker.rows import Origin
from tests.conftest import make_inspection_event, make_service_event

pytestmark = pytest.mark.clickhouse

PANELS = [p for d in build_dashboards(Targets()) for p in d.panels if not p.live]  # SQL ones
NO_DATA = "Không có"  # the empty charts' and tables' sentence


def test_the_panels_cover_every_kind() -> None:
    assert {p.kind for p in PANELS} == set(typing.get_args(Kind))


@pytest.mark.parametrize("with_columns", [False, True], ids=["no-columns", "columns"])
@pytest.mark.parametrize("kind", typing.get_args(Kind))
def test_every_kind_renders_an_empty_result(kind: str, with_columns: bool) -> None:
    for panel in (p for p in PANELS if p.kind == kind):
        columns = ["time", *panel.labels] if with_columns else []
        html = _render_panel(panel, columns, [])
        if kind in ("gauge", "stat"):
            # every value shown, as "no value"
            assert html.count("—") == len(panel.labels), panel.key
            assert all(label in html for label in panel.labels.values()), panel.key
        else:
            assert NO_DATA in html and "<svg" not in html and "<td" not in html, panel.key


def _load_valid_events(client: Any) -> None:
    catalog = load_catalog()
    load_catalog_tables(client, catalog)
    out, insp, doss = RowBuffer(), {}, {}  # type: ignore[var-annotated]
    payloads = [
        make_inspection_event(inspection_id="KT-E-1"),
        make_inspection_event(inspection_id="KT-E-1", event_type="concluded",
                              occurred_at="2024-06-20T16:00:00+07:00"),
        make_service_event(dossier_id="HS-E-1"),
    ]  # fmt: skip
    now = datetime(2026, 1, 2, 10, tzinfo=UTC)
    for offset, payload in enumerate(payloads):
        p = process(json.dumps(payload).encode(), Origin("t", 0, offset), now=now,
                    known_agencies=catalog.agencies, inspection_states=insp,
                    dossier_states=doss, out=out)  # fmt: skip
        assert p.result is Result.ACCEPTED
    write_tables(client, out.take(), token=None)


def test_cli_report_without_dead_letters_writes_every_panel(
    warehouse: Any, chdb_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load_valid_events(warehouse)
    assert warehouse.command("SELECT count() FROM dead_letters") == 0
    assert warehouse.command("SELECT count() FROM inspection_events") == 2
    monkeypatch.setenv("PARWATCH_CLICKHOUSE_URL", chdb_url)
    database = str(warehouse.command("SELECT currentDatabase()"))
    monkeypatch.setenv("PARWATCH_CLICKHOUSE_DATABASE", database)
    out = tmp_path / "report.html"
    assert main(["report", "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    ids = re.findall(r'<div class="panel" id="([^"]+)">', page)
    assert ids == [f"{d.uid}-{p.key}" for d in build_dashboards(Targets()) for p in d.panels
                   if not p.live]  # fmt: skip
    assert len(ids) == len(PANELS) >= 30
    # the dead-letter panels are there, and say that there is nothing to show
    empty = [p for p in PANELS if not run_panel(warehouse, p, _any_range())[1]]
    assert any("dead_letters" in p.sql for p in empty)
    assert page.count(NO_DATA) >= sum(p.kind not in ("gauge", "stat") for p in empty)


def _any_range() -> Any:
    from dashboards.macros import TimeRange

    return TimeRange(datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))
