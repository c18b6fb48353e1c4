"""The traffic simulator behind ``parwatch simulate``: realistic agency events and their truth.

``simulate(config, catalog)`` returns exactly ``config.events`` messages, in publish order, and the
KPIs they must produce (``schemas.kpi.reference_kpis`` over the accepted events): inspections,
dossiers (``service/2`` lifecycles, ``service/1`` from agencies that have not upgraded) and, up to
``offering_share`` of the messages, the ``offering/1`` events of the services chosen from the
province's bundled offering catalog (``services``), which the dossiers then go to. Delivery is
realistic: agencies publish in real time, hourly or in a daily batch (offerings: the portal, in
real time); some events arrive weeks late; some are sent twice (same bytes, same ``event_id``),
at once or days later; an activity may be delivered after its inspection's conclusion. With
``invalid_share`` > 0, that fraction of the messages is refused by ``schemas.decode`` for each
injected reason in turn.

Deterministic: the same config and catalog give byte-identical messages and truth in any process
(one ``random.Random(seed)``; no clock, no hash-ordered iteration).
"""

from __future__ import annotations

import heapq
import json
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from producers.simulation.config import SimulationConfig
from producers.simulation.dossiers import dossier
from producers.simulation.inspections import inspection
from producers.simulation.messages import Message, read_jsonl, topic_kind, write_messages
from producers.simulation.office_hours import rfc3339
from producers.simulation.refusals import REFUSAL_REASONS, encode, refused_payload
from producers.simulation.services import Service, choose_services, local
from producers.simulation.summary import Tally, describe
from producers.simulation.traffic import Draft, Traffic
from schemas.catalog import Catalog
from schemas.decoding import decode
from schemas.errors import InvalidEvent
from schemas.events import LatestEvent
from schemas.kpi import KpiRow, reference_kpis, rows_to_json
from schemas.offering_catalog import OfferingLine, bundled_offerings, offering_event
from schemas.periods import PeriodKind

__all__ = [
    "Message",
    "Simulation",
    "SimulationConfig",
    "describe",
    "iter_messages",
    "read_jsonl",
    "simulate",
    "write_jsonl",
    "write_truth",
]

TRUTH_KINDS: tuple[PeriodKind, ...] = ("month", "quarter", "year")
"""The period kinds of the truth (the warehouse has days too; the truth leaves them out)."""
_EPOCH = datetime(2000, 1, 1)  # publish times: seconds of local time since then
_DAY = 86400.0


@dataclass(frozen=True)
class Simulation:
    """A finished run. ``truth`` is ``reference_kpis`` (month, quarter, year) over the accepted
    messages decoded at ``now``; ``duplicates`` counts re-sent messages (an ``event_id`` seen
    before); ``expected_refusals`` the injected refusals per reason (every injected reason)."""

    config: SimulationConfig
    now: datetime
    messages: list[Message]
    truth: list[KpiRow]
    duplicates: int
    expected_refusals: dict[str, int]
    counts: dict[str, int]


class _Run:
    """One generation pass. Publish order is exact publish-time order: entities are started in
    time order and every event is published after its entity started, so a min-heap of pending
    messages can be flushed up to each new entity's start."""

    def __init__(
        self, config: SimulationConfig, catalog: Catalog, offerings: Sequence[OfferingLine] | None
    ) -> None:
        self.cfg = config
        self.rng = random.Random(config.seed)
        self.n_invalid = round(config.invalid_share * config.events)
        self.services = choose_services(
            bundled_offerings() if offerings is None else offerings,
            agencies=catalog.agencies,
            procedures=catalog.procedures,
            start=config.start,
            end=config.end,
            budget=round(config.offering_share * (config.events - self.n_invalid)),
        )
        self.traffic = Traffic(config, catalog, self.rng, self.services)
        self.now = config.processing_now
        self.duplicates = 0
        self.refusals = {r.value: 0 for r in REFUSAL_REASONS}
        self._heap: list[tuple[float, int, Message]] = []
        self._seq = 0

    def _push(self, publish: float, message: Message) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (publish, self._seq, message))

    def _flush(self, until: float) -> Iterator[Message]:
        while self._heap and self._heap[0][0] < until:
            yield heapq.heappop(self._heap)[2]

    def _publish_time(self, d: Draft) -> float:
        rng = self.rng
        ts = (d.occurred - _EPOCH).total_seconds()
        delivery = self.traffic.profile[d.payload["agency_code"]].delivery
        if d.kind == "offering":
            delivery = "realtime"  # the portal publishes a change as it takes effect
        if delivery == "hourly":
            return ts - ts % 3600 + 3600 + rng.uniform(0, 300)
        if delivery == "daily":  # a nightly export, sent next morning
            return ts - ts % _DAY + _DAY + 6 * 3600 + rng.uniform(0, 1800)
        return ts + rng.uniform(1, 120)

    def _deliver(self, drafts: list[Draft], room: int) -> None:
        """Schedule an entity's drafts (and duplicates); keep only the first ``room`` messages."""
        rng, cfg = self.rng, self.cfg
        scheduled: list[tuple[float, Message, bool]] = []
        published: list[float] = []
        for d in drafts:
            message = Message(d.kind, encode(d.payload))
            publish = self._publish_time(d)
            if d.publish_after is not None:
                publish = max(publish, published[d.publish_after] + rng.uniform(3600, 3 * _DAY))
            if rng.random() < cfg.late_rate:
                publish += rng.uniform(7, 42) * _DAY
            published.append(publish)
            scheduled.append((publish, message, False))
            if rng.random() < cfg.duplicate_rate:
                late = rng.random() < cfg.late_duplicate_share
                gap = rng.uniform(1, 30) * _DAY if late else rng.uniform(0.5, 30)
                scheduled.append((publish + gap, message, True))
        for publish, message, duplicate in scheduled[:room]:
            self.duplicates += duplicate
            self._push(publish, message)

    def _offering_drafts(self, service: Service) -> list[Draft]:
        """A service's offering events: the catalog's own objects (deterministic ``event_id``),
        in the agency's time format, sometimes with an unnamed field."""
        t = self.traffic
        drafts = []
        for line in service.lines:
            payload: dict[str, Any] = dict(offering_event(line))
            occurred = local(line.effective_at)
            if t.profile[line.agency_code].utc:
                payload["occurred_at"] = rfc3339(occurred, utc=True)
            drafts.append(Draft("offering", occurred, t.note(payload)))
        return drafts

    def _refused(self, t0: datetime, progress: float, k: int) -> None:
        rng = self.rng
        reason = REFUSAL_REASONS[k % len(REFUSAL_REASONS)]
        r = rng.random()
        if self.services and r < self.cfg.offering_share:
            drafts = self._offering_drafts(self.services[rng.randrange(len(self.services))])
            drafts[0].payload["event_id"] = self.traffic.event_id()  # not the catalog's own
        else:
            build = inspection if r < self.cfg.inspection_share else dossier
            drafts = build(self.traffic, t0, progress)
        base = drafts[rng.randrange(len(drafts))].payload
        raw = refused_payload(
            reason, base, known_agencies=self.traffic.agencies, now=self.now, rng=rng
        )
        self.refusals[reason.value] += 1
        self._push(
            (t0 - _EPOCH).total_seconds() + rng.uniform(0, 600), Message(topic_kind(raw), raw)
        )

    def messages(self) -> Iterator[Message]:
        cfg, rng, traffic = self.cfg, self.rng, self.traffic
        n_invalid = self.n_invalid
        budget = cfg.events - n_invalid
        for service in self.services:  # the services' lines take up to offering_share
            before = self._seq
            self._deliver(self._offering_drafts(service), budget)
            budget -= self._seq - before
        made = made_inspection = refused = 0
        t0 = traffic.calendar.at_fraction(0.0, rng)
        while made < budget:
            t0 = traffic.calendar.at_fraction((made + rng.random()) / budget, rng)
            yield from self._flush((t0 - _EPOCH).total_seconds())
            progress = made / budget
            inspect = not traffic.procedures or (
                cfg.inspection_share > 0 and made_inspection <= cfg.inspection_share * made
            )
            before = self._seq
            self._deliver(
                (inspection if inspect else dossier)(traffic, t0, progress), budget - made
            )
            made += self._seq - before
            made_inspection += (self._seq - before) if inspect else 0
            while refused < n_invalid * made / budget:
                self._refused(t0, progress, refused)
                refused += 1
        while refused < n_invalid:
            self._refused(t0, 1.0, refused)
            refused += 1
        yield from self._flush(float("inf"))


def iter_messages(
    config: SimulationConfig, catalog: Catalog, offerings: Sequence[OfferingLine] | None = None
) -> Iterator[Message]:
    """The messages of ``simulate(config, catalog, offerings)``, in publish order, generated
    lazily. Memory holds the offering events and the messages not yet due (about a day of
    traffic plus late ones). Raises ``ValueError`` at once if the catalog has a day without any
    valid agency.
    """
    return _Run(config, catalog, offerings).messages()


def simulate(
    config: SimulationConfig, catalog: Catalog, offerings: Sequence[OfferingLine] | None = None
) -> Simulation:
    """Generate the messages and compute their truth (see the module docstring).

    ``offerings``: the offering catalog's lines to choose services from (default: the bundled
    catalog, ``schemas.offering_catalog.bundled_offerings()``); lines of agencies or procedures
    that ``catalog`` lacks are left out. Raises ``RuntimeError`` if decoding disagrees with what
    was generated (a simulator bug).
    """
    run = _Run(config, catalog, offerings)
    messages = list(run.messages())
    tally = Tally()
    refused: Counter[str] = Counter()
    seen: set[object] = set()

    def accepted() -> Iterator[LatestEvent]:
        for m in messages:
            try:
                event = decode(m.value, known_agency=catalog.agencies, now=run.now)
            except InvalidEvent as exc:
                refused[exc.reason.value] += 1
                continue
            if event.event_id not in seen:
                seen.add(event.event_id)
                tally.add(event)
            yield event

    truth = reference_kpis(
        accepted(),
        kinds=TRUTH_KINDS,
        hybrid_counts_as_online=config.hybrid_counts_as_online,
        eligible_procedures={c for c, p in catalog.procedures.items() if p.full_process_eligible},
    )
    accepted_total = len(messages) - sum(refused.values())
    if {k: v for k, v in run.refusals.items() if v} != dict(refused) or (
        accepted_total - len(seen) != run.duplicates
    ):
        raise RuntimeError(
            f"simulator bug: refused {dict(refused)} vs injected {run.refusals}, "
            f"{accepted_total - len(seen)} duplicates decoded vs {run.duplicates} sent"
        )
    return Simulation(
        config=config,
        now=run.now,
        messages=messages,
        truth=truth,
        duplicates=run.duplicates,
        expected_refusals=dict(run.refusals),
        counts=tally.counts(),
    )


def write_jsonl(messages: Simulation | Iterable[Message], path: Path) -> int:
    """Write each message value on its own line (see ``messages.write_messages``)."""
    return write_messages(messages.messages if isinstance(messages, Simulation) else messages, path)


def write_truth(sim: Simulation, path: Path) -> None:
    """The truth as a JSON list in the ``rows_to_json`` shape (UTF-8, indent 1, final newline)."""
    text = json.dumps(rows_to_json(sim.truth), ensure_ascii=False, indent=1) + "\n"
    Path(path).write_text(text, encoding="utf-8")
