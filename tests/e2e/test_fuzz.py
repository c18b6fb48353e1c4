"""Fuzzing the pipeline: 10,000+ generated payloads through the real broker and worker.

Payloads come from hypothesis strategies, drawn deterministically (``derandomize``) so a failure
reproduces: random bytes, invalid UTF-8, truncated and deeply nested JSON, huge strings, wrong
types, extreme numbers and timestamps, mutated valid events, and valid events (some sharing an
``event_id``, so duplicates occur). Every message must be accounted for, by its Kafka position,
as an accepted event, a duplicate, or a dead letter with the reason the contract gives it; and
the worker must still be running.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from producers.simulation.messages import message_key, topic_kind
from producers.simulation.raw import publish_raw
from schemas.catalog import load_catalog
from schemas.decoding import decode
from schemas.errors import InvalidEvent, Reason
from schemas.topics import Topics
from tests.conftest import make_inspection_event, make_service_event
from tests.e2e.conftest import Pipeline

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse]

AGENCIES = ("TH-S-TTTT", "TH-S-TP", "TH-S-YT", "TH-TTR")
ID_POOL = [str(uuid.UUID(int=i + 1)) for i in range(40)]  # shared ids: duplicates happen
MODES = ("on_site", "in_person_meeting", "video_conference", "remote_document_review",
         "information_system", "online_reporting", "by_carrier_pigeon")  # fmt: skip

json_leaf = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)  # fmt: skip
json_values = st.recursive(
    json_leaf,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event (by construction) of either schema, on a small set of entities."""
    agency = draw(st.sampled_from(AGENCIES))
    event_id = draw(st.sampled_from(ID_POOL) | st.uuids().map(str))
    day = draw(st.integers(0, 700))
    at = datetime(2024, 1, 1, 8, tzinfo=timezone(timedelta(hours=7))) + timedelta(days=day)
    common = {"agency_code": agency, "event_id": event_id, "occurred_at": at.isoformat()}
    if draw(st.booleans()):
        kind = draw(st.sampled_from(("opened", "activity", "concluded", "cancelled")))
        extra: dict[str, Any] = {}
        if kind == "activity":
            extra["activity"] = {"mode": draw(st.sampled_from(MODES[:-1])), "system_code": None}
        return make_inspection_event(
            event_type=kind, inspection_id=f"KT-{draw(st.integers(0, 30))}", **common, **extra
        )
    event = make_service_event(dossier_id=f"HS-{draw(st.integers(0, 30))}", **common)
    total = draw(st.integers(1, 40))
    event["form"] = {"fields_total": total, "fields_prefilled": draw(st.integers(0, total))}
    return event


def dumps(event: Any, ascii_only: bool = False) -> bytes:
    return json.dumps(event, ensure_ascii=ascii_only).encode()


# Each strategy produces the exact bytes of one message.
random_bytes = st.binary(max_size=600)
truncated = st.tuples(valid_events(), st.floats(0, 1)).map(
    lambda t: dumps(t[0])[: int(len(dumps(t[0])) * t[1])]
)


@st.composite
def invalid_utf8(draw: st.DrawFn) -> bytes:
    """A valid event with an invalid UTF-8 sequence spliced in somewhere."""
    raw = dumps(draw(valid_events()), draw(st.booleans()))
    bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80", b"\xf5\x80"]))
    at = draw(st.integers(0, len(raw)))
    return raw[:at] + bad + raw[at:]


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 4000))
    shape = draw(st.sampled_from(("list", "object", "in_event", "in_activity")))
    if shape == "list":
        return b"[" * depth + b"]" * depth
    inner = '{"a":' * depth + "1" + "}" * depth
    if shape == "object":
        return inner.encode()
    event = draw(valid_events())
    text = json.dumps(event)
    field = '"activity":' if shape == "in_activity" and '"activity":' in text else '"ghi_chu":'
    if field == '"ghi_chu":':
        return (text[:-1] + f', "ghi_chu": {inner}}}').encode()
    return text.replace(field, f'"activity": {inner}, "x":', 1).encode()


@st.composite
def huge_strings(draw: st.DrawFn) -> bytes:
    event = draw(valid_events())
    size = draw(st.integers(5_000, 150_000))
    char = draw(st.sampled_from(["x", "ệ", "\u0301", "\\"]))
    field = draw(st.sampled_from(["sector", "ghi_chu", "inspection_id", "dossier_id", "schema"]))
    event[field] = char * size
    return dumps(event, draw(st.booleans()))


@st.composite
def wrong_types(draw: st.DrawFn) -> bytes:
    event = draw(valid_events())
    field = draw(st.sampled_from(sorted(event) + ["form", "activity", "applicant", "on_time"]))
    event[field] = draw(json_values)
    return dumps(event, draw(st.booleans()))


offsets = st.integers(-(24 * 60) + 1, 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
extreme_times = st.one_of(
    st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=offsets).map(
        lambda d: d.isoformat()
    ),
    st.sampled_from([
        "1969-12-31T23:59:59+00:00", "1970-01-01T00:00:00Z", "2024-06-30T23:59:60+07:00",
        "2024-02-30T10:00:00+07:00", "2024-06-01T08:00:00+25:00", "2024-06-01T08:00:00",
        "2024-06-01", "", "now", "2262-04-11T23:47:16.854775807+00:00", "+275760-09-13T00:00Z",
    ]),
    st.integers(-(2**63), 2**63).map(str),
)  # fmt: skip
extreme_numbers = st.one_of(
    st.integers(-(2**80), 2**80),
    st.sampled_from([2**31 - 1, 2**31, 2**63, -1, 0, 10**400]),
    st.floats(),  # NaN and infinities too: not JSON
)


@st.composite
def extremes(draw: st.DrawFn) -> bytes:
    event = draw(valid_events())
    if draw(st.booleans()):
        event["occurred_at"] = draw(extreme_times)
    elif event["schema"] == "service/1":
        event["form"] = {"fields_total": draw(extreme_numbers),
                         "fields_prefilled": draw(extreme_numbers)}  # fmt: skip
    else:
        event["sector"] = draw(extreme_numbers)
    return json.dumps(event).encode()  # allow_nan: NaN / Infinity reach the pipeline


MUTATIONS: dict[str, Callable[[dict[str, Any], Any], None]] = {
    "drop": lambda e, v: e.pop(sorted(e)[v % len(e)], None),
    "unnamed": lambda e, v: e.__setitem__(f"x_{v % 5}", v),
    "pii": lambda e, v: e.__setitem__("ghi_chu", f"SĐT 09{v % 10**8:08d} CCCD 0381{v % 10**8:08d}"),
    "schema": lambda e, v: e.__setitem__("schema", ["inspection/2", "service/0", 1, None][v % 4]),
    "agency": lambda e, v: e.__setitem__("agency_code", f"TH-KHONG-{v % 3}"),
    "future": lambda e, v: e.__setitem__("occurred_at", "2099-01-01T00:00:00+07:00"),
    "type": lambda e, v: e.__setitem__("event_type", ["opened", "submitted", "completed"][v % 3]),
    "channel": lambda e, v: e.__setitem__("channel", ["online", "counter", "fax"][v % 3]),
    "mode": lambda e, v: e.__setitem__("activity", {"mode": MODES[v % len(MODES)]}),
    "uuid": lambda e, v: e.__setitem__("event_id", str(e.get("event_id", "")).upper()),
    "nfd": lambda e, v: e.__setitem__("sector", "Tha\u0300nh Ho\u0301a"),
}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    event = draw(valid_events())
    for name in draw(st.lists(st.sampled_from(sorted(MUTATIONS)), min_size=1, max_size=3)):
        MUTATIONS[name](event, draw(st.integers(0, 2**40)))
    return dumps(event, draw(st.booleans()))


CATEGORIES: dict[str, tuple[st.SearchStrategy[bytes], int]] = {
    "random_bytes": (random_bytes, 1200),
    "invalid_utf8": (invalid_utf8(), 800),
    "truncated": (truncated, 1200),
    "nested": (nested(), 400),
    "huge_strings": (huge_strings(), 50),
    "wrong_types": (wrong_types(), 1800),
    "extremes": (extremes(), 1600),
    "mutated": (mutated(), 1800),
    "valid": (valid_events().map(dumps), 1200),
}


def generate() -> list[tuple[str, bytes]]:
    """(category, payload) pairs: the same ones on every run (derandomized hypothesis)."""
    out: list[tuple[str, bytes]] = []
    for name, (strategy, count) in CATEGORIES.items():
        collect = cast(Callable[[], None], settings(
            max_examples=count, derandomize=True, database=None, deadline=None,
            phases=[Phase.generate], suppress_health_check=list(HealthCheck),
        )(given(strategy)(_collector(name, out))))  # fmt: skip
        collect()
    return out


def _collector(name: str, out: list[tuple[str, bytes]]) -> Callable[[bytes], None]:
    def collect(payload: bytes) -> None:
        out.append((name, payload))

    return collect


def verdict(raw: bytes, known: Any, now: datetime) -> str:
    try:
        decode(raw, known_agency=known, now=now)
    except InvalidEvent as refusal:
        return refusal.reason.value
    return "valid"


def entity_key(raw: bytes, known: Any, now: datetime) -> bytes | None:
    """The key the worker partitions a valid event by (its fields after validation, NFC
    included); a refused payload's key as a client would guess it from the raw JSON."""
    try:
        return decode(raw, known_agency=known, now=now).key.encode()
    except InvalidEvent:
        return message_key(raw)


def test_ten_thousand_fuzzed_payloads_are_each_accounted_for(
    pipeline: Pipeline, topics: Topics
) -> None:
    started = time.monotonic()
    payloads = generate()
    generated_s = time.monotonic() - started
    assert len(payloads) >= 10_000, Counter(c for c, _ in payloads)
    known = load_catalog().agencies
    now = datetime.now(UTC)
    messages = []
    for i, (_, raw) in enumerate(payloads):
        kind = topic_kind(raw) if b'"schema"' in raw else ("inspection", "service")[i % 2]
        messages.append((kind, entity_key(raw, known, now), raw))

    pipeline.start_worker()
    positions: list[tuple[str, int, int]] = []
    publish_raw(pipeline.env["PARWATCH_KAFKA_BOOTSTRAP"], topics, messages, positions=positions,
                kafka_options={"max_request_size": 2**21})  # fmt: skip
    expected = {
        pos: verdict(raw, known, now) for pos, (_, _, raw) in zip(positions, messages, strict=True)
    }
    status = pipeline.wait_for(len(messages), timeout_s=180)
    assert pipeline.proc is not None and pipeline.proc.poll() is None, "the worker stopped"
    results = status["by_result"]
    assert sum(results.values()) == len(messages) == status["messages"], results
    assert results.get("redelivered", 0) == 0
    assert results.get("forwarded", 0) == 0  # each valid event was sent with its entity key
    assert pipeline.stop_worker() == 0

    def positions_of(table: str, extra: str = "") -> dict[tuple[str, int, int], Any]:
        rows = pipeline.cli_json("sql", "--json", f"SELECT _topic, _partition, _offset{extra} "
                                 f"FROM {table} FINAL")  # fmt: skip
        return {(r["_topic"], r["_partition"], r["_offset"]): r for r in rows}

    dead = positions_of("dead_letters", ", reason")
    duplicates = positions_of("duplicates", ", event_id")
    accepted = positions_of("inspection_events") | positions_of("service_events")
    assert len(dead) == results["refused"]
    assert len(duplicates) == results["duplicate"]
    assert len(accepted) == results["accepted"]
    # Every published position is in exactly one of the three.
    assert not (dead.keys() & duplicates.keys() or dead.keys() & accepted.keys()
                or duplicates.keys() & accepted.keys())  # fmt: skip
    assert dead.keys() | duplicates.keys() | accepted.keys() == set(positions)
    # Refusals: a reason of the closed set, the one the contract gives that payload.
    reasons = {r.value for r in Reason}
    wrong = {p: (d["reason"], expected[p]) for p, d in dead.items() if d["reason"] != expected[p]}
    assert not wrong, list(wrong.items())[:5]
    assert all(d["reason"] in reasons for d in dead.values())
    # Valid payloads (mutated ones that stayed valid included) are accepted or duplicates.
    valid = {p for p, v in expected.items() if v == "valid"}
    assert valid == accepted.keys() | duplicates.keys()
    by_category = Counter((c, expected[p]) for (c, _), p in zip(payloads, positions, strict=True))
    seen_reasons = Counter(d["reason"] for d in dead.values())
    for reason in ("malformed_json", "unsupported_schema", "invalid_event", "unknown_agency",
                   "future_timestamp", "pii_detected"):  # fmt: skip
        assert seen_reasons[reason] >= 10, seen_reasons
    assert by_category[("mutated", "valid")] >= 100, by_category
    assert results["duplicate"] >= 20 and results["accepted"] >= 1000, results
    print(f"generated {len(payloads)} payloads in {generated_s:.1f} s; {dict(results)}; "
          f"refusals {dict(seen_reasons)}")  # fmt: skip
