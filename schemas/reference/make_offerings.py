"""Generate ``offerings.csv``: an illustrative service-offering catalog (not the portal's real one).

Run from the repository root: ``python -m schemas.reference.make_offerings``. Deterministic: a
fixed seed and only ``random.random()``, so a run writes the same bytes every time (a unit test
regenerates the file and compares). How the catalog is modelled is in ``README.md`` here.
"""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from schemas.catalog import Catalog, Procedure, load_catalog

SEED = 20240101
START = date(2024, 1, 1)  # the catalog's first export: every service's initial state
END = date(2026, 1, 1)  # changes are drawn up to the end of 2025
REFORM = date(2025, 7, 1)  # two-tier reform: districts end, communes start
SUCCESSORS = {  # departments merged on 2025-03-01 -> the department that took their services
    "TH-S-KHDT": "TH-S-TC",
    "TH-S-NNPTNT": "TH-S-NNMT",
    "TH-S-TNMT": "TH-S-NNMT",
    "TH-S-LDTBXH": "TH-S-NV",
    "TH-S-TTTT": "TH-S-KHCN",
    "TH-S-GTVT": "TH-S-XD",
    "TH-BDT": "TH-S-DTTG",
}
# Monthly chances of a change (per service): spread upgrades over the two years.
UP_TO_PARTIAL = 0.05  # not_online -> partial
UP_TO_FULL = 0.065  # partial -> full_process (eligible procedures only): ~80% within 2 years
DOWN_TO_PARTIAL = 0.003  # full_process -> partial (a legal change, a broken integration)
PREFILL_ON = 0.06  # an online form starts prefilling earlier data
PREFILL_OFF = 0.002
WITHDRAWN = 0.0006  # the agency stops handling the procedure (not_offered)


@dataclass(frozen=True)
class State:
    level: str
    prefill: bool


@dataclass(frozen=True)
class Row:
    moment: tuple[date, int, int]  # day, hour, minute (local time); (day, 0, 0) = a plain date
    plain: bool
    agency: str
    procedure: str
    state: State

    def fields(self) -> list[str]:
        day, hour, minute = self.moment
        when = day.isoformat()
        if not self.plain:
            when += f"T{hour:02d}:{minute:02d}:00+07:00"
        prefill = "true" if self.state.prefill else "false"
        return [self.agency, self.procedure, self.state.level, prefill, when]


def _chance(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def _initial(rng: random.Random, eligible: bool, full: float, prefill: float) -> State:
    x = rng.random()
    if eligible and x < full:
        level = "full_process"
    elif x < (full + (1 - full) * 0.85 if eligible else 0.6):
        level = "partial"
    else:
        level = "not_online"
    return State(level, level != "not_online" and _chance(rng, prefill))


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _months(first: date, stop: date) -> list[date]:
    """The first day of each month from ``first``'s month up to (not including) ``stop``."""
    out, day = [], date(first.year, first.month, 1)
    while day < stop:
        out.append(day)
        day = _next_month(day)
    return out


def _step(rng: random.Random, state: State, eligible: bool) -> State | None:
    """The state after one month, or None when the service is withdrawn."""
    if _chance(rng, WITHDRAWN):
        return None
    level, prefill = state.level, state.prefill
    if level == "not_online" and _chance(rng, UP_TO_PARTIAL):
        level = "partial"
    elif level == "partial" and eligible and _chance(rng, UP_TO_FULL):
        level = "full_process"
    elif level == "full_process" and _chance(rng, DOWN_TO_PARTIAL):
        level = "partial"
    if level == "not_online":
        prefill = False
    elif not prefill and _chance(rng, PREFILL_ON):
        prefill = True
    elif prefill and _chance(rng, PREFILL_OFF):
        prefill = False
    return State(level, prefill)


def _history(
    rng: random.Random,
    agency: str,
    procedure: Procedure,
    start: date,
    stop: date | None,
    first: State,
) -> tuple[list[Row], State | None]:
    """Rows of one service from ``start`` (plain date, state ``first``) with monthly changes
    until ``stop`` (then ``not_offered`` that day) or ``END``; and the state it ended in (None:
    withdrawn)."""
    eligible = procedure.full_process_eligible
    rows = [Row((start, 0, 0), True, agency, procedure.code, first)]
    state: State | None = first
    for month in _months(start, stop or END):
        assert state is not None
        after = _step(rng, state, eligible)
        if after == state:
            continue
        lo = max(month, start)  # a working day-time in this month, after the start
        day = lo + timedelta(days=int(rng.random() * (_next_month(month) - lo).days))
        moment = (day, 7 + int(rng.random() * 10), 15 * int(rng.random() * 4))
        rows.append(Row(moment, False, agency, procedure.code,
                        after or State("not_offered", False)))  # fmt: skip
        if after is None:
            return rows, None
        state = after
    if stop is not None and stop < END:
        rows.append(Row((stop, 0, 0), True, agency, procedure.code, State("not_offered", False)))
    return rows, state


def generate(catalog: Catalog) -> list[Row]:
    rng = random.Random(SEED)
    rows: list[Row] = []
    agencies = catalog.agencies
    by_level = {lv: [p for p in catalog.procedures.values() if p.level == lv]
                for lv in ("province", "district", "commune")}  # fmt: skip
    # Provincial procedures: the managing department; a merged department's services pass to
    # its successor on the merger day, in the state they were in.
    for p in by_level["province"]:
        dept = agencies[p.agency]
        first = _initial(rng, p.full_process_eligible, full=0.6, prefill=0.35)
        history, last = _history(rng, dept.code, p, START, dept.valid_to, first)
        rows += history
        if dept.valid_to is not None and last is not None and dept.code in SUCCESSORS:
            rows += _history(rng, SUCCESSORS[dept.code], p, dept.valid_to, None, last)[0]
    # District-level procedures: every district, until it ends (not_offered that day).
    districts = [a for a in agencies.values() if a.kind == "district" and a.valid_on(START)]
    for d in districts:
        for p in by_level["district"]:
            first = _initial(rng, p.full_process_eligible, full=0.5, prefill=0.3)
            rows += _history(rng, d.code, p, START, d.valid_to, first)[0]
    # Commune-level procedures: every commune from the day it starts (2025-07-01), at the
    # maturity the districts had reached by then.
    communes = [a for a in agencies.values() if a.kind == "commune"]
    for c in communes:
        for p in by_level["commune"]:
            first = _initial(rng, p.full_process_eligible, full=0.86, prefill=0.8)
            rows += _history(rng, c.code, p, max(c.valid_from, START), c.valid_to, first)[0]
    rows.sort(key=lambda r: (r.moment, r.agency, r.procedure))
    return rows


def render(rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["agency_code", "procedure_code", "level", "prefill_designed", "effective_at"])
    writer.writerows(r.fields() for r in rows)
    return out.getvalue()


def main() -> None:
    path = Path(__file__).with_name("offerings.csv")
    text = render(generate(load_catalog(path.parent)))
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path} ({text.count(chr(10)) - 1} lines)")


if __name__ == "__main__":
    main()
