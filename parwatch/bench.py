"""``parwatch bench``: the pipeline's speed beside the speed of the broker and client alone.

One run, on fresh topics, a fresh consumer group and a fresh warehouse:

1. publish N simulated messages (the realistic mix: invalid ones and duplicates), untimed;
2. baseline: a bare aiokafka consumer reads them all, ``json.loads`` on each value;
3. pipeline: a ``parwatch worker`` process (run through its command line, whatever its
   internals are) makes the same N messages durable in the warehouse; with the engine
   ``both``, a worker of the Faust engine then does the same with the same N messages (its own
   consumer group and warehouse), and the batch engine's worker serves the later phases;
4. memory: the worker's RSS after N messages, and after 3N more (4N); its peak;
5. latency: messages published at a steady rate; per event, publish time to ``_inserted_at``
   (the server's clock when the insert that made the row queryable ran);
6. publisher: the SDK's send rate beside a bare kafka-python producer's, same events, same
   producer settings; five pairs of runs in alternating order, medians reported. The SDK
   publishes as ``parwatch publish`` does (``Publisher.publish_many``, ``CHUNK_LINES`` events a
   call: ``PUBLISHER_PATH``).

``BenchOptions.only == "publisher"`` runs the publisher phase alone, on the same events as a
full run (the first M of the N simulated), and skips every other phase and the check.

Every result carries the machine it was measured on: the processor's model, the cores, and the
1-minute load average when the run started and when it ended.

Throughput is counted in messages (every message the worker must handle, refused or not).
Rates exclude fixed start-up costs: both are measured from the first batch out (the
baseline's first ``getmany`` batch, the worker's first durable flush, from the ``updated_at``
of its status file) to the last message, over the messages after that first batch; the totals
from process or consumer start are reported beside them. When N is so small that everything
arrives in the first batch, both fall back to the totals (``ratio_basis`` says which).

Blocking, single-threaded; progress lines go to ``say`` and ``Progress`` (stderr). Failures
raise ``BenchError`` with one line. Everything it creates (topics, consumer groups, database) is
uniquely named; the embedded broker and the work folder go away at the end unless kept.
"""

from __future__ import annotations

import asyncio
import gc
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from clickhouse_connect.driver.exceptions import ClickHouseError
from kafka.errors import KafkaError

from parwatch import wiring
from parwatch.bench_probes import (
    BenchError,
    accepted_event_ids,
    bare_producer_rate,
    consume_all,
    create_topics,
    delete_topics,
    paced_publish,
    percentile,
    sdk_rate,
    topic_for,
)
from parwatch.broker import EmbeddedBroker, TopicSpec
from parwatch.errors import UsageError
from parwatch.progress import Progress
from parwatch.settings import Settings
from parwatch.worker_process import WorkerProcess
from producers.sdk.bulk import CHUNK_LINES
from producers.simulation.messages import Message
from producers.simulation.raw import publish_raw
from producers.simulation.simulator import SimulationConfig, simulate
from schemas.topics import Topics

RSS_SETTLE_S = 5.0
PUBLISHER_ROUNDS = 5  # SDK/bare pairs; the medians are reported
BASELINE_READS = 3  # reads of the N messages; the median read is the baseline
PUBLISHER_PATH = f"Publisher.publish_many, {CHUNK_LINES:,} events a call, as parwatch publish"


@dataclass(frozen=True)
class BenchOptions:
    events: int = 200_000
    rate: float = 500.0
    duration_s: float = 60.0
    publisher_events: int | None = None  # default min(events, 60_000)
    seed: int = 2024
    invalid_share: float = 0.01
    keep: bool = False
    engine: Literal["batch", "faust", "both"] = "batch"  # both: batch, then faust, same events
    only: Literal["", "publisher"] = ""  # "publisher": that phase alone, nothing else


@dataclass
class BenchResult:
    """The figures of one run (keys of ``--json``; BENCH.md explains each). Rates are messages
    a second, times seconds, memory MiB."""

    events: int
    baseline_events_per_s: float = 0.0
    pipeline_events_per_s: float = 0.0
    ratio: float = 0.0
    latency_p50_s: float = 0.0
    latency_p95_s: float = 0.0
    latency_p99_s: float = 0.0
    rss_after_n_mb: float = 0.0
    rss_after_4n_mb: float = 0.0
    publisher_events_per_s: float = 0.0
    bare_producer_events_per_s: float = 0.0
    # Extras
    ratio_basis: Literal["first-batch", "total"] = "first-batch"
    baseline_s: float = 0.0
    baseline_total_s: float = 0.0
    baseline_reads_per_s: list[float] = field(default_factory=list)  # each read's rate
    pipeline_s: float = 0.0
    pipeline_total_s: float = 0.0
    # CPU of the worker's process tree (all threads, the decoding process included) over the
    # same span as pipeline_events_per_s, per message: unlike the rate, without waits for a core
    pipeline_cpu_us_per_msg: float = 0.0
    worker_ready_s: float = 0.0
    latency_events: int = 0
    latency_missing: int = 0
    latency_offered_per_s: float = 0.0
    latency_max_s: float = 0.0
    rss_peak_mb: float = 0.0
    publisher_events: int = 0
    publisher_refused: int = 0
    publisher_runs_per_s: list[float] = field(default_factory=list)
    bare_producer_runs_per_s: list[float] = field(default_factory=list)
    warehouse_check: dict[str, int] = field(default_factory=dict)
    verified: bool = False
    broker: str = ""
    warehouse: str = ""
    engine: str = "batch"  # the engine of the pipeline, memory and latency figures
    # With --engine both: the Faust engine on the same N events (its own group and warehouse).
    faust_events_per_s: float = 0.0
    faust_ratio: float = 0.0
    faust_s: float = 0.0
    faust_total_s: float = 0.0
    batch_over_faust: float = 0.0
    publisher_path: str = PUBLISHER_PATH
    only: str = ""
    cpu_model: str = ""
    cpu_count: int = 0
    load_average_1m: float = 0.0  # at start
    load_average_1m_end: float = 0.0
    work_dir: str = ""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


Say = Callable[[str], None]


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the bench's own objects out of the garbage collector's walks while the clients in
    this process are timed (the baseline consumer, the SDK and the bare producer).

    The bench holds its simulated events (hundreds of thousands of objects); with the default
    collector, every full collection walks them all. Measured in a process holding 200k
    simulated events, 60k events each: 0.7-1.1 s of collection per SDK run and 0.7-0.8 s per
    bare run (a quarter of each run's time), more for the SDK, whose validation allocates more.
    An agency's process does not hold the bench's data, so it is frozen (``gc.freeze``) for
    all three alike, and unfrozen after."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


EVENT_TABLES = ("inspection_events", "service_events", "offering_events")
"""The tables the worker writes accepted events to (one per topic kind)."""


@dataclass
class _Expected:
    """What the warehouse must hold after the run, from the simulations' own counts."""

    messages: int = 0
    distinct: int = 0
    refused: int = 0

    def add(self, messages: int, duplicates: int, refused: int) -> None:
        self.messages += messages
        self.refused += refused
        self.distinct += messages - duplicates - refused


class _Run:
    def __init__(
        self, settings: Settings, opts: BenchOptions, base_env: Mapping[str, str], say: Say
    ) -> None:
        self.opts, self.say = opts, say
        self.run_id = uuid.uuid4().hex[:8]
        stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
        self.work_dir = (settings.data_dir / f"bench-{stamp}-{self.run_id}").resolve()
        url = settings.clickhouse_url or ""
        self.external_warehouse = url.startswith(("http://", "https://"))
        if not self.external_warehouse:
            url = f"chdb://{self.work_dir / 'warehouse'}"
        prefix = self.prefix = f"bench-{self.run_id}"
        self.topics = Topics(f"{prefix}-inspection-events", f"{prefix}-service-events",
                             f"{prefix}-dead-letters", f"{prefix}-service-offerings")  # fmt: skip
        self.sdk_topics = Topics(f"{prefix}-sdk-inspection-events", f"{prefix}-sdk-service-events",
                                 offerings=f"{prefix}-sdk-service-offerings")  # fmt: skip
        self.bare_topics = Topics(f"{prefix}-bare-inspection-events",
                                  f"{prefix}-bare-service-events",
                                  offerings=f"{prefix}-bare-service-offerings")  # fmt: skip
        self.app_id = f"parwatch-{prefix}"
        self.settings = settings.model_copy(
            update={
                "clickhouse_url": url,
                "clickhouse_database": (
                    f"parwatch_bench_{self.run_id}"
                    if self.external_warehouse
                    else settings.clickhouse_database
                ),
                "data_dir": self.work_dir,
                "app_id": self.app_id,
                "topic_inspections": self.topics.inspections,
                "topic_services": self.topics.services,
                "topic_dead_letters": self.topics.dead_letters,
                "topic_offerings": self.topics.offerings,
            }
        )
        self.base_env = base_env
        self.kafka_options = wiring.kafka_options(settings)
        self.catalog = wiring.catalog(settings)
        self.broker: EmbeddedBroker | None = None
        self.worker: WorkerProcess | None = None
        self.expected = _Expected()
        self.baseline_first_batch = 0
        self.result = BenchResult(events=opts.events)

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> BenchResult:
        opts, r, n = self.opts, self.result, self.opts.events
        self.work_dir.mkdir(parents=True)
        r.work_dir, r.cpu_model, r.cpu_count = str(self.work_dir), cpu_model(), os.cpu_count() or 0
        r.load_average_1m = round(os.getloadavg()[0], 2)
        bootstrap = self._broker()
        r.warehouse = wiring.warehouse_config(self.settings).describe()
        self.say(f"bench: broker {r.broker}, warehouse {r.warehouse}, folder {self.work_dir}")
        s = self.settings
        specs = [*s.topic_specs]
        for t in (self.sdk_topics, self.bare_topics):
            specs += [TopicSpec(t.inspections, s.partitions), TopicSpec(t.services, s.partitions),
                      TopicSpec(t.offerings, s.partitions, compacted=True)]  # fmt: skip
        try:
            create_topics(bootstrap, specs, self.kafka_options)
        except KafkaError as exc:
            raise BenchError(f"cannot create topics on {bootstrap}: {exc}") from None

        messages = self._simulate(opts.seed, n)
        if opts.only == "publisher":
            r.only = opts.only
            with frozen_heap():
                self._publisher(messages[: opts.publisher_events or min(n, 60_000)])
            r.load_average_1m_end = round(os.getloadavg()[0], 2)
            return r
        self._publish(bootstrap, messages, f"1/7 publishing {n:,} messages (untimed)")
        with frozen_heap():  # the bench's own objects are not what is timed (see frozen_heap)
            self._baseline(bootstrap, n)
            self._publisher(messages[: opts.publisher_events or min(n, 60_000)])
        del messages
        self._pipeline(n)
        if opts.engine == "both":
            self._second_engine(n, "faust")
        progress = Progress("worker", 3 * n)
        for k in range(1, 4):  # 3N more, for the memory figure; the worker runs meanwhile
            more = self._simulate(opts.seed + k, n)
            self._publish(bootstrap, more, f"5/7 memory: publishing {n:,} more ({k}/3, untimed)")
        self.say(f"5/7 memory: waiting for the worker to reach {4 * n:,} messages")
        assert self.worker is not None
        self.worker.wait_for(4 * n, after=n, timeout_s=self._timeout(3 * n),
                             progress=progress)  # fmt: skip
        r.rss_after_4n_mb = round(self._settled_rss(), 1)
        sent_at, since = self._latency(bootstrap, 4 * n)
        r.rss_peak_mb = round(self.worker.memory_mb()[1], 1)
        self.worker.stop()
        self._check_warehouse(sent_at, since)
        r.load_average_1m_end = round(os.getloadavg()[0], 2)
        return r

    def close(self, ok: bool) -> None:
        """Stop what was started and remove what was created (kept on failure, or --keep).
        Best effort: a failure here is reported, never raised over the run's own error."""
        if self.worker is not None:
            self.worker.stop()
        if self.broker is not None:
            self.broker.stop()
        elif not self.opts.keep and self.settings.kafka_bootstrap:
            try:
                delete_topics(self.settings.kafka_bootstrap, (self.prefix, self.app_id),
                               self.kafka_options)  # fmt: skip
            except KafkaError as exc:
                self.say(f"bench: could not delete the topics {self.prefix}-*: {exc}")
        if self.external_warehouse and ok and not self.opts.keep:
            database = self.settings.clickhouse_database
            try:
                client = wiring.open_warehouse(self.settings)
                client.command(f"DROP DATABASE IF EXISTS {database}")
                client.close()
            except (UsageError, ClickHouseError) as exc:
                self.say(f"bench: could not drop the database {database}: {exc}")
        if ok and not self.opts.keep:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        elif self.work_dir.exists():
            self.say(f"bench: kept {self.work_dir} (worker.log, warehouse)")

    # -- phases ----------------------------------------------------------------------------

    def _broker(self) -> str:
        if self.settings.kafka_bootstrap:
            self.result.broker = self.settings.kafka_bootstrap
            return self.settings.kafka_bootstrap
        self.broker = EmbeddedBroker(binary=self.settings.tansu_bin).start()
        self.settings = self.settings.model_copy(update={"kafka_bootstrap": self.broker.bootstrap})
        self.result.broker = f"{self.broker.bootstrap} (embedded Tansu)"
        return self.broker.bootstrap

    def _simulate(self, seed: int, events: int) -> list[Message]:
        """The first simulation carries the offering events; later ones leave them out: the
        offerings are the catalog's own events, the same ids whatever the seed, so the worker
        would skip them as duplicates and the expected counts would not hold."""
        self.say(f"simulating {events:,} messages (seed {seed}, untimed)")
        config = SimulationConfig(
            seed=seed, events=events, invalid_share=self.opts.invalid_share,
            offering_share=0.0 if self.expected.messages else SimulationConfig.offering_share,
        )  # fmt: skip
        sim = simulate(config, self.catalog)
        refused = sum(sim.expected_refusals.values())
        self.expected.add(len(sim.messages), sim.duplicates, refused)
        return sim.messages

    def _publish(self, bootstrap: str, messages: Sequence[Message], title: str) -> None:
        self.say(title)
        progress = Progress("published", len(messages))
        publish_raw(bootstrap, self.topics, ((m.kind, m.key, m.value) for m in messages),
                    kafka_options=self.kafka_options, progress=progress)  # fmt: skip
        progress.done(len(messages))

    def _baseline(self, bootstrap: str, n: int) -> None:
        """BASELINE_READS reads of the N messages, each by a new consumer from the beginning;
        the one of median rate is the baseline (one read of 200,000 messages takes about a
        second, and single reads of the same messages moved between 117k and 178k messages/s
        on the shared 2-core machine, moving the ratio with them)."""
        self.say(f"2/7 baseline: a bare aiokafka consumer reads {n:,} messages, json.loads each "
                 f"({BASELINE_READS} reads, the median's rate)")  # fmt: skip
        reads = []
        for k in range(BASELINE_READS):
            first_at, last_at, first_size, started = asyncio.run(
                consume_all(bootstrap, self.topics.events(), n, self.kafka_options,
                            Progress(f"baseline {k + 1}", n), self._timeout(n))
            )  # fmt: skip
            if first_size < n and last_at > first_at:
                rate = (n - first_size) / (last_at - first_at)
            else:
                rate = n / (last_at - started)
            reads.append((rate, first_at, last_at, first_size, started))
        r = self.result
        r.baseline_reads_per_s = [round(read[0], 1) for read in reads]
        _, first_at, last_at, first_size, started = sorted(reads)[len(reads) // 2]
        r.baseline_total_s = last_at - started
        r.baseline_s = last_at - first_at
        self.baseline_first_batch = first_size

    def _publisher(self, messages: Sequence[Message]) -> None:
        """The SDK and bare kafka-python, PUBLISHER_ROUNDS pairs, alternating which goes first;
        the medians are reported (one run each moved by up to a third between runs on a shared
        2-core machine, the broker on the same cores)."""
        self.say(
            f"3/7 publisher: the SDK ({PUBLISHER_PATH}) and bare kafka-python, "
            f"{len(messages):,} events each, {PUBLISHER_ROUNDS} alternating rounds"
        )
        sdk_settings = self.settings.model_copy(
            update={
                "topic_inspections": self.sdk_topics.inspections,
                "topic_services": self.sdk_topics.services,
                "topic_offerings": self.sdk_topics.offerings,
                "spool_dir": self.work_dir / "sdk-spool",
            }
        )
        sdk_runs: list[float] = []
        bare_runs: list[float] = []
        records: list[tuple[str, bytes, bytes]] = []
        accepted: list[Message] = []
        refused = 0
        options: dict[str, Any] = {}
        for i in range(PUBLISHER_ROUNDS):
            for which in ("sdk", "bare") if i % 2 == 0 else ("bare", "sdk"):
                if which == "sdk":
                    rate, accepted, refused, options = sdk_rate(sdk_settings, messages)
                    sdk_runs.append(rate)
                    records = [(topic_for(self.bare_topics, m.kind), m.key or b"", m.value)
                               for m in accepted]  # fmt: skip
                else:  # the first round's SDK run went first: records and options are set
                    bare_runs.append(bare_producer_rate(records, options))
            self.say(f"  round {i + 1}: SDK {sdk_runs[-1]:,.0f}/s, bare {bare_runs[-1]:,.0f}/s")
        r = self.result
        r.publisher_events, r.publisher_refused = len(accepted), refused
        r.publisher_events_per_s = statistics.median(sdk_runs)
        r.bare_producer_events_per_s = statistics.median(bare_runs)
        r.publisher_runs_per_s = [round(x, 1) for x in sdk_runs]
        r.bare_producer_runs_per_s = [round(x, 1) for x in bare_runs]

    def _env(self) -> dict[str, str]:
        s = self.settings
        return {
            **self.base_env,
            "PARWATCH_KAFKA_BOOTSTRAP": str(s.kafka_bootstrap),
            "PARWATCH_DATA_DIR": str(self.work_dir),
            "PARWATCH_CLICKHOUSE_URL": s.warehouse_url,
            "PARWATCH_CLICKHOUSE_DATABASE": s.clickhouse_database,
            "PARWATCH_APP_ID": self.app_id,
            "PARWATCH_TOPIC_INSPECTIONS": self.topics.inspections,
            "PARWATCH_TOPIC_SERVICES": self.topics.services,
            "PARWATCH_TOPIC_DEAD_LETTERS": self.topics.dead_letters,
            "PARWATCH_TOPIC_OFFERINGS": self.topics.offerings,
            "PARWATCH_PARTITIONS": str(s.partitions),
            "PARWATCH_DEAD_LETTER_PARTITIONS": str(s.dead_letter_partitions),
            # Tansu: a group join takes about 2 s plus half the session timeout (FACTS.md).
            "PARWATCH_BROKER_SESSION_TIMEOUT_S": "3",
            "PARWATCH_WORKER_ENGINE": "faust" if self.opts.engine == "faust" else "batch",
            "PARWATCH_WORKER_WEB_PORT": str(_free_port()),  # the Faust engine's web server
        }

    def _settled_rss(self) -> float:
        """The worker's RSS once it is idle: read RSS_SETTLE_S after it reached the count, when
        the embedded engine's background merges of the new data have run (their transient
        memory is in the peak, reported separately)."""
        assert self.worker is not None
        time.sleep(RSS_SETTLE_S)
        return self.worker.memory_mb()[0]

    def _migrate(self, env: Mapping[str, str]) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "parwatch.cli", "migrate"],
            env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            line = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"parwatch migrate failed: {line}")

    def _pipeline(self, n: int) -> None:
        env = self._env()
        self._migrate(env)
        r = self.result
        r.engine = env["PARWATCH_WORKER_ENGINE"]
        self.say(f"4/7 pipeline: a parwatch worker ({r.engine} engine) makes {n:,} messages "
                 "durable (timed)")  # fmt: skip
        self.worker = worker = WorkerProcess(env, self.work_dir)
        worker.start()
        first, last = worker.wait_for(n, after=0, timeout_s=60 + self._timeout(n),
                                      progress=Progress("worker", n))  # fmt: skip
        r.rss_after_n_mb = round(self._settled_rss(), 1)
        r.pipeline_total_s = last[0] - worker.started_at
        r.pipeline_s = last[0] - first[0]
        if first[1] < n and self.baseline_first_batch < n:
            r.ratio_basis = "first-batch"
            r.baseline_events_per_s = (n - self.baseline_first_batch) / r.baseline_s
            r.pipeline_events_per_s = (n - first[1]) / r.pipeline_s
            startup = (first[0] - worker.started_at) - first[1] / r.pipeline_events_per_s
            r.worker_ready_s = max(0.0, startup)
            r.pipeline_cpu_us_per_msg = (last.cpu_s - first.cpu_s) / (n - first[1]) * 1e6
        else:  # everything came in one batch: only the totals say anything
            r.ratio_basis = "total"
            r.baseline_events_per_s = n / r.baseline_total_s
            r.pipeline_events_per_s = n / r.pipeline_total_s
            r.pipeline_cpu_us_per_msg = last.cpu_s / n * 1e6  # start-up included
        r.ratio = r.pipeline_events_per_s / r.baseline_events_per_s

    def _second_engine(self, n: int, engine: str) -> None:
        """The same N messages through a worker of the other engine: its own consumer group,
        folder and warehouse, measured the same way (from its first durable write). The first
        worker is idle meanwhile (it has made all N durable)."""
        folder = self.work_dir / engine
        folder.mkdir()
        url = self.settings.warehouse_url
        if not self.external_warehouse:
            url = f"chdb://{folder / 'warehouse'}"
        database = self.settings.clickhouse_database
        if self.external_warehouse:
            database = f"{database}_{engine}"
        env = {
            **self._env(),
            "PARWATCH_WORKER_ENGINE": engine,
            "PARWATCH_DATA_DIR": str(folder),
            "PARWATCH_CLICKHOUSE_URL": url,
            "PARWATCH_CLICKHOUSE_DATABASE": database,
            "PARWATCH_APP_ID": f"{self.app_id}-{engine}",
            "PARWATCH_METRICS_PORT": "0",  # the first worker holds the default port
            "PARWATCH_QUERY_PORT": str(_free_port()),
        }
        self._migrate(env)
        self.say(f"4b/7 pipeline: a parwatch worker ({engine} engine) makes the same {n:,} "
                 "messages durable (timed)")  # fmt: skip
        worker = WorkerProcess(env, folder)
        worker.start()
        try:
            first, last = worker.wait_for(n, after=0, timeout_s=60 + self._timeout(n) * 4,
                                          progress=Progress(engine, n))  # fmt: skip
        finally:
            worker.stop()
        r = self.result
        r.faust_total_s = last[0] - worker.started_at
        if r.ratio_basis == "first-batch" and first[1] < n:
            r.faust_s = last[0] - first[0]
            r.faust_events_per_s = (n - first[1]) / r.faust_s
        else:
            r.faust_s = r.faust_total_s
            r.faust_events_per_s = n / r.faust_total_s
        r.faust_ratio = r.faust_events_per_s / r.baseline_events_per_s
        r.batch_over_faust = r.pipeline_events_per_s / r.faust_events_per_s

    def _latency(self, bootstrap: str, before: int) -> tuple[dict[str, float], float]:
        opts = self.opts
        count = max(1, round(opts.rate * opts.duration_s))
        messages = self._simulate(opts.seed + 4, count)
        self.say(f"6/7 latency: {count:,} messages at {opts.rate:g}/s for {opts.duration_s:g} s")
        event_ids = accepted_event_ids(messages, self.catalog.agencies)
        progress = Progress("worker", count)
        since = time.time()
        sent_at = paced_publish(bootstrap, self.topics, messages, event_ids, opts.rate,
                                 self.kafka_options, Progress("published", count))  # fmt: skip
        assert self.worker is not None
        self.worker.wait_for(before + count, after=before, timeout_s=self._timeout(count),
                             progress=progress)  # fmt: skip
        self.result.latency_offered_per_s = opts.rate
        return sent_at, since

    def _check_warehouse(self, sent_at: Mapping[str, float], since: float) -> None:
        """Latency from ``_inserted_at``; counts against what the simulations sent. Rows are
        picked by ``_ingested_at`` (the worker's clock, this machine's) so that a remote server's
        clock skew cannot hide them; the latencies themselves do include that skew."""
        self.say("7/7 reading the warehouse: latency per event, counts")
        client = wiring.open_warehouse(self.settings)
        try:
            inserted: dict[str, float] = {}
            for table in EVENT_TABLES:
                rows = client.query(
                    f"SELECT toString(event_id), toUnixTimestamp64Milli(min(_inserted_at)) "
                    f"FROM {table} WHERE _ingested_at >= toDateTime64({since:.3f}, 3, 'UTC') "
                    "GROUP BY event_id"
                ).result_rows
                inserted.update((str(e), int(ms) / 1000) for e, ms in rows)
            distinct = sum(
                int(client.query(f"SELECT uniqExact(event_id) FROM {t}").result_rows[0][0])
                for t in EVENT_TABLES
            )
            refused = int(client.query("SELECT count() FROM dead_letters FINAL").result_rows[0][0])
        finally:
            client.close()
        r = self.result
        latencies = sorted(inserted[e] - t for e, t in sent_at.items() if e in inserted)
        r.latency_events, r.latency_missing = len(latencies), len(sent_at) - len(latencies)
        if latencies:
            r.latency_p50_s = percentile(latencies, 0.50)
            r.latency_p95_s = percentile(latencies, 0.95)
            r.latency_p99_s = percentile(latencies, 0.99)
            r.latency_max_s = latencies[-1]
        exp = self.expected
        r.warehouse_check = {
            "distinct_events": distinct,
            "expected_distinct_events": exp.distinct,
            "dead_letters": refused,
            "expected_dead_letters": exp.refused,
        }
        r.verified = distinct == exp.distinct and refused == exp.refused and not r.latency_missing

    def _timeout(self, messages: int) -> float:
        """A generous deadline: two minutes plus 300 messages a second."""
        return 120 + messages / 300


def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo (the first one), or what the platform
    module says where there is no such file."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_bench(
    settings: Settings, opts: BenchOptions, base_env: Mapping[str, str], say: Say
) -> BenchResult:
    """Run every phase (see the module docstring); raises ``BenchError`` if one fails."""
    run = _Run(settings, opts, base_env, say)
    ok = False
    try:
        result = run.run()
        ok = True
    finally:
        run.close(ok)
    return result
