"""The offering catalog CSV: parsing, one error per bad line, deterministic events, and the
bundled (illustrative) file's shape."""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from schemas import decode
from schemas.catalog import load_catalog
from schemas.offering import OfferingEventV1
from schemas.offering_catalog import (
    LOCAL,
    LineError,
    OfferingCatalogError,
    OfferingLine,
    bundled_offerings,
    offering_event,
    read_offerings,
)

HEADER = "agency_code,procedure_code,level,prefill_designed,effective_at\n"
CATALOG = load_catalog()


def test_good_lines_with_both_time_forms() -> None:
    text = HEADER + (
        "TH-S-TP,1.001193,partial,false,2024-01-01\n"
        "\n"
        "TH-S-TP,1.001193,full_process,TRUE,2024-03-05T09:30:00+07:00\n"
        "TH-D380,2.000908,not_offered,false,2025-07-01T00:00:00Z\n"
    )
    good, bad = read_offerings(text, known_agencies=CATALOG.agencies)
    assert bad == []
    assert [g.line for g in good] == [2, 4, 5]
    first = good[0]
    assert first == OfferingLine(2, "TH-S-TP", "1.001193", "partial", False, first.effective_at)
    # a plain date is 00:00 in Asia/Ho_Chi_Minh: 17:00 UTC the day before
    assert first.effective_at.astimezone(UTC) == datetime(2023, 12, 31, 17, 0, tzinfo=UTC)
    assert good[1].prefill_designed is True
    assert good[1].effective_at == datetime(2024, 3, 5, 2, 30, tzinfo=UTC)
    assert good[2].effective_at.utcoffset() is not None


def test_each_bad_line_is_one_error_with_its_number() -> None:
    lines = [
        "TH-S-TP,1.001193,full_process,true,2024-01-01",  # 2: good
        "TH-NOPE,1.001193,full_process,true,2024-01-01",  # 3
        "TH-S-TP,1.001193,partial,yes,2024-01-02",  # 4
        "TH-S-TP,1.001193,half,true,2024-01-03",  # 5
        "TH-S-TP,,partial,true,2024-01-04",  # 6
        "TH-S-TP," + "9" * 33 + ",partial,true,2024-01-05",  # 7
        "TH-S-TP,1.001193,partial,true,2024-02-30",  # 8
        "TH-S-TP,1.001193,partial,true,2024-01-06T08:00:00",  # 9: no offset
        "TH-S-TP,1.001193,partial,true,2024-01-01T00:00:00+07:00",  # 10: same instant as 2
        "TH-S-TP,1.001193,partial,true",  # 11
        "TH-S-TP,1.001193,partial,true,2024-01-07,extra",  # 12
        "TH-S-TP,1.001193,not_online,false,2024-01-08",  # 13: good
    ]
    good, bad = read_offerings(HEADER + "\n".join(lines) + "\n", known_agencies=CATALOG.agencies)
    assert [g.line for g in good] == [2, 13]
    assert [e.line for e in bad] == list(range(3, 13))
    expected = [
        "unknown agency 'TH-NOPE'",
        "prefill_designed must be true or false, not 'yes'",
        "level must be one of full_process, partial, not_online, not_offered, not 'half'",
        "procedure_code is empty",
        "is 33 characters (at most 32)",
        "effective_at '2024-02-30' is not a valid date",
        "must be RFC 3339 with an explicit UTC offset",
        "duplicate: TH-S-TP 1.001193 already has a state at 2024-01-01T00:00:00+07:00 (line 2)",
        "expected 5 columns",
        "expected 5 columns",
    ]
    for error, words in zip(bad, expected, strict=True):
        assert words in error.message, error


def test_without_a_catalog_any_agency_is_accepted() -> None:
    good, bad = read_offerings(HEADER + "TH-NOPE,1.001193,partial,false,2024-01-01\n")
    assert bad == [] and good[0].agency_code == "TH-NOPE"


@pytest.mark.parametrize(
    "text",
    ["", "agency_code,procedure_code,level,prefill_designed\nTH-S-TP,1,partial,true\n",
     "agency,procedure_code,level,prefill_designed,effective_at\n"],
)  # fmt: skip
def test_a_missing_or_wrong_header_is_one_error_at_line_1(text: str) -> None:
    good, bad = read_offerings(text)
    assert good == [] and len(bad) == 1 and bad[0].line == 1
    assert "agency_code,procedure_code,level,prefill_designed,effective_at" in bad[0].message


def test_text_is_read_in_nfc_and_a_byte_order_mark_is_dropped() -> None:
    decomposed = unicodedata.normalize("NFD", "TTHC-Hộ-tịch")
    good, bad = read_offerings("\ufeff" + HEADER + f"TH-S-TP,{decomposed},partial,true,2024-01-01")
    assert bad == []
    assert good[0].procedure_code == unicodedata.normalize("NFC", "TTHC-Hộ-tịch")


def test_the_event_is_a_valid_offering_with_a_deterministic_id() -> None:
    text = HEADER + (
        "TH-S-TP,1.001193,full_process,true,2024-01-01\nTH-S-TP,1.001193,partial,true,2024-02-01\n"
    )
    (a, b), _ = read_offerings(text)
    event = offering_event(a)
    decoded = decode(json.dumps(event).encode(), known_agency=CATALOG.agencies,
                     now=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    assert isinstance(decoded, OfferingEventV1)
    assert decoded.key == "TH-S-TP:1.001193"
    assert event["occurred_at"] == "2024-01-01T00:00:00+07:00"
    assert (event["level"], event["prefill_designed"]) == ("full_process", True)
    assert offering_event(a) == event  # the same line, the same event
    assert offering_event(b)["event_id"] != event["event_id"]
    # the same instant written with an offset is the same event
    (c,), _ = read_offerings(HEADER + "TH-S-TP,1.001193,full_process,true,2023-12-31T17:00:00Z")
    assert offering_event(c)["event_id"] == event["event_id"]
    # ... but another level or prefill at that instant is another event
    (d,), _ = read_offerings(HEADER + "TH-S-TP,1.001193,full_process,false,2024-01-01")
    assert offering_event(d)["event_id"] != event["event_id"]


def test_the_event_id_never_changes_between_releases() -> None:
    (a,), _ = read_offerings(HEADER + "TH-S-TP,1.001193,full_process,true,2024-01-01")
    expected = uuid.uuid5(
        uuid.UUID("5f0c7a3e-8d2b-4c61-9a47-0e6b2d9c1f58"),
        "TH-S-TP|1.001193|2023-12-31T17:00:00+00:00|full_process|true",
    )
    assert offering_event(a)["event_id"] == str(expected)


# -- the bundled file -------------------------------------------------------------------------


def _states_at(lines: list[OfferingLine], t: datetime) -> dict[tuple[str, str], OfferingLine]:
    states: dict[tuple[str, str], OfferingLine] = {}
    for line in sorted(lines, key=lambda x: x.effective_at):
        if line.effective_at <= t:
            states[(line.agency_code, line.procedure_code)] = line
    return {k: s for k, s in states.items() if s.level != "not_offered"}


def _local(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=LOCAL)


def test_the_bundled_catalog_follows_the_units_and_their_dates() -> None:
    lines = bundled_offerings()
    assert 4_000 < len(lines) < 8_000
    agencies, procedures = CATALOG.agencies, CATALOG.procedures
    for line in lines:
        agency = agencies[line.agency_code]
        day = line.effective_at.astimezone(LOCAL).date()
        if line.level == "not_offered" and day == agency.valid_to:
            continue  # a unit's services end the day it ends
        assert agency.valid_on(day), line
        assert line.procedure_code in procedures, line
        proc = procedures[line.procedure_code]
        kind = {"province": "department", "district": "district", "commune": "commune"}
        assert agency.kind == kind[proc.level], line
        if line.level == "full_process":
            assert proc.full_process_eligible, line
        if line.level == "not_online":
            assert not line.prefill_designed, line
    # every service starts on 2024-01-01 (or the day its unit starts)
    first: dict[tuple[str, str], OfferingLine] = {}
    for line in sorted(lines, key=lambda x: x.effective_at):
        first.setdefault((line.agency_code, line.procedure_code), line)
    starts = Counter(s.effective_at.astimezone(LOCAL).date().isoformat() for s in first.values())
    assert set(starts) == {"2024-01-01", "2025-03-01", "2025-07-01"}
    # districts all end by the reform; communes all exist after it
    before, after = (
        _states_at(lines, _local(date(2025, 6, 30))),
        _states_at(lines, _local(date(2025, 7, 1))),
    )
    assert {agencies[a].kind for a, _ in before} == {"department", "district"}
    assert {agencies[a].kind for a, _ in after} == {"department", "commune"}
    communes = [a for a in agencies.values() if a.kind == "commune"]
    commune_procedures = [p for p in procedures.values() if p.level == "commune"]
    assert sum(agencies[a].kind == "commune" for a, _ in after) == len(communes) * len(
        commune_procedures
    )


def test_the_bundled_catalog_improves_towards_the_targets_without_reaching_them() -> None:
    lines = bundled_offerings()
    procedures = CATALOG.procedures

    def rates(day: date) -> tuple[float, float]:
        states = _states_at(lines, _local(day)).values()
        eligible = [s for s in states if procedures[s.procedure_code].full_process_eligible]
        online = [s for s in states if s.level in ("full_process", "partial")]
        full = sum(s.level == "full_process" for s in eligible) / len(eligible)
        return full, sum(s.prefill_designed for s in online) / len(online)

    start, middle, end = rates(date(2024, 1, 1)), rates(date(2025, 1, 1)), rates(date(2026, 1, 1))
    assert start[0] < middle[0] < end[0] < 0.95 and end[0] > 0.8
    assert start[1] < middle[1] < end[1] < 0.9 and end[1] > 0.75
    levels = Counter(line.level for line in lines)
    assert levels["not_offered"] > 400  # districts' ends, merged departments, a few withdrawn


def test_the_bundled_file_is_what_the_generator_writes() -> None:
    from schemas.reference import make_offerings

    path = Path(make_offerings.__file__).with_name("offerings.csv")
    assert make_offerings.render(make_offerings.generate(CATALOG)) == path.read_text("utf-8")


def test_a_bad_bundled_file_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import schemas.offering_catalog as oc

    bad = tmp_path / "offerings.csv"
    bad.write_text(HEADER + "TH-NOPE,1.001193,partial,false,2024-01-01\n", encoding="utf-8")
    monkeypatch.setattr(oc, "bundled_path", lambda: bad)
    with pytest.raises(OfferingCatalogError, match=r"offerings.csv:2: unknown agency 'TH-NOPE'"):
        bundled_offerings()


def test_line_error_is_the_catalog_one() -> None:
    from schemas.catalog import LineError as CatalogLineError

    assert LineError is CatalogLineError
    assert LineError(3, "x") == LineError(3, "x")
