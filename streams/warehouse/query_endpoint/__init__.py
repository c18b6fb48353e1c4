"""The embedded warehouse's read-only query endpoint (ClickHouse's HTTP interface, on loopback,
with a password): ``statements`` decides what runs, ``protocol`` speaks HTTP the ClickHouse way,
``credentials`` keeps the password, ``server`` serves. See ``server`` for the security model."""

from streams.warehouse.query_endpoint.credentials import (
    USER,
    ensure_password,
    password_path,
    read_password,
)
from streams.warehouse.query_endpoint.server import (
    IDENTITY_HEADER,
    Limits,
    QueryServer,
    QueryServerError,
    warehouse_identity,
)

__all__ = [
    "IDENTITY_HEADER", "USER", "Limits", "QueryServer", "QueryServerError", "ensure_password",
    "password_path", "read_password", "warehouse_identity",
]  # fmt: skip
