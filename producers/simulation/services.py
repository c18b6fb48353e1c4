"""The services (agency × procedure) of one simulation run, from the province's offering catalog.

``choose_services`` takes the bundled catalog's lines (``schemas.offering_catalog``) and keeps
whole services while their lines fit the run's offering budget, in a fixed order that does not
depend on the seed: round by round, one more service of every agency (within a round the
province's departments first, then districts, then communes; within an agency, and otherwise,
in the order of the SHA-256 of the service's key). A small run offers a subset of the
province's services, spread over the agencies; a large one all of them. Each chosen
service keeps its earliest line (the latest one on or before the range's first day, if several
are) and every change within the range, so its first offering event always comes before its
changes.

``ServiceBook`` answers what the dossier builder asks: which service receives a dossier at a
moment (among the services that exist then, at an agency valid that day: procedures Zipf-weighted
as before, agencies Zipf-weighted within a procedure), and what its offering is at a moment.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from itertools import accumulate

from schemas.catalog import Agency
from schemas.offering_catalog import OfferingLine

_LOCAL = timezone(timedelta(hours=7))
_KIND_ORDER = {"province": 0, "department": 1, "district": 2, "commune": 3}


def local(moment: datetime) -> datetime:
    """An aware instant as the naive province-local time the simulator computes with."""
    return moment.astimezone(_LOCAL).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Service:
    """One chosen service: its offering lines in effect order, and when each takes effect
    (naive local time)."""

    agency_code: str
    procedure_code: str
    lines: tuple[OfferingLine, ...]
    starts: tuple[datetime, ...]

    def offering_at(self, moment: datetime) -> OfferingLine | None:
        """The line in effect at ``moment`` (naive local); ``None`` before the first."""
        i = bisect_right(self.starts, moment) - 1
        return self.lines[i] if i >= 0 else None

    def exists_at(self, moment: datetime) -> bool:
        line = self.offering_at(moment)
        return line is not None and line.level != "not_offered"


def _order(agency: str, procedure: str) -> bytes:
    return hashlib.sha256(f"{agency}:{procedure}".encode()).digest()


def choose_services(
    lines: Iterable[OfferingLine],
    *,
    agencies: Mapping[str, Agency],
    procedures: Container[str],
    start: date,
    end: date,
    budget: int,
) -> list[Service]:
    """Whole services whose lines (within ``start``..``end``) fit ``budget`` lines in total,
    taken in a fixed seed-independent order; lines of unknown agencies or procedures are left
    out. Returned in that order."""
    first = datetime.combine(start, time())
    last = datetime.combine(end + timedelta(days=1), time())
    grouped: dict[tuple[str, str], list[OfferingLine]] = {}
    for line in lines:
        if line.agency_code in agencies and line.procedure_code in procedures:
            grouped.setdefault((line.agency_code, line.procedure_code), []).append(line)
    by_agency: dict[str, list[tuple[str, str]]] = {}
    for key in sorted(grouped, key=lambda k: _order(*k)):
        by_agency.setdefault(key[0], []).append(key)
    rank = {key: i for keys in by_agency.values() for i, key in enumerate(keys)}

    def order(key: tuple[str, str]) -> tuple[int, int, bytes]:
        return (rank[key], _KIND_ORDER.get(agencies[key[0]].kind, 9), _order(*key))

    services: list[Service] = []
    used = 0
    for agency, procedure in sorted(grouped, key=order):
        ordered = sorted(grouped[agency, procedure], key=lambda x: (x.effective_at, x.line))
        before = [x for x in ordered if local(x.effective_at) <= first]
        kept = before[-1:] + [x for x in ordered if first < local(x.effective_at) < last]
        if not kept or used + len(kept) > budget:
            continue
        used += len(kept)
        starts = tuple(local(x.effective_at) for x in kept)
        services.append(Service(agency, procedure, tuple(kept), starts))
    return services


class ServiceBook:
    """Which chosen service receives a dossier at a moment. Pools of the services that exist
    are cached per segment between two instants where some existence or validity changes."""

    def __init__(
        self,
        services: list[Service],
        agencies: Mapping[str, Agency],
        agency_weight: Mapping[str, float],
        procedure_weight: Mapping[str, float],
    ) -> None:
        self.services = sorted(services, key=lambda s: (s.procedure_code, s.agency_code))
        self.agencies, self._aw, self._pw = agencies, agency_weight, procedure_weight
        bounds = {s for svc in services for s in svc.starts}
        for a in agencies.values():
            for d in (a.valid_from, a.valid_to):
                if d is not None:
                    bounds.add(datetime.combine(d, time()))
        self._bounds = sorted(bounds)
        self._pools: dict[int, tuple[list[Service], list[float]]] = {}

    def __bool__(self) -> bool:
        return bool(self.services)

    def _pool(self, moment: datetime) -> tuple[list[Service], list[float]]:
        segment = bisect_right(self._bounds, moment)
        if segment not in self._pools:
            day = moment.date()
            live = [
                s
                for s in self.services
                if s.exists_at(moment) and self.agencies[s.agency_code].valid_on(day)
            ]
            per_procedure: dict[str, float] = {}
            for s in live:
                per_procedure[s.procedure_code] = (
                    per_procedure.get(s.procedure_code, 0.0) + self._aw[s.agency_code]
                )
            weights = (
                self._pw[s.procedure_code] * self._aw[s.agency_code] / per_procedure[code]
                for s in live
                if (code := s.procedure_code)
            )
            self._pools[segment] = (live, list(accumulate(weights)))
        return self._pools[segment]

    def pick(self, moment: datetime, rng: random.Random) -> Service | None:
        """A service that exists at ``moment`` at an agency valid that day; ``None`` if none."""
        live, cum = self._pool(moment)
        if not live:
            return None
        return rng.choices(live, cum_weights=cum)[0]
