"""The publisher SDK's send rate beside bare kafka-python's, measured side by side.

``measure_sdk_vs_bare(bootstrap, events)`` runs ``rounds`` pairs of runs, alternating which goes
first, each run on fresh topics (so neither writes behind the other's data), with the same
producer settings (the SDK's: idempotent, acks=all, its linger and batch size). The SDK gets
the events as given (dicts or bytes) and does all its work (serialise, validate, key, sign when
configured, bookkeeping, delivery callbacks); the bare producer gets the SDK's exact topic, key,
value and headers, prepared before its clock starts. Both clocks include the final flush.
Returns the medians (events/s). A measuring tool, not a test: it loads the machine.

``python -m producers.bench_sdk --bootstrap H:P [--events N] [--rounds R] [--sign]
[--kafka-partitioner]`` prints the figures (start a broker with ``parwatch broker``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.partitioner import DefaultPartitioner

from producers.preparation import Event, Preparer
from producers.publisher import Publisher, PublisherConfig
from schemas.signing import SigningKey
from schemas.topics import Topics


@dataclass(frozen=True)
class Comparison:
    sdk_eps: float
    bare_eps: float
    sdk_runs: tuple[float, ...]
    bare_runs: tuple[float, ...]

    @property
    def ratio(self) -> float:
        return self.sdk_eps / self.bare_eps


def _fresh_topics(bootstrap: str, partitions: int) -> Topics:
    suffix = uuid.uuid4().hex[:10]
    topics = Topics(f"bench-insp-{suffix}", f"bench-svc-{suffix}", f"bench-dl-{suffix}")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [NewTopic(t, partitions, 1) for t in (topics.inspections, topics.services)]
        )
    finally:
        admin.close()
    return topics


def _sdk_run(config: PublisherConfig, events: Sequence[Event]) -> float:
    with Publisher(config) as publisher:
        started = time.perf_counter()
        for e in events:
            publisher.publish(e)
        publisher.flush()
        elapsed = time.perf_counter() - started
        stats = publisher.stats()
    if stats.delivered != len(events) or stats.spooled:
        raise RuntimeError(f"SDK run incomplete: {stats}")
    return len(events) / elapsed


def _bare_run(options: dict[str, Any], records: Sequence[tuple[str, bytes, bytes, Any]]) -> float:
    producer = KafkaProducer(**options)
    try:
        for topic in {r[0] for r in records}:
            producer.partitions_for(topic)  # metadata first, as the SDK's connect does
        started = time.perf_counter()
        futures = [producer.send(t, key=k, value=v, headers=h) for t, k, v, h in records]
        producer.flush()
        elapsed = time.perf_counter() - started
    finally:
        producer.close()
    failed = sum(1 for f in futures if not f.succeeded())
    if failed:
        raise RuntimeError(f"bare run: {failed} sends failed")
    return len(records) / elapsed


def measure_sdk_vs_bare(
    bootstrap: str,
    events: Sequence[Event],
    *,
    rounds: int = 3,
    partitions: int = 6,
    known_agencies: Container[str] | None = None,
    signing_key: SigningKey | None = None,
    linger_ms: int | None = None,
    kafka_options: dict[str, Any] | None = None,
    spool_root: Path | None = None,
    say: Callable[[str], None] | None = None,
) -> Comparison:
    """Median events/s of the SDK and of bare kafka-python over ``rounds`` alternating pairs.

    Every event must be valid (a refusal raises ``PublishError``).
    """
    root = Path(spool_root or tempfile.mkdtemp(prefix="parwatch-bench-sdk-"))
    sdk_runs: list[float] = []
    bare_runs: list[float] = []
    for i in range(rounds):
        sdk_topics = _fresh_topics(bootstrap, partitions)
        bare_topics = _fresh_topics(bootstrap, partitions)
        config = PublisherConfig(
            bootstrap=bootstrap,
            topics=sdk_topics,
            spool_dir=root / f"spool-{i}",
            known_agencies=known_agencies,
            signing_key=signing_key,
            kafka_options=kafka_options or {},
        )
        if linger_ms is not None:
            config = replace(config, linger_ms=linger_ms)
        preparer = Preparer(bare_topics, known_agencies, config.max_event_bytes, signing_key)
        now = datetime.now(UTC)
        records = []
        for e in events:
            p = preparer.prepare(e, now)
            records.append((p.topic, p.key, p.value, list(p.headers)))
        options: dict[str, Any] = {
            "bootstrap_servers": bootstrap, "client_id": "parwatch-bench-bare",
            "enable_idempotence": True, "acks": "all", "linger_ms": config.linger_ms,
            "batch_size": config.batch_size, "allow_auto_create_topics": False,
            "request_timeout_ms": int(config.request_timeout_s * 1000),
            "max_block_ms": int(config.connect_timeout_s * 1000),
            "delivery_timeout_ms": int(config.delivery_timeout_s * 1000),
        }  # fmt: skip
        order = ("sdk", "bare") if i % 2 == 0 else ("bare", "sdk")
        for which in order:
            if which == "sdk":
                sdk_runs.append(_sdk_run(config, events))
            else:
                bare_runs.append(_bare_run(options, records))
        if say is not None:
            say(f"round {i + 1}: SDK {sdk_runs[-1]:,.0f}/s, bare {bare_runs[-1]:,.0f}/s, "
                f"ratio {sdk_runs[-1] / bare_runs[-1]:.2f}")  # fmt: skip
    return Comparison(
        statistics.median(sdk_runs), statistics.median(bare_runs), tuple(sdk_runs),
        tuple(bare_runs),
    )  # fmt: skip


def _events(n: int, seed: int) -> list[bytes]:
    from producers.simulator import SimulationConfig, simulate
    from schemas.catalog import load_catalog
    from schemas.decoding import decode
    from schemas.errors import InvalidEvent

    catalog = load_catalog()
    sim = simulate(SimulationConfig(seed=seed, events=n), catalog)
    now = datetime.now(UTC)
    out = []
    for m in sim.messages:
        try:
            decode(m.value, known_agency=catalog.agencies, now=now)
        except InvalidEvent:
            continue
        out.append(m.value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import json

    from schemas.catalog import load_catalog

    p = argparse.ArgumentParser(prog="python -m producers.bench_sdk", description=__doc__)
    p.add_argument("--bootstrap", required=True, help="a broker (e.g. from `parwatch broker`)")
    p.add_argument("--events", type=int, default=30_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sign", action="store_true", help="sign every event (one agency's test key)")
    p.add_argument("--linger-ms", type=int, help="both producers' linger (default the SDK's)")
    p.add_argument(
        "--kafka-partitioner",
        action="store_true",
        help="give the SDK kafka-python's DefaultPartitioner in kafka_options (so it leaves the "
        "partition choice to kafka-python, as the bare producer does)",
    )
    args = p.parse_args(argv)
    events = _events(args.events, args.seed)
    key = None
    if args.sign:  # the SDK signs for one agency: give every event that agency
        key = SigningKey("bench.1", "TH-S-TP", bytes(32))
        events = [
            json.dumps(
                {**json.loads(e), "agency_code": key.agency_code}, ensure_ascii=False
            ).encode()
            for e in events
        ]
    print(f"{len(events):,} valid events, {args.rounds} rounds", flush=True)
    result = measure_sdk_vs_bare(
        args.bootstrap, events, rounds=args.rounds, known_agencies=load_catalog().agencies,
        signing_key=key, linger_ms=args.linger_ms, say=lambda s: print(s, flush=True),
        kafka_options={"partitioner": DefaultPartitioner()} if args.kafka_partitioner else None,
    )  # fmt: skip
    sdk_us, bare_us = 1e6 / result.sdk_eps, 1e6 / result.bare_eps
    print(f"median: SDK {result.sdk_eps:,.0f}/s ({sdk_us:.1f} us/event), bare "
          f"{result.bare_eps:,.0f}/s ({bare_us:.1f} us/event), ratio {result.ratio:.2f}, "
          f"SDK's extra {sdk_us - bare_us:.1f} us/event")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
