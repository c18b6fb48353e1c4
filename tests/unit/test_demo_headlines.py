"""The demo's table of the plan's three headline targets (pure parts: periods and lines)."""

from __future__ import annotations

from datetime import date

from parwatch.commands.demo import HEADLINES, headline_periods, headline_table


def test_headline_periods_are_the_latest_complete_year_and_the_last_month() -> None:
    assert headline_periods(date(2024, 1, 1), date(2025, 12, 31)) == [
        ("year", "2025"),
        ("month", "2025-12"),
    ]
    assert headline_periods(date(2024, 1, 1), date(2025, 6, 30)) == [
        ("year", "2024"),
        ("month", "2025-06"),
    ]
    assert headline_periods(date(2024, 3, 1), date(2024, 12, 31)) == [("month", "2024-12")]


def test_headline_table_shows_measured_truth_target_and_whether_met() -> None:
    measured = {
        "full_process_offering_rate": 0.9,
        "prefill_design_coverage": 0.8125,
        "online_inspection_share": 0.4378,
        "target_full_process_offering_rate": 1.0,
        "target_prefill_design_coverage": 1.0,
        # no target column for inspections: the setting's target is shown
    }
    truth: list[dict[str, object]] = [
        {"agency_code": None, "period": "2025", **{k: measured[k] for k, _ in HEADLINES}},
        {"agency_code": "TH-S-TP", "period": "2025", "full_process_offering_rate": 0.1},
    ]
    targets: dict[str, float | None] = {"online_inspection_share": 0.4}
    lines = headline_table([("year", "2025", measured, targets)], truth)
    assert len(lines) == 1 + 2 + 3  # title, head and rule, one line per KPI
    offering, prefill, inspections = lines[3:]
    assert "(full_process_offering_rate)" in offering and "2025" in offering
    assert offering.count("90.0%") == 2 and "100.0%" in offering and offering.endswith("chưa")
    assert prefill.count("81.2%") == 2 and prefill.endswith("chưa")
    assert inspections.count("43.8%") == 2 and "40.0%" in inspections
    assert inspections.endswith("đạt")


def test_headline_table_without_measurements() -> None:
    lines = headline_table([("month", "2025-12", {}, {})], [])
    assert all(line.rstrip().endswith("-") for line in lines[3:])
