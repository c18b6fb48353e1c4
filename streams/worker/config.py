"""The worker's settings: one frozen object, built once by the command from ``Settings``.

Nothing below the command reads the environment; every step receives this object (or the few
fields it needs). ``role`` and ``engine`` are read once, where the chain of steps is built
(``chain``), never inside the loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from schemas.signing import Keyring
from schemas.topics import Topics
from streams.warehouse.client import WarehouseConfig

Role = Literal["all", "classify", "sink"]
EngineName = Literal["batch", "faust"]

ROLES: dict[str, str] = {
    "all": "read the event topics, classify, write ClickHouse (one process does everything)",
    "classify": "read the event topics, classify, publish the rows to the rows topic",
    "sink": "read the rows topic and write ClickHouse (the warehouse's only writer)",
}

ENGINES: dict[str, str] = {
    "batch": "aiokafka batches (getmany), decoding pipelined ahead; the fastest (default)",
    "faust": "a faust-streaming App: an agent takes batches and acknowledges after the insert",
}

FAUST_ROLES = ("all", "classify")  # the sink reads the rows topic: always the batch engine's


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap: str
    warehouse: WarehouseConfig
    topics: Topics = field(default_factory=Topics)
    app_id: str = "parwatch"
    catalog_dir: Path | None = None
    status_path: Path | None = None
    session_timeout_s: float = 6.0
    max_rows: int = 20_000
    flush_interval_s: float = 0.25
    catalog_check_s: float = 30.0
    state_cache_entities: int = 5_000
    role: Role = "all"  # see ROLES
    engine: EngineName = "batch"  # see ENGINES
    rows_topic: str = "warehouse-rows"
    kafka_options: dict[str, Any] = field(default_factory=dict)  # aiokafka security options
    keyring: Keyring | None = None  # given: signing is enforced (EVENTS.md, bad_signature)
    keyring_path: Path | None = None  # the keyring's file, reloaded when it changes
    decode_processes: int = 1  # 1: decode in a child process (see ``decoder``); 0: in this one
    web_host: str = "127.0.0.1"  # the Faust engine's web server (health, status)
    web_port: int = 6066
    faust_dir: Path | None = None  # the Faust engine's data directory (None: Faust's own default)

    @property
    def sink_group(self) -> str:
        return f"{self.app_id}-sink"
