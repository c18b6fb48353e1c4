"""Builds the small frozen objects that the layers below receive, from ``Settings``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.client import Client

from parwatch.errors import UsageError
from parwatch.settings import Settings
from schemas.catalog import Catalog, load_catalog
from schemas.signing import KeyringError, SigningKey, load_keyring
from streams.warehouse.client import WarehouseConfig, WarehouseOpenError, connect
from streams.warehouse.reference import KpiSettings

if TYPE_CHECKING:
    from producers.sdk.publisher import PublisherConfig
    from streams.warehouse.query_endpoint import QueryServer


def require_bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise UsageError(
            "no Kafka broker configured: set PARWATCH_KAFKA_BOOTSTRAP=host:port "
            "(`parwatch broker` starts an embedded one and prints its address)"
        )
    return settings.kafka_bootstrap


def kafka_options(settings: Settings) -> dict[str, Any]:
    """kafka-python security options (TLS, SASL). Secrets are passed, never logged."""
    opts: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if settings.kafka_sasl_mechanism:
        opts["sasl_mechanism"] = settings.kafka_sasl_mechanism
        opts["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            opts["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        opts["ssl_cafile"] = str(settings.kafka_ssl_cafile)
    return opts


def aiokafka_options(kafka_python_options: Mapping[str, Any]) -> dict[str, Any]:
    """The same security options (``kafka_options``), as aiokafka (the worker's and the bench's
    consumer) names them: a CA file becomes an SSL context."""
    opts = dict(kafka_python_options)
    cafile = opts.pop("ssl_cafile", None)
    if cafile is not None or opts.get("security_protocol") in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        opts["ssl_context"] = create_ssl_context(cafile=cafile)
    return opts


def warehouse_config(settings: Settings) -> WarehouseConfig:
    password = settings.clickhouse_password
    return WarehouseConfig(
        url=settings.warehouse_url,
        database=settings.clickhouse_database,
        username=settings.clickhouse_user,
        password=password.get_secret_value() if password else None,
    )


def open_warehouse(settings: Settings, *, create_database: bool = False) -> Client:
    config = warehouse_config(settings)
    try:
        return connect(config, create_database=create_database)
    except WarehouseOpenError as exc:
        hint = ""
        if "UNKNOWN_DATABASE" in str(exc):
            hint = " (run `parwatch migrate` first, or check PARWATCH_CLICKHOUSE_URL)"
        elif config.embedded and ("EmbeddedServer" in str(exc) or "lock" in str(exc).lower()):
            hint = " (is a worker or demo running on it? chdb allows one process per path)"
        raise UsageError(f"warehouse {config.describe()}: {exc}{hint}") from None


def endpoint_serves(host: str, port: int, warehouse_url: str, timeout_s: float = 0.5) -> bool:
    """Whether a parwatch query endpoint serving ``warehouse_url`` answers ``/ping`` there."""
    import http.client

    from streams.warehouse.query_endpoint import IDENTITY_HEADER, warehouse_identity

    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/ping")
        response = conn.getresponse()
        served = response.getheader(IDENTITY_HEADER)
        return response.status == 200 and served == warehouse_identity(warehouse_url)
    except OSError:
        return False
    finally:
        conn.close()


def endpoint_client(settings: Settings, warehouse_url: str) -> Client:
    """A client of the query endpoint that serves the embedded ``warehouse_url``, with the
    password its owner keeps beside it."""
    import clickhouse_connect

    from streams.warehouse.query_endpoint import USER, password_path, read_password

    path = password_path(warehouse_url)
    password = read_password(path)
    if password is None:
        raise UsageError(
            f"the query endpoint at {settings.query_host}:{settings.query_port} needs the password "
            f"in {path}, which this user cannot read (run as the user that owns the warehouse)"
        )
    return clickhouse_connect.get_client(
        host=settings.query_host, port=settings.query_port, username=USER, password=password,
        database=settings.clickhouse_database,
    )  # fmt: skip


def open_reader(settings: Settings) -> Client:
    """A client for reading: for the embedded warehouse, through the query endpoint of the
    process that owns it when one answers on QUERY_HOST:QUERY_PORT (chdb allows one process per
    path), else the warehouse opened directly. For a ClickHouse server, just ``open_warehouse``."""
    config = warehouse_config(settings)
    if config.embedded and endpoint_serves(settings.query_host, settings.query_port, config.url):
        return endpoint_client(settings, config.url)
    return open_warehouse(settings)


def query_endpoint(settings: Settings, owner: Client | Callable[[], Client]) -> QueryServer:
    """The embedded warehouse's query endpoint (not started), with its password (generated
    beside the warehouse on first use) and limits, from the settings."""
    from streams.warehouse.query_endpoint import (
        Limits,
        QueryServer,
        ensure_password,
        password_path,
        warehouse_identity,
    )

    config = warehouse_config(settings)
    limits = Limits(
        timeout_s=settings.query_timeout_s,
        max_result_bytes=settings.query_max_result_mb << 20,
        max_memory_bytes=settings.query_max_memory_mb << 20,
        concurrency=settings.query_concurrency,
        queue_timeout_s=settings.query_queue_timeout_s,
    )
    return QueryServer(
        owner, password=ensure_password(password_path(config.url)), host=settings.query_host,
        port=settings.query_port, database=config.database, limits=limits,
        identity=warehouse_identity(config.url),
    )  # fmt: skip


def kpi_settings(settings: Settings) -> KpiSettings:
    return KpiSettings(
        targets=settings.targets,
        hybrid_counts_as_online=settings.hybrid_counts_as_online,
    )


def catalog(settings: Settings) -> Catalog:
    return load_catalog(settings.catalog_dir)


def signing_key(settings: Settings) -> SigningKey | None:
    """The publisher's signing key, from PARWATCH_SIGNING_KEY_FILE (and _KEY_ID), or None."""
    path, key_id = settings.signing_key_file, settings.signing_key_id
    if path is None:
        if key_id:
            raise UsageError("PARWATCH_SIGNING_KEY_ID is set but PARWATCH_SIGNING_KEY_FILE is not")
        return None
    try:
        ring = load_keyring(path)
    except KeyringError as exc:
        raise UsageError(f"PARWATCH_SIGNING_KEY_FILE: {exc}") from None
    if key_id:
        key = ring.get(key_id)
        if key is None:
            raise UsageError(f"PARWATCH_SIGNING_KEY_ID {key_id}: not in {path}")
    else:
        active = [k for k in ring.keys.values() if k.status == "active"]
        if len(active) != 1:
            raise UsageError(
                f"{path} holds {len(active)} active keys: set PARWATCH_SIGNING_KEY_ID to one"
            )
        key = active[0]
    if key.status != "active":
        raise UsageError(f"signing key {key.key_id} is retired; use the agency's active key")
    return key


def publisher_config(settings: Settings, known: Catalog | None = None) -> PublisherConfig:
    from producers.sdk.publisher import PublisherConfig

    return PublisherConfig(
        bootstrap=require_bootstrap(settings),
        topics=settings.topics,
        spool_dir=settings.spool_path,
        kafka_options=kafka_options(settings),
        known_agencies=(known or catalog(settings)).agencies,
        signing_key=signing_key(settings),
    )
