"""Builds the small frozen objects that the layers below receive, from ``Settings``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from clickhouse_connect.driver.client import Client

from parwatch.errors import UsageError
from parwatch.settings import Settings
from schemas.catalog import Catalog, load_catalog
from streams.reference import KpiSettings
from streams.warehouse import WarehouseConfig, WarehouseOpenError, connect

if TYPE_CHECKING:
    from producers.publisher import PublisherConfig


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


def kpi_settings(settings: Settings) -> KpiSettings:
    return KpiSettings(
        target_online_inspection_share=settings.target_online_inspection_share,
        target_service_prefill_coverage=settings.target_service_prefill_coverage,
        target_full_process_share=settings.target_full_process_share,
        hybrid_counts_as_online=settings.hybrid_counts_as_online,
    )


def catalog(settings: Settings) -> Catalog:
    return load_catalog(settings.catalog_dir)


def publisher_config(settings: Settings, known: Catalog | None = None) -> PublisherConfig:
    from producers.publisher import PublisherConfig

    return PublisherConfig(
        bootstrap=require_bootstrap(settings),
        topics=settings.topics,
        spool_dir=settings.spool_path,
        kafka_options=kafka_options(settings),
        known_agencies=(known or catalog(settings)).agencies,
    )
