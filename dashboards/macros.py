"""Expands a panel's SQL the way Grafana and the ClickHouse datasource plugin do before the query
reaches ClickHouse, so that tests and the HTML report run exactly what Grafana would run.

Plugin version: the rules below were checked against grafana/clickhouse-datasource **v4.18.0**
(``RULES_VERSION``: ``pkg/macros/macros.go``, ``src/data/CHDatasource.ts``, and the
grafana-plugin-sdk-go ``sqlutil`` cutting it used through sqlds v5). From v4.19.0 the plugin cuts
macros with grafana/macropro instead; in v4.20.0 (what ``deploy/`` installs) the expansions of
every macro listed here are unchanged (``EXPANSIONS_CHECKED``), but macropro's cutting was not
re-checked: the dashboards write bare macros in parentheses (see 3.), which both cut alike.
Re-check these rules before installing another plugin version.

Grafana passes a panel's ``rawSql`` through three steps; ``expand`` applies them in that order.
Each rule below names where it comes from (read in the sources, re-written here):

1. ``$__conditionalAll(condition, $var)`` — the plugin's frontend
   (grafana/clickhouse-datasource ``src/data/CHDatasource.ts``, ``applyConditionalAll``):
   occurrences are handled from the last to the first; the arguments are split at commas that
   are not inside nested parentheses (exactly two, else the SQL is left as it is); the variable is
   found in the second argument as ``${name}`` or ``$name``; if that variable's current value,
   turned into a string (a list joins with commas), is ``""`` or ``"$__all"``, the macro becomes
   ``1=1``, otherwise its first argument, untrimmed. An unknown variable keeps the condition.
2. Template variables — Grafana's ``templateSrv.replace`` (``public/app/features/templating/
   template_srv.ts`` and ``formatRegistry.ts``) with the plugin's default formatter: names match
   ``$name``, ``[[name]]``, ``[[name:fmt]]``, ``${name}`` or ``${name:fmt}``; an unknown name is
   left as written (so the plugin's ``$__…`` macros pass through). A value of ``$__all`` becomes
   every option's value (the "All" option excluded), or the variable's custom ``allValue``, which
   is then inserted unformatted. Formats used here: ``singlequote`` (each value in ``'…'``, a
   ``'`` escaped as ``\\'``, joined with ``,``), ``sqlstring`` (``''`` doubling), ``csv``, ``raw``;
   with no format the plugin's own formatter applies (``CHDatasource.format``): a list becomes
   ``'a','b'`` (no escaping), a single value is inserted bare.
3. The plugin's backend macros (``pkg/macros/macros.go``), found and cut out the way the plugin
   SDK does (grafana-plugin-sdk-go ``data/sqlutil/macros.go``: ``getMacroMatches``/``Interpolate``):
   the name must end at a word boundary (so ``$__timeFilter`` never eats ``$__timeFilter_ms``);
   from the ``$`` on, the text is scanned for parentheses: a ``)`` met before any ``(`` ends the
   macro with no arguments; otherwise the first ``(`` — wherever it is — opens the arguments and
   its matching ``)`` closes them. (Hence a macro without arguments must be followed by a ``)``
   before the next ``(``: write ``($__interval_s)``, never ``$__interval_s, count()``; this
   expander reproduces that trap so that the tests catch it.) Arguments are split at every comma
   and trimmed. The cut text is then replaced everywhere in the query, so ``$__fromTime`` also
   rewrites the start of ``$__fromTime_ms`` when its turn comes first (the SDK's order is a Go
   map's, i.e. random; this expander takes the worst case): never mix the two in one query.
   Expansions (times in UTC seconds or milliseconds since the epoch, seconds
   truncated like Go's ``Time.Unix``):

   ==========================  =========================================================
   ``$__fromTime``              ``toDateTime(<from s>)``
   ``$__toTime``                ``toDateTime(<to s>)``
   ``$__fromTime_ms``           ``fromUnixTimestamp64Milli(<from ms>)``
   ``$__toTime_ms``             ``fromUnixTimestamp64Milli(<to ms>)``
   ``$__timeFilter(c)``         ``c >= toDateTime(<from s>) AND c <= toDateTime(<to s>)``
   ``$__timeFilter_ms(c)``      the same with ``fromUnixTimestamp64Milli(<ms>)``
   ``$__dateFilter(c)``         ``c >= toDate('<from date>') AND c <= toDate('<to date>')``
   ``$__timeInterval(c)``       ``toStartOfInterval(toDateTime(c), INTERVAL <s> second)``
   ``$__timeInterval_ms(c)``    ``toStartOfInterval(toDateTime64(c, 3), INTERVAL <ms> millisecond)``
   ``$__interval_s``            ``<s>``: the query interval in whole seconds, at least 1
   ==========================  =========================================================

The query interval is Grafana's ``intervalMs`` (``rangeutil.calculateInterval``: the range
divided by the panel's max data points, rounded by ``roundInterval``); ``grafana_interval_ms``
computes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dashboards.errors import DashboardsError

ALL = "$__all"
RULES_VERSION = "4.18.0"  # grafana-clickhouse-datasource release whose rules are reproduced here
EXPANSIONS_CHECKED = ("4.18.0", "4.20.0")  # releases whose expansions were compared (docstring)


class MacroError(DashboardsError, ValueError):
    """A macro with the wrong number of arguments (the plugin answers with an error too)."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    """The dashboard's time range: two aware datetimes."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.utcoffset() is None or self.end.utcoffset() is None:
            raise ValueError("time range bounds must carry a UTC offset")
        if self.start > self.end:
            raise ValueError("time range starts after it ends")

    @property
    def from_ms(self) -> int:
        return _ms(self.start)

    @property
    def to_ms(self) -> int:
        return _ms(self.end)


@dataclass(frozen=True, slots=True)
class Variable:
    """A dashboard variable's state: ``current`` is a value or a list of values (``[ALL]`` when
    "All" is chosen); ``options`` are the values the All option stands for; ``all_value`` is the
    variable's custom all value, if it has one."""

    name: str
    current: str | Sequence[str]
    options: Sequence[str] = field(default_factory=tuple)
    all_value: str | None = None

    @property
    def is_all(self) -> bool:
        cur = self.current
        return cur == ALL or (not isinstance(cur, str) and len(cur) > 0 and cur[0] == ALL)


def _ms(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


# --- Grafana's interval (rangeutil.roundInterval / calculateInterval) -------------------------

_ROUNDING: tuple[tuple[int, int], ...] = (
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
    (1_500, 1_000), (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000),
    (25_000, 20_000), (45_000, 30_000), (90_000, 60_000), (210_000, 120_000),
    (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000),
    (2_700_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000),
    (16_200_000, 10_800_000), (32_400_000, 21_600_000), (86_400_000, 43_200_000),
    (604_800_000, 86_400_000), (1_814_400_000, 604_800_000), (3_628_800_000, 2_592_000_000),
)  # fmt: skip
_YEAR_MS = 31_536_000_000


def round_interval(interval_ms: float) -> int:
    """Grafana's ``roundInterval``: the first bucket whose bound exceeds the raw interval."""
    for bound, rounded in _ROUNDING:
        if interval_ms < bound:
            return rounded
    return _YEAR_MS


def grafana_interval_ms(time_range: TimeRange, max_data_points: int, low_limit_ms: int = 1) -> int:
    """``intervalMs`` of a query: (to - from) / max data points, rounded, at least the limit."""
    if max_data_points <= 0:
        raise ValueError("max_data_points must be positive")
    raw = (time_range.to_ms - time_range.from_ms) / max_data_points
    return max(round_interval(raw), low_limit_ms)


# --- 1. $__conditionalAll (plugin frontend) ----------------------------------------------------

_CONDITIONAL_ALL = "$__conditionalAll("
_VAR_IN_ARG = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+")


def _call_args(sql: str, open_paren: int) -> list[str] | None:
    """Arguments of the call whose ``(`` is at ``open_paren``, split at depth-1 commas."""
    depth, start, args = 0, open_paren + 1, []
    for i in range(open_paren, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 1:
            args.append(sql[start:i])
            start = i + 1
        if depth == 0:
            args.append(sql[start:i])
            return args
    return None


def _current_text(var: Variable | None) -> str | None:
    if var is None:
        return None
    cur = var.current
    return cur if isinstance(cur, str) else ",".join(cur)


def apply_conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    """Step 1: replace each ``$__conditionalAll(cond, $var)`` by ``cond`` or ``1=1``."""
    at = sql.rfind(_CONDITIONAL_ALL)
    while at != -1:
        args = _call_args(sql, at + len(_CONDITIONAL_ALL) - 1)
        if args is None or len(args) != 2:
            return sql
        phrase = args[0]
        found = _VAR_IN_ARG.search(args[1].strip())
        if found:
            value = _current_text(variables.get(found.group(0)))
            if value in ("", ALL):
                phrase = "1=1"
        sql = sql.replace(f"{_CONDITIONAL_ALL}{args[0]},{args[1]})", phrase, 1)
        at = sql.rfind(_CONDITIONAL_ALL)
    return sql


# --- 2. template variables (Grafana templateSrv.replace) ---------------------------------------

_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}"
)


def _format(value: str | Sequence[str], fmt: str | None) -> str:
    values = [value] if isinstance(value, str) else list(value)
    single = isinstance(value, str)
    if fmt is None:  # the plugin's formatter (CHDatasource.format)
        return values[0] if single else "'" + "','".join(values) + "'"
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt in ("csv", "raw"):
        return ",".join(values)
    raise ValueError(f"variable format {fmt!r} is not supported by this expander")


def interpolate_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    """Step 2: replace ``$var`` / ``${var:fmt}`` / ``[[var]]`` by the variables' values."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        var = variables.get(name)
        if var is None:
            return m.group(0)
        value: str | Sequence[str] = var.current
        if var.is_all:
            if var.all_value is not None:
                return var.all_value
            value = list(var.options)
        return _format(value, fmt)

    return _VARIABLE.sub(one, sql)


# --- 3. backend macros (plugin pkg/macros + plugin SDK sqlutil) --------------------------------


def _find_macro(sql: str, name: str) -> tuple[int, int, str | None] | None:
    """First use of ``$__name`` as the SDK cuts it: (start, end, argument text or None)."""
    m = re.search(r"\$__" + re.escape(name) + r"\b", sql)
    if m is None:
        return None
    start, depth, arg_start, end = m.start(), 0, -1, -1
    for i in range(start, len(sql)):
        ch = sql[i]
        if depth == 0 and end > 0:
            break
        if ch == "(":
            depth += 1
            if arg_start < 0:
                arg_start = i + 1
        elif ch == ")":
            if depth == 0:
                end = -1
                break
            depth -= 1
            end = i + 1
    if end <= 0:
        return start, m.end(), None
    return start, end, sql[arg_start : end - 1]


def _dt(ms: int) -> str:
    return f"toDateTime({ms // 1000})"


def _dt64(ms: int) -> str:
    return f"fromUnixTimestamp64Milli({ms})"


def _date(moment: datetime) -> str:
    return f"toDate('{moment.astimezone(UTC):%Y-%m-%d}')"


def _one(name: str, args: list[str]) -> str:
    if len(args) != 1:
        raise MacroError(f"$__{name}: expected 1 argument, received {len(args)}")
    return args[0]


def _expand_one(name: str, args: list[str], tr: TimeRange, interval_ms: int) -> str:
    f, t = tr.from_ms, tr.to_ms
    seconds = max(interval_ms // 1000, 1)
    if name == "fromTime":
        return _dt(f)
    if name == "toTime":
        return _dt(t)
    if name == "fromTime_ms":
        return _dt64(f)
    if name == "toTime_ms":
        return _dt64(t)
    if name == "interval_s":
        return str(seconds)
    col = _one(name, args)
    if name == "timeFilter":
        return f"{col} >= {_dt(f)} AND {col} <= {_dt(t)}"
    if name == "timeFilter_ms":
        return f"{col} >= {_dt64(f)} AND {col} <= {_dt64(t)}"
    if name == "dateFilter":
        return f"{col} >= {_date(tr.start)} AND {col} <= {_date(tr.end)}"
    if name == "timeInterval":
        return f"toStartOfInterval(toDateTime({col}), INTERVAL {seconds} second)"
    if name == "timeInterval_ms":
        return (
            f"toStartOfInterval(toDateTime64({col}, 3), INTERVAL {max(interval_ms, 1)} millisecond)"
        )
    raise MacroError(f"unknown macro $__{name}")


BACKEND_MACROS = (
    "fromTime", "toTime", "fromTime_ms", "toTime_ms", "timeFilter", "timeFilter_ms",
    "dateFilter", "timeInterval", "timeInterval_ms", "interval_s",
)  # fmt: skip


def apply_backend_macros(sql: str, time_range: TimeRange, interval_ms: int) -> str:
    """Step 3: the plugin's macros; every occurrence of the same text is replaced at once."""
    for name in BACKEND_MACROS:
        while (found := _find_macro(sql, name)) is not None:
            start, end, arg_text = found
            # the SDK always passes the argument text, "" when there are no parentheses
            args = [a.strip() for a in (arg_text or "").split(",")]
            sql = sql.replace(sql[start:end], _expand_one(name, args, time_range, interval_ms))
    return sql


def expand(
    sql: str,
    *,
    time_range: TimeRange,
    interval_ms: int,
    variables: Mapping[str, Variable] | None = None,
) -> str:
    """The SQL that the plugin sends to ClickHouse for this panel query (steps 1, 2, 3)."""
    variables = variables or {}
    sql = apply_conditional_all(sql, variables)
    sql = interpolate_variables(sql, variables)
    return apply_backend_macros(sql, time_range, interval_ms)
