"""Entity states rebuilt from the warehouse: the worker's source of truth after a restart.

The worker commits a Kafka offset only after the rows of every message before it are in
ClickHouse, so the raw event tables hold every event the committed offsets cover (and perhaps a
few more, written just before a crash and not yet committed). Replaying an entity's stored events
through the pure classifiers gives its state exactly: the classifiers are order-independent and
remember each event's Kafka position, so the uncommitted messages that come again are recognised
as redeliveries, not duplicates. Nothing else (no changelog topic, no local disk) has to survive a
crash or follow a partition to another worker.

No FINAL: a row written twice (a batch retried after a crash) is the same event at the same
position, which the classifiers apply once; the primary key (agency_code, entity id) serves the
lookup. Events are replayed in Kafka order (partition, offset), the order they were applied in:
the one order-dependent rule (an inspection's ``kind`` when two events carrying it share an
``occurred_at``: the one applied later) comes out as it did live.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from clickhouse_connect.driver.binding import format_query_value
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from pydantic import ValidationError

from schemas.events import EVENT_ADAPTER, AnyEvent, upgrade
from schemas.fastpath import FAST_ADAPTER, nfc_safe
from schemas.inspection import InspectionEventV1
from schemas.lifecycle import stored_facts
from schemas.offering import OfferingEventV1
from streams.warehouse.client import WarehouseError
from streams.worker.classify import (
    DossierState,
    InspectionState,
    OfferingState,
    apply_inspection,
    apply_offering,
    apply_service,
)

# How many keys one query asks for (the IN lists are sent in the query text).
CHUNK = 5000

# Where an entity's events are: (table, entity id column); the entity key is
# f"{agency_code}:{entity id}", as the Kafka key. ``known`` reads the same pairs.
INSPECTION_EVENTS = ("inspection_events", "inspection_id")
SERVICE_EVENTS = ("service_events", "dossier_id")
OFFERING_EVENTS = ("offering_events", "procedure_code")
ENTITY_TABLES = (INSPECTION_EVENTS, SERVICE_EVENTS, OFFERING_EVENTS)


def _strings(values: Collection[str]) -> str:
    """A ClickHouse list literal of strings, quicker than ``format_query_value`` for plain
    text (that one costs about 3 us a value; a batch can ask for thousands)."""
    parts = []
    for v in values:
        if "'" in v or "\\" in v or not v.isprintable():
            parts.append(format_query_value(v))
        else:
            parts.append(f"'{v}'")
    return "(" + ",".join(parts) + ")"


# What a dossier's state is rebuilt from, per stored service event: the columns that
# ``lifecycle.stored_facts`` reads (instants as milliseconds), then the event id.
FACT_COLUMNS = (
    "event_type, toUnixTimestamp64Milli(occurred_at), procedure_code, schema, channel, "
    "service_level, fields_total, fields_prefilled, toUnixTimestamp64Milli(due_at), digitized, "
    "reused_components, on_time, result_electronic, payment_channel, event_id"
)


def _rows(
    client: Client, table: str, entity_col: str, keys: list[tuple[str, str]],
    columns: str = "payload",
) -> list[Any]:  # fmt: skip
    """The stored events (``columns``..., partition, offset) of the (agency_code, entity id)
    pairs ``keys``, in Kafka order. Asked for as two plain IN lists (agencies, ids), both on the
    primary key, then the pairs are checked here: a tuple IN list takes ClickHouse about three
    times as long to read."""
    out: list[Any] = []
    for i in range(0, len(keys), CHUNK):
        wanted = set(keys[i : i + CHUNK])
        agencies = _strings(sorted({a for a, _ in wanted}))
        ids = _strings(sorted({e for _, e in wanted}))
        sql = (
            f"SELECT agency_code, {entity_col}, {columns}, _partition, _offset FROM {table} "
            f"WHERE agency_code IN {agencies} AND {entity_col} IN {ids}"
        )
        try:
            result = client.query(sql).result_rows
        except ClickHouseError as exc:
            raise WarehouseError(f"reading states from {table} failed: {exc}") from exc
        out.extend(r for r in result if (r[0], r[1]) in wanted)
    out.sort(key=lambda r: (r[-2], r[-1]))  # (partition, offset): the order applied live
    return out


def _event(payload: str) -> AnyEvent:
    """A stored payload (accepted once) as its event: the fast models first (``fastpath``)."""
    raw = payload.encode()
    if nfc_safe(raw):
        try:
            return upgrade(FAST_ADAPTER.validate_json(raw))
        except ValidationError:
            pass
    return upgrade(EVENT_ADAPTER.validate_json(raw))


def load_states(
    client: Client,
    inspections_wanted: Collection[tuple[str, str]],
    dossiers_wanted: Collection[tuple[str, str]],
) -> tuple[dict[str, InspectionState], dict[str, DossierState]]:
    """The states (by entity key) of the (agency_code, inspection_id) and
    (agency_code, dossier_id) pairs that have events in the warehouse. An inspection's are its
    stored events applied again, so its activities (``activity_log``, written to the
    classification's ``activities_at`` and ``activities_online``) come back as they were live.
    A dossier's are read from its events' columns (``FACT_COLUMNS``), not their payloads: no
    JSON to validate."""
    inspections: dict[str, InspectionState] = {}
    for _, _, payload, partition, offset in _rows(
        client, *INSPECTION_EVENTS, sorted(inspections_wanted)
    ):
        ev = _event(payload)
        assert isinstance(ev, InspectionEventV1)
        state = inspections.get(ev.key, InspectionState())
        inspections[ev.key], _ = apply_inspection(state, ev, (int(partition), int(offset)))
    dossiers: dict[str, DossierState] = {}
    for row in _rows(client, *SERVICE_EVENTS, sorted(dossiers_wanted), FACT_COLUMNS):
        key = f"{row[0]}:{row[1]}"
        facts = stored_facts(*row[2:16])
        dossier = dossiers.get(key) or DossierState()
        position = (int(row[17]), int(row[18]))
        dossiers[key], _ = apply_service(dossier, row[16].int, position, facts)
    return inspections, dossiers


def load_offering_states(
    client: Client, wanted: Collection[tuple[str, str]]
) -> dict[str, OfferingState]:
    """The states (by service key) of the (agency_code, procedure_code) pairs that have
    offering events in the warehouse."""
    services: dict[str, OfferingState] = {}
    for _, _, payload, partition, offset in _rows(client, *OFFERING_EVENTS, sorted(wanted)):
        ev = _event(payload)
        assert isinstance(ev, OfferingEventV1)
        state = services.get(ev.key, OfferingState())
        services[ev.key], _ = apply_offering(state, ev, (int(partition), int(offset)))
    return services
