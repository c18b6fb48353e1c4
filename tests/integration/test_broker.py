"""The topics the broker command creates: service-offerings compacted. Tansu reports no topic
configs, so what can be checked is the CreateTopics request itself, read off the wire between
kafka-python's admin client and a real Tansu, and the partition counts."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType

from parwatch.broker import TopicSpec, ensure_topics, free_port, new_topic, tansu_binary

pytestmark = pytest.mark.kafka

CREATE_TOPICS = 19  # the Kafka protocol's api_key


def test_new_topic_asks_for_compaction_only_where_specified() -> None:
    compacted = new_topic(TopicSpec("service-offerings", 6, compacted=True))
    plain = new_topic(TopicSpec("service-events", 6))
    assert (compacted.name, compacted.num_partitions, compacted.replication_factor) == (
        "service-offerings", 6, 1
    )  # fmt: skip
    assert compacted.topic_configs == {"cleanup.policy": "compact"}
    assert (plain.num_partitions, plain.topic_configs) == (6, {})


class _Recorder:
    """A TCP relay that keeps every byte clients send through it, one buffer a connection."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.sent: list[bytearray] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            broker = socket.create_connection(("127.0.0.1", self.upstream))
            buffer = bytearray()
            self.sent.append(buffer)
            threading.Thread(target=self._pump, args=(client, broker, buffer), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, client, None), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, keep: bytearray | None) -> None:
        try:
            while data := src.recv(65536):
                if keep is not None:
                    keep.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def requests(self, api_key: int) -> list[bytes]:
        """The request frames (without their size) of ``api_key`` the clients sent."""
        frames = []
        for buffer in self.sent:
            pos = 0
            while pos + 4 <= len(buffer):
                (size,) = struct.unpack_from(">i", buffer, pos)
                frame = bytes(buffer[pos + 4 : pos + 4 + size])
                pos += 4 + size
                if struct.unpack_from(">h", frame)[0] == api_key:
                    frames.append(frame)
        return frames

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def recorded_tansu() -> Iterator[_Recorder]:
    """A Tansu of our own, advertising the relay's address, so that every request (CreateTopics
    goes to the controller named in the metadata) passes through the relay."""
    port = free_port()
    recorder = _Recorder(port)
    proc = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
         "--advertised-listener-url", f"tcp://127.0.0.1:{recorder.port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                threading.Event().wait(0.05)
        yield recorder
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        recorder.close()


def test_the_create_topics_request_carries_cleanup_policy_compact(
    recorded_tansu: _Recorder,
) -> None:
    suffix = uuid.uuid4().hex[:8]
    compacted, plain = f"offerings-{suffix}", f"services-{suffix}"
    bootstrap = f"127.0.0.1:{recorded_tansu.port}"
    ensure_topics(bootstrap, [TopicSpec(compacted, 6, compacted=True), TopicSpec(plain, 6)])

    frames = recorded_tansu.requests(CREATE_TOPICS)
    by_topic = {name: [f for f in frames if name.encode() in f] for name in (compacted, plain)}
    assert [len(by_topic[compacted]), len(by_topic[plain])] == [1, 1]
    assert b"cleanup.policy" in by_topic[compacted][0]
    assert b"compact" in by_topic[compacted][0]
    assert b"cleanup.policy" not in by_topic[plain][0]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        assert consumer.partitions_for_topic(compacted) == set(range(6))
        assert consumer.partitions_for_topic(plain) == set(range(6))
    finally:
        consumer.close()


def test_broker_command_creates_service_offerings_compacted() -> None:
    """`parwatch broker` lists service-offerings as compacted and creates it with 6 partitions;
    Tansu (0.6) answers DescribeConfigs with no entries, for this topic as for any: if a later
    Tansu reports them, this test says so and should then check cleanup.policy=compact."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "parwatch.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"broker ready: 127.0.0.1:{port}"
        listed = proc.stdout.readline().strip()
        assert listed == (
            "topics: inspection-events (6), service-events (6), service-offerings (6, "
            "compacted), dead-letters (3), warehouse-rows (6)"
        )
        bootstrap = f"127.0.0.1:{port}"
        consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        try:
            assert consumer.partitions_for_topic("service-offerings") == set(range(6))
        finally:
            consumer.close()
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            resource = ConfigResource(ConfigResourceType.TOPIC, "service-offerings")
            assert admin.describe_configs([resource]) == {"topic": {"service-offerings": {}}}
        finally:
            admin.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
