"""The warehouse client: clickhouse-connect for every ClickHouse access.

One code path for both transports: ``chdb:///path`` opens the embedded engine in this process
(one process per path: chdb refuses a second), ``http(s)://[user:password@]host:8123`` talks to a
ClickHouse server. Calls block: async code runs them off the event loop (see ``sink``).
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from schemas.errors import RetryableError
from streams.errors import StreamsError

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The clients ``connect`` opened on chdb, each with its path's scratch folder.
_EMBEDDED: weakref.WeakKeyDictionary[Client, Path] = weakref.WeakKeyDictionary()
_SWEPT: set[Path] = set()  # scratch folders this process has emptied of earlier leftovers
# The names of the writer's scratch files: ``mkstemp``'s prefix and suffix, and what the sweep
# removes.
SCRATCH_PREFIX, SCRATCH_SUFFIX = "parwatch-insert-", ".rowbinary"


def is_embedded(client: Client) -> bool:
    """Whether ``connect`` opened ``client`` on the embedded engine (in this process, so it
    reads the files this process writes)."""
    return client in _EMBEDDED


def scratch_folder(client: Client) -> Path:
    """The folder for an embedded client's insert scratch files: ``{path}.scratch`` beside the
    engine's folder. Only the process that holds the path (chdb allows one) writes there, so
    the first ``connect`` of a process removes any scratch files a killed process left.
    ``KeyError`` for a client ``connect`` did not open on chdb."""
    return _EMBEDDED[client]


def _sweep(folder: Path) -> None:
    """Create ``folder`` and, once a process, remove the scratch files left in it."""
    folder.mkdir(parents=True, exist_ok=True)
    if folder not in _SWEPT:
        for leftover in folder.glob(f"{SCRATCH_PREFIX}*{SCRATCH_SUFFIX}"):
            leftover.unlink(missing_ok=True)
        _SWEPT.add(folder)


class WarehouseError(StreamsError, RetryableError):
    """ClickHouse could not be reached or did not answer; the same call may succeed later."""


class WarehouseOpenError(StreamsError):
    """The warehouse URL cannot be opened (bad URL, path held by another process, …)."""


@dataclass(frozen=True, slots=True)
class WarehouseConfig:
    url: str
    database: str = "parwatch"
    username: str | None = None
    password: str | None = None  # from a SecretStr, at the edge; never logged

    @property
    def embedded(self) -> bool:
        return self.url.startswith("chdb:")

    def describe(self) -> str:
        """The URL without credentials, for logs and messages."""
        parts = urlsplit(self.url)
        if parts.password or parts.username:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            return f"{parts.scheme}://{host}{port}{parts.path}"
        return self.url


def chdb_path(url: str) -> Path:
    """``chdb:///abs/path`` -> ``/abs/path``."""
    parts = urlsplit(url)
    if parts.netloc:
        raise WarehouseOpenError(f"embedded warehouse URL must be chdb:///absolute/path, got {url}")
    return Path(parts.path)


def connect(config: WarehouseConfig, *, create_database: bool = False) -> Client:
    """Open a client on ``config.database`` (created first when ``create_database``)."""
    if not _DB_NAME.match(config.database):
        raise WarehouseOpenError(f"bad database name {config.database!r}")
    try:
        if config.embedded:
            path = chdb_path(config.url)
            path.parent.mkdir(parents=True, exist_ok=True)
            client = clickhouse_connect.get_client(dsn=f"chdb://{path}")
            if create_database:
                client.command(f"CREATE DATABASE IF NOT EXISTS {config.database}")
            client.command(f"USE {config.database}")
            scratch = path.with_name(f"{path.name}.scratch")
            _sweep(scratch)
            _EMBEDDED[client] = scratch
            return client
        parts = urlsplit(config.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WarehouseOpenError(
                f"warehouse URL must be chdb:///path or http(s)://host:8123, got {config.url}"
            )
        kwargs: dict[str, Any] = {
            "host": parts.hostname,
            "port": parts.port or (8443 if parts.scheme == "https" else 8123),
            "secure": parts.scheme == "https",
            "username": config.username or unquote(parts.username or "") or "default",
            "password": config.password or unquote(parts.password or ""),
        }
        if create_database:
            boot = clickhouse_connect.get_client(**kwargs)
            boot.command(f"CREATE DATABASE IF NOT EXISTS {config.database}")
            boot.close()
        return clickhouse_connect.get_client(database=config.database, **kwargs)
    except WarehouseOpenError:
        raise
    except ClickHouseError as exc:
        raise WarehouseOpenError(_one_line(exc)) from exc
    except Exception as exc:  # chdb raises plain RuntimeError when the path is held elsewhere
        raise WarehouseOpenError(f"cannot open {config.describe()}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
