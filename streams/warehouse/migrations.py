"""Numbered, append-only SQL migrations from ``schemas/clickhouse/NNNN_name.sql``.

``apply()`` runs, in order, the files not yet recorded in ``schema_migrations`` and records each
one (version, name, checksum) after all of its statements succeeded. Running it twice changes
nothing. A recorded migration whose file has since changed is refused: migrations are
append-only, a change is a new file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from clickhouse_connect.driver.client import Client

from schemas.periods import PERIOD_SQL, PERIOD_STEP_SQL
from streams.errors import StreamsError

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


class MigrationError(StreamsError):
    """A migration file is malformed or was edited after it was applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        """The file's statements: ``-- @each grain`` … ``-- @end`` blocks expanded (see
        ``expand_grains``), then split on ``;`` at the end of a line; comments dropped."""
        text = "\n".join(
            line for line in expand_grains(self.sql).splitlines()
            if not line.lstrip().startswith("--")
        )  # fmt: skip
        return [s.strip() for s in re.split(r";\s*(?:\n|$)", text) if s.strip()]


_GRAIN_BLOCK = re.compile(r"(?ms)^-- @each grain\n(.*?)^-- @end\n?")


def expand_grains(sql: str) -> str:
    """One definition for every reporting period: the text between ``-- @each grain`` and
    ``-- @end`` is repeated for day, month, quarter and year, with ``@grain@`` the grain's name,
    ``@period_start@`` its first day from the column ``at``, ``@period@`` its label from
    ``period_start``, ``@trunc@`` the function from a local ``Date`` to its period's first day
    and ``@interval@`` the function from a count to an interval of periods
    (``schemas.periods.PERIOD_SQL`` and ``PERIOD_STEP_SQL``, the contract's periods)."""

    def each(m: re.Match[str]) -> str:
        return "".join(
            m.group(1).replace("@grain@", grain).replace("@period_start@", start)
            .replace("@period@", label).replace("@trunc@", PERIOD_STEP_SQL[grain][0])
            .replace("@interval@", PERIOD_STEP_SQL[grain][1])
            for grain, (start, label) in PERIOD_SQL.items()
        )  # fmt: skip

    expanded = _GRAIN_BLOCK.sub(each, sql)
    if "@each grain" in expanded or "@grain@" in expanded:
        raise MigrationError("an '-- @each grain' block without its '-- @end' line")
    return expanded


def migrations_dir() -> Path:
    return Path(str(resources.files("schemas") / "clickhouse"))


def load_migrations(directory: Path | None = None) -> list[Migration]:
    found = []
    for path in sorted((directory or migrations_dir()).glob("*.sql")):
        m = _FILE.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return found


def applied(client: Client) -> dict[int, str]:
    """Version -> checksum of the migrations recorded in this database."""
    client.command(LEDGER_DDL)
    rows = client.query("SELECT version, checksum FROM schema_migrations FINAL").result_rows
    return {int(v): str(c) for v, c in rows}


def apply(client: Client, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is missing, in version order; return the migrations applied now."""
    todo = migrations if migrations is not None else load_migrations()
    done = applied(client)
    newly = []
    for m in sorted(todo, key=lambda m: m.version):
        if m.version in done:
            if done[m.version] != m.checksum:
                raise MigrationError(
                    f"migration {m.version:04d}_{m.name} changed after it was applied; "
                    "migrations are append-only: add a new file instead"
                )
            continue
        for statement in m.statements():
            client.command(statement)
        client.insert(
            "schema_migrations",
            [[m.version, m.name, m.checksum, datetime.now(UTC)]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
        newly.append(m)
    return newly
