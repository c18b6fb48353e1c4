"""Who sends what: the agency and procedure profiles of one simulation run, and agency choice.

``Traffic`` turns a ``SimulationConfig`` and a ``Catalog`` into profiles (Zipf-skewed volumes,
per-agency inspection styles, delivery habits, on-time rates and whether the agency has upgraded
to contract v2; per-procedure prefill habits, some procedures that never prefill, fees and
resolution times) and offers what the entity builders (``inspections``, ``dossiers``) share:
agency and service choice, event ids, the common event head.

Dossiers go to the run's chosen services (``services.ServiceBook``) when some exist that day;
otherwise (a run too small for any offering, a hand-made catalog) they follow the rules below.

Agencies are chosen among those valid on the entity's start day: departments inspect and handle
province-level procedures (a merged department's procedures go to its successor); district and
commune units handle local procedures, communes taking over district-level ones once the district
level is abolished (and districts handling commune-level ones before communes are in the catalog).

Deterministic: every choice comes from the ``random.Random`` passed in, profiles from a child
generator drawn first (so they do not depend on the number of events), and nothing iterates over
a hash-ordered collection.
"""

from __future__ import annotations

import random
import unicodedata
import uuid
from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime
from itertools import accumulate
from typing import Any, Literal

from producers.simulation.config import SimulationConfig
from producers.simulation.office_hours import Calendar, rfc3339
from producers.simulation.services import Service, ServiceBook
from schemas.catalog import Agency, Catalog, Procedure

Kind = Literal["inspection", "service", "offering"]
Delivery = Literal["realtime", "hourly", "daily"]


def nfc(*texts: str) -> tuple[str, ...]:
    """The texts in NFC, whatever form this source file was saved in."""
    return tuple(unicodedata.normalize("NFC", t) for t in texts)


SECTORS = nfc(
    "Tài nguyên và Môi trường", "Xây dựng", "Y tế", "Giáo dục và Đào tạo", "Công Thương",
    "Nông nghiệp", "Lao động - Thương binh và Xã hội", "Tài chính", "Giao thông vận tải",
)  # fmt: skip
NOTES = nfc(
    "Hồ sơ bổ sung lần 2", "Đã liên hệ đối tượng qua cổng thông tin", "Chuyển bộ phận một cửa",
    "Kiểm tra theo kế hoạch năm", "Bổ sung biên bản làm việc",
)  # fmt: skip
# Thanh Hóa's 2025 department merges; a successor column in the catalog would replace this.
SUCCESSORS = {
    "TH-S-KHDT": "TH-S-TC", "TH-S-NNPTNT": "TH-S-NNMT", "TH-S-TNMT": "TH-S-NNMT",
    "TH-S-GTVT": "TH-S-XD", "TH-S-TTTT": "TH-S-KHCN", "TH-S-LDTBXH": "TH-S-NV",
    "TH-BDT": "TH-S-DTTG",
}  # fmt: skip
# Inspection styles of agencies: P(all activities online), P(all in person); the rest hybrid.
STYLES = ((0.6, 0.15), (0.3, 0.35), (0.08, 0.72))
STYLE_WEIGHTS = (0.25, 0.45, 0.3)
DELIVERIES: tuple[Delivery, ...] = ("realtime", "hourly", "daily")
DELIVERY_WEIGHTS = (0.7, 0.2, 0.1)
INSPECTORATE = "TH-TTR"  # Thanh tra tỉnh: its inspections are thanh_tra; it has upgraded
RESOLUTION_DAYS = (3, 5, 7, 10, 12, 15)  # working days to the appointment, by procedure
RESOLUTION_WEIGHTS = (0.15, 0.25, 0.2, 0.2, 0.1, 0.1)


@dataclass(slots=True)
class Draft:
    """One event before delivery. ``publish_after``: index of an earlier draft of the same
    entity that must be published before this one (a straggler overtaken by its conclusion)."""

    kind: Kind
    occurred: datetime
    payload: dict[str, Any]
    publish_after: int | None = None


@dataclass(frozen=True, slots=True)
class AgencyProfile:
    weight: float  # Zipf weight within its kind
    style: tuple[float, float]  # P(inspection all online), P(all in person)
    on_time: float
    delivery: Delivery
    utc: bool  # sends timestamps in UTC (``Z``) instead of ``+07:00``
    millis: bool  # sends milliseconds
    sector: str
    v1: bool  # has not upgraded: sends service/1 dossiers and inspections without ``kind``


@dataclass(frozen=True, slots=True)
class ProcedureProfile:
    prefill: float  # P(at least one field prefilled); 0 for procedures that never prefill
    full_share: float  # P(every field prefilled | prefilled)
    fields: int
    full_process: float  # P(full_process | online); 0 unless eligible
    enterprise: float  # P(applicant is an enterprise)
    fee: bool  # a fee is paid (service/2: a ``paid`` event)
    resolution_days: int  # working days from reception to the appointment (``due_at``)


def _zipf(codes: list[str], rng: random.Random) -> dict[str, float]:
    order = sorted(codes)
    rng.shuffle(order)
    return {c: 1.0 / (rank + 1) ** 1.05 for rank, c in enumerate(order)}


class Traffic:
    """Profiles and shared helpers for one run. Stateful (id counter, caches): one per run."""

    def __init__(
        self,
        config: SimulationConfig,
        catalog: Catalog,
        rng: random.Random,
        services: list[Service] | None = None,
    ) -> None:
        """Raises ``ValueError`` if some day of the range has no valid agency at all."""
        self.cfg, self.rng = config, rng
        self.calendar = Calendar(config.start, config.end)
        self.agencies = dict(sorted(catalog.agencies.items()))
        self.procedures = [p for _, p in sorted(catalog.procedures.items())]
        prng = random.Random(rng.getrandbits(64))
        weights: dict[str, float] = {}
        for kind in ("province", "department", "district", "commune"):
            weights |= _zipf([a.code for a in self.agencies.values() if a.kind == kind], prng)
        self.profile = {
            c: self._agency_profile(a, weights[c], prng) for c, a in self.agencies.items()
        }
        proc_weights = _zipf([p.code for p in self.procedures], prng)
        self.procedure_cum = list(accumulate(proc_weights[p.code] for p in self.procedures))
        self.procedures_by_code = {p.code: p for p in self.procedures}
        order = [p.code for p in self.procedures]
        prng.shuffle(order)
        never = set(order[: self._never_count(len(order))])
        self.procedure_profile = {
            p.code: self._procedure_profile(p, p.code in never, prng) for p in self.procedures
        }
        self.services = ServiceBook(services or [], self.agencies, weights, proc_weights)
        self._bounds = sorted(
            {d for a in self.agencies.values() for d in (a.valid_from, a.valid_to) if d}
        )
        self._pools: dict[tuple[str, int], tuple[list[str], list[float]]] = {}
        self._seq = 0
        for day in (config.start, *self._bounds, config.end):
            if config.start <= day <= config.end and not self._pool(("*",), day)[0]:
                raise ValueError(f"the agency catalog has no agency valid on {day}")

    def _never_count(self, n: int) -> int:
        """How many procedures never prefill: the configured share, but at least one and never
        all of them when there are two or more (so coverage is below 100% yet measurable)."""
        share = self.cfg.never_prefill_share
        k = round(share * n)
        return min(max(k, 1 if share > 0 else 0), n - 1) if n >= 2 else k

    def _agency_profile(self, a: Agency, weight: float, rng: random.Random) -> AgencyProfile:
        sector = a.name.removeprefix("Sở ").strip() if a.name.startswith("Sở ") else ""
        return AgencyProfile(
            weight=weight,
            style=rng.choices(STYLES, STYLE_WEIGHTS)[0],
            on_time=min(max(self.cfg.on_time_rate + rng.uniform(-0.12, 0.12), 0.0), 1.0),
            delivery=rng.choices(DELIVERIES, DELIVERY_WEIGHTS)[0],
            utc=rng.random() < self.cfg.utc_share,
            millis=rng.random() < 0.15,
            sector=unicodedata.normalize("NFC", sector) or rng.choice(SECTORS),
            v1=a.code != INSPECTORATE and rng.random() < self.cfg.v1_agency_share,
        )

    def _procedure_profile(self, p: Procedure, never: bool, rng: random.Random) -> ProcedureProfile:
        return ProcedureProfile(
            prefill=0.0 if never else rng.choice((0.25, 0.6, 0.85)),
            full_share=rng.uniform(0.15, 0.5),
            fields=rng.randint(5, 40),
            full_process=rng.uniform(0.4, 0.95) if p.full_process_eligible else 0.0,
            enterprise=rng.choice((0.03, 0.05, 0.7)),
            fee=rng.random() < self.cfg.fee_share,
            resolution_days=rng.choices(RESOLUTION_DAYS, RESOLUTION_WEIGHTS)[0],
        )

    def _pool(self, kinds: tuple[str, ...], day: date) -> tuple[list[str], list[float]]:
        """Agencies of ``kinds`` (``*``: any) valid on ``day``, with cumulative Zipf weights.

        Cached per validity segment (validity only changes at a catalog date)."""
        key = ("|".join(kinds), bisect_right(self._bounds, day))
        if key not in self._pools:
            codes = [
                c
                for c, a in self.agencies.items()
                if a.valid_on(day) and ("*" in kinds or a.kind in kinds)
            ]
            self._pools[key] = (codes, list(accumulate(self.profile[c].weight for c in codes)))
        return self._pools[key]

    def pick(self, day: date, *groups: tuple[str, ...]) -> str:
        """A Zipf-weighted agency valid on ``day`` from the first group of kinds that has one
        (any valid agency as the last resort)."""
        for kinds in (*groups, ("*",)):
            codes, cum = self._pool(kinds, day)
            if codes:
                return self.rng.choices(codes, cum_weights=cum)[0]
        raise AssertionError("unreachable: the constructor checked every validity segment")

    def pick_procedure(self) -> Procedure:
        return self.rng.choices(self.procedures, cum_weights=self.procedure_cum)[0]

    def procedure_agency(self, proc: Procedure, day: date) -> str:
        """The agency that handles a dossier of ``proc`` submitted on ``day``."""
        if proc.level == "province":
            code: str | None = proc.agency
            for _ in range(len(SUCCESSORS) + 1):
                agency = self.agencies.get(code or "")
                if agency is not None and agency.valid_on(day):
                    return agency.code
                code = SUCCESSORS.get(code or "")
            return self.pick(day, ("department",), ("province",))
        if proc.level == "district":
            return self.pick(day, ("district",), ("commune",))
        return self.pick(day, ("commune",), ("district",))

    def inspection_kind(self, code: str) -> str | None:
        """The ``kind`` an agency's new inspection carries: ``thanh_tra`` for the inspectorate
        (and a small share elsewhere), else ``kiem_tra`` or absent; never sent by agencies that
        have not upgraded."""
        if code == INSPECTORATE:
            return "thanh_tra"
        if self.profile[code].v1:
            return None
        if self.rng.random() < self.cfg.thanh_tra_share:
            return "thanh_tra"
        return "kiem_tra" if self.rng.random() < 0.5 else None

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def head(self, schema: str, event_type: str, at: datetime, code: str) -> dict[str, Any]:
        """The fields every event starts with, formatted the way agency ``code`` sends them."""
        prof = self.profile[code]
        millis = self.rng.randrange(1000) if prof.millis else None
        return {
            "schema": schema,
            "event_id": self.event_id(),
            "event_type": event_type,
            "occurred_at": rfc3339(at, utc=prof.utc, millis=millis),
            "agency_code": code,
        }

    def note(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Sometimes add an unnamed free-text field, as agency systems do (kept, not refused)."""
        if self.rng.random() < self.cfg.extra_field_rate:
            payload["ghi_chu"] = self.rng.choice(NOTES)
        return payload
