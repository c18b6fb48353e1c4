"""The expander against the plugin's and Grafana's documented expansions (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dashboards.macros import (
    ALL,
    MacroError,
    TimeRange,
    Variable,
    apply_backend_macros,
    apply_conditional_all,
    expand,
    grafana_interval_ms,
    interpolate_variables,
    round_interval,
)

VN = timezone(timedelta(hours=7))
# 2024-06-01T00:00:00+07:00 = 1717174800 s; to = 2024-06-30T23:59:59.999+07:00
TR = TimeRange(datetime(2024, 6, 1, tzinfo=VN), datetime(2024, 6, 30, 23, 59, 59, 999000, VN))
FROM_S, TO_S = 1717174800, 1719766799
AGENCY_ALL = {"agency": Variable("agency", [ALL], ["TH-S-TP", "TH-S-YT"])}


def test_time_macros_expand_like_the_plugin() -> None:
    sql = (
        "SELECT $__timeInterval(t) AS time, ($__interval_s), ($__fromTime), ($__toTime) "
        "FROM x WHERE $__timeFilter(t) AND $__timeFilter_ms(u) "
        "AND $__dateFilter(d)"
    )
    out = apply_backend_macros(sql, TR, interval_ms=3_600_000)
    assert out == (
        "SELECT toStartOfInterval(toDateTime(t), INTERVAL 3600 second) AS time, (3600), "
        f"(toDateTime({FROM_S})), (toDateTime({TO_S})) FROM x "
        f"WHERE t >= toDateTime({FROM_S}) AND t <= toDateTime({TO_S}) "
        f"AND u >= fromUnixTimestamp64Milli({FROM_S}000) "
        f"AND u <= fromUnixTimestamp64Milli({TO_S}999) "
        "AND d >= toDate('2024-05-31') AND d <= toDate('2024-06-30')"
    )


def test_interval_is_at_least_one_second_and_arguments_are_trimmed() -> None:
    assert apply_backend_macros("($__interval_s)", TR, interval_ms=200) == "(1)"
    assert apply_backend_macros("$__timeInterval( t )", TR, 20_000) == (
        "toStartOfInterval(toDateTime(t), INTERVAL 20 second)"
    )
    with pytest.raises(MacroError):
        apply_backend_macros("$__timeFilter(a, b)", TR, 1000)


def test_a_bare_macro_swallows_the_next_parentheses_as_the_sdk_does() -> None:
    # grafana-plugin-sdk-go takes the first "(" after the macro as its arguments: the reason
    # every bare macro in the dashboards is written in parentheses.
    trap = apply_backend_macros("SELECT $__interval_s AS s, count() FROM t", TR, 60_000)
    assert trap == "SELECT 60 FROM t"
    safe = apply_backend_macros("SELECT ($__interval_s) AS s, count() FROM t", TR, 60_000)
    assert safe == "SELECT (60) AS s, count() FROM t"


def test_bare_macro_text_is_replaced_everywhere_even_inside_a_longer_name() -> None:
    # The SDK replaces every occurrence of the cut text: "$__fromTime" inside "$__fromTime_ms"
    # too, when its (random, map-ordered) turn comes first. The dashboards never mix the two.
    alone = apply_backend_macros("($__fromTime_ms)", TR, 1000)
    assert alone == f"(fromUnixTimestamp64Milli({FROM_S}000))"
    mixed = apply_backend_macros("($__fromTime), ($__fromTime_ms)", TR, 1000)
    assert mixed == f"(toDateTime({FROM_S})), (toDateTime({FROM_S})_ms)"


def test_conditional_all_drops_the_condition_for_all_and_keeps_it_otherwise() -> None:
    sql = "WHERE $__conditionalAll(agency_code IN (${agency:singlequote}), $agency) AND x"
    assert apply_conditional_all(sql, AGENCY_ALL) == "WHERE 1=1 AND x"
    one = {"agency": Variable("agency", ["TH-S-TP"])}
    assert expand(sql, time_range=TR, interval_ms=1000, variables=one) == (
        "WHERE agency_code IN ('TH-S-TP') AND x"
    )
    two = {"agency": Variable("agency", ["TH-S-TP", "TH-S-YT"])}
    assert apply_conditional_all(sql, two) == "WHERE agency_code IN (${agency:singlequote}) AND x"
    assert expand(sql, time_range=TR, interval_ms=1000, variables=two) == (
        "WHERE agency_code IN ('TH-S-TP','TH-S-YT') AND x"
    )
    empty = {"agency": Variable("agency", "")}
    assert apply_conditional_all(sql, empty) == "WHERE 1=1 AND x"
    # an unknown variable keeps the condition; ${name} is recognised as well as $name
    assert apply_conditional_all("$__conditionalAll(a = 1, $nope)", {}) == "a = 1"
    braced = "$__conditionalAll(s IN (${sector:csv}), ${sector})"
    assert apply_conditional_all(braced, {"sector": Variable("sector", [ALL])}) == "1=1"


def test_variable_formats_and_all_values() -> None:
    quoted = {"s": Variable("s", ["Tư pháp", "O'Neil"])}
    assert interpolate_variables("${s:singlequote}", quoted) == "'Tư pháp','O\\'Neil'"
    assert interpolate_variables("${s:sqlstring}", quoted) == "'Tư pháp','O''Neil'"
    assert interpolate_variables("${s:csv}|[[s]]|$s", quoted) == (
        "Tư pháp,O'Neil|'Tư pháp','O'Neil'|'Tư pháp','O'Neil'"
    )
    single = {"s": Variable("s", "TH")}
    assert interpolate_variables("$s ${s:singlequote}", single) == "TH 'TH'"
    assert interpolate_variables("${agency:singlequote}", AGENCY_ALL) == "'TH-S-TP','TH-S-YT'"
    custom = {"a": Variable("a", [ALL], ["x"], all_value=".*")}
    assert interpolate_variables("${a:singlequote}", custom) == ".*"
    # macros and unknown names are left for the backend
    assert interpolate_variables("$__timeFilter(t) $other", AGENCY_ALL) == (
        "$__timeFilter(t) $other"
    )


def test_grafana_interval_rounding() -> None:
    assert [round_interval(v) for v in (5, 14, 40_000, 100_000, 5_000_000)] == [
        1, 10, 30_000, 120_000, 3_600_000,
    ]  # fmt: skip
    assert round_interval(4e9) == 31_536_000_000
    hour = TimeRange(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC))
    assert grafana_interval_ms(hour, 120) == 30_000  # 3600 s / 120 = 30 s
    assert grafana_interval_ms(hour, 120, low_limit_ms=60_000) == 60_000
    with pytest.raises(ValueError):
        TimeRange(datetime(2026, 1, 1), datetime(2026, 1, 2))


def test_the_plugin_version_whose_rules_are_followed_is_stated_and_deployed() -> None:
    import re
    from pathlib import Path

    from dashboards import macros

    assert macros.__doc__ is not None
    assert f"grafana/clickhouse-datasource **v{macros.RULES_VERSION}**" in macros.__doc__
    assert macros.RULES_VERSION in macros.EXPANSIONS_CHECKED
    compose = (Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml").read_text()
    deployed = re.search(r"grafana-clickhouse-datasource@\$\{[A-Z_]+:-([0-9.]+)\}", compose)
    assert deployed is not None
    # a plugin upgrade in deploy/ fails here until the expander is checked against it
    assert deployed.group(1) in macros.EXPANSIONS_CHECKED
