"""The migrations, rewritten for a ClickHouse cluster: Replicated tables behind Distributed ones.

A pure transform of the SQL texts of ``migrations.load_migrations()`` (nothing is executed):

* a fact table ``T`` (events, submissions, classifications, dead letters, duplicates) becomes
  ``T_local ON CLUSTER c`` with the Replicated form of its engine, keeping the engine's
  arguments (the ``version`` column of ``ReplacingMergeTree(version)``), ORDER BY and SETTINGS,
  plus ``T ON CLUSTER c`` with ``Distributed(c, db, T_local, <sharding key>)``. Readers and
  writers keep using ``T``. The sharding key is made of ORDER BY columns, so all copies and all
  versions of a row land on one shard and ``FINAL`` per shard is ``FINAL`` overall;
* a reference table (catalogs, KPI settings, the migration ledger) stays under its name as one
  Replicated table with a single replica set spanning every node: each node has all of it, the
  loader's TRUNCATE + INSERT keeps working, and the views' joins and subqueries stay local;
* a view is created (or replaced) ``ON CLUSTER`` unchanged: it reads the Distributed tables;
* ``ALTER TABLE T`` runs ``ON CLUSTER`` on ``T_local`` and, when it changes columns (ADD, DROP,
  MODIFY, RENAME, COMMENT, CLEAR COLUMN), on the Distributed ``T`` too, so both keep one
  structure; other commands (MATERIALIZE, UPDATE, DELETE …) are mutations of the data and run on
  ``T_local`` only. An ALTER's first command decides; keep column changes and mutations in
  separate statements, as the migrations do.

A table that is in neither list is refused: whoever adds one decides how it is sharded.
Each migration ends with the INSERT that records it in ``schema_migrations`` (replicated to
every node), so ``parwatch migrate`` on any node afterwards finds it applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streams.errors import StreamsError
from streams.warehouse.migrations import LEDGER_DDL, Migration

# Fact tables: sharding key, from the ORDER BY columns (see the module docstring).
SHARDING_KEYS: dict[str, str] = {
    "inspection_events": "cityHash64(agency_code, inspection_id)",
    "inspection_classifications": "cityHash64(agency_code, inspection_id)",
    "service_events": "cityHash64(agency_code, dossier_id)",
    "service_submissions": "cityHash64(agency_code, dossier_id)",
    "offering_events": "cityHash64(agency_code, procedure_code)",
    "dossier_lifecycle": "cityHash64(agency_code, dossier_id)",
    "dead_letters": "cityHash64(_topic, _partition, _offset)",
    "duplicates": "cityHash64(_topic, _partition, _offset)",
    "dead_letter_replays": "cityHash64(dl_topic, dl_partition, dl_offset)",
}
# Small tables every node holds whole.
REPLICATED_EVERYWHERE: frozenset[str] = frozenset(
    {"agencies", "procedures", "annual_indices", "kpi_settings", "schema_migrations"}
)

SHARDED_PATH = "/clickhouse/tables/{shard}/{database}/{table}"
EVERYWHERE_PATH = "/clickhouse/tables/all/{database}/{table}"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CREATE_TABLE = re.compile(r"^CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(\w+)\s*\(", re.IGNORECASE)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(\w*MergeTree)\b(\s*\(([^()]*)\))?", re.IGNORECASE)
_ALTER_TABLE = re.compile(r"^ALTER\s+TABLE\s+(\w+)\s+", re.IGNORECASE)
_COLUMN_CHANGE = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT|CLEAR)\s+COLUMN\b", re.IGNORECASE)
_CREATE_VIEW = re.compile(
    r"^CREATE\s+(VIEW\s+IF\s+NOT\s+EXISTS|OR\s+REPLACE\s+VIEW)\s+(\w+)\s+AS\b", re.IGNORECASE
)


class ClusterDDLError(StreamsError):
    """A migration statement that this transform does not know how to distribute."""


@dataclass(frozen=True, slots=True)
class ClusterStatement:
    """One statement of the cluster DDL, with the migration it comes from (0: the ledger)."""

    version: int
    sql: str


def cluster_ddl(migrations: list[Migration], cluster: str, database: str) -> list[ClusterStatement]:
    """The whole schema for ``cluster``: database, ledger, then every migration in order."""
    for what, name in (("cluster", cluster), ("database", database)):
        if not _NAME.match(name):
            raise ClusterDDLError(f"bad {what} name {name!r}: letters, digits and _ only")
    out = [
        ClusterStatement(0, f"CREATE DATABASE IF NOT EXISTS {database} ON CLUSTER {cluster}"),
        *(ClusterStatement(0, s) for s in _statement(LEDGER_DDL.strip(), cluster, database)),
    ]
    for m in sorted(migrations, key=lambda m: m.version):
        for statement in m.statements():
            try:
                sqls = _statement(statement, cluster, database)
            except ClusterDDLError as exc:
                raise ClusterDDLError(f"migration {m.version:04d}_{m.name}: {exc}") from None
            out.extend(ClusterStatement(m.version, s) for s in sqls)
        out.append(ClusterStatement(m.version, ledger_insert(m, database)))
    return out


def ledger_insert(m: Migration, database: str) -> str:
    """Records ``m`` in the (replicated) ledger, as ``migrations.apply`` does after a file."""
    return (
        f"INSERT INTO {database}.schema_migrations (version, name, checksum, applied_at) "
        f"VALUES ({m.version}, '{m.name}', '{m.checksum}', now64(3))"
    )


def render(statements: list[ClusterStatement]) -> str:
    """The statements as one script (``;`` after each), a comment line per migration."""
    lines: list[str] = []
    current = -1
    for s in statements:
        if s.version != current:
            current = s.version
            lines.append(f"-- migration {s.version:04d}" if s.version else "-- database and ledger")
        lines.append(s.sql + ";\n")
    return "\n".join(lines)


def _statement(sql: str, cluster: str, database: str) -> list[str]:
    if m := _CREATE_TABLE.match(sql):
        return _table(m.group(1), sql, cluster, database)
    if m := _ALTER_TABLE.match(sql):
        return _alter(m.group(1), sql[m.end() :], cluster, database)
    if m := _CREATE_VIEW.match(sql):
        how = "OR REPLACE VIEW" if m.group(1).upper().startswith("OR") else "VIEW IF NOT EXISTS"
        return [f"CREATE {how} {database}.{m.group(2)} ON CLUSTER {cluster} AS"
                + sql[m.end():]]  # fmt: skip
    first = sql.split("\n", 1)[0]
    raise ClusterDDLError(f"cannot distribute this statement: {first[:80]}")


def _table(name: str, sql: str, cluster: str, database: str) -> list[str]:
    engine = _ENGINE.search(sql)
    if engine is None:
        raise ClusterDDLError(f"table {name}: only MergeTree-family engines can be replicated")
    family, args = engine.group(1), (engine.group(3) or "").strip()
    _check_known(name)
    sharded = name in SHARDING_KEYS
    path = SHARDED_PATH if sharded else EVERYWHERE_PATH
    replicated = f"ENGINE = Replicated{family}('{path}', '{{replica}}'"
    replicated += f", {args})" if args else ")"
    local = f"{name}_local" if sharded else name
    head = _CREATE_TABLE.match(sql)
    assert head is not None  # checked by the caller
    body = sql[head.end() - 1 : engine.start()] + replicated + sql[engine.end() :]
    create = f"CREATE TABLE IF NOT EXISTS {database}.{local} ON CLUSTER {cluster}\n{body}"
    if not sharded:
        return [create]
    distributed = (
        f"CREATE TABLE IF NOT EXISTS {database}.{name} ON CLUSTER {cluster}\n"
        f"AS {database}.{local}\n"
        f"ENGINE = Distributed({cluster}, {database}, {local}, {SHARDING_KEYS[name]})"
    )
    return [create, distributed]


def _alter(name: str, commands: str, cluster: str, database: str) -> list[str]:
    _check_known(name)
    if name not in SHARDING_KEYS:
        return [f"ALTER TABLE {database}.{name} ON CLUSTER {cluster} {commands}"]
    local = [f"ALTER TABLE {database}.{name}_local ON CLUSTER {cluster} {commands}"]
    if not _COLUMN_CHANGE.match(commands):
        return local
    return [*local, f"ALTER TABLE {database}.{name} ON CLUSTER {cluster} {commands}"]


def _check_known(name: str) -> None:
    if name not in SHARDING_KEYS and name not in REPLICATED_EVERYWHERE:
        raise ClusterDDLError(
            f"table {name}: no sharding decision; add it to SHARDING_KEYS or "
            "REPLICATED_EVERYWHERE in streams/warehouse/cluster.py"
        )
