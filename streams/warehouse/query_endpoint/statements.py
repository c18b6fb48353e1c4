"""What the query endpoint runs: one read-only statement, as ClickHouse's own parser sees it.

Contract: ``inspect(client, text, params)`` returns the ``Statement`` to run, or raises
``QueryError``. Nothing here scans the client's text. The engine parses it twice:

1. ``formatQuery(text)``, with the text bound as a parameter (never spliced into SQL), gives the
   statement's canonical form, or the engine's own error: a syntax error, more than one
   statement ("Multi-statements are not allowed"), a query longer than ``max_query_size``. The
   canonical form has no comments, every string and name quoted and escaped on one line, and
   each top-level clause (``INTO OUTFILE``, ``FORMAT``, ``SETTINGS``) on a line of its own,
   unindented; nested queries are indented. **The canonical form is what runs**, so what is
   checked is what executes: no lexical trick (``$heredoc$``, nested comments, quotes) survives
   the engine's own rendering.
2. ``EXPLAIN AST`` of the canonical form gives the syntax tree, one node per line, indented by
   depth. Every node's type must be in ``NODE_TYPES`` (an allow-list: SELECT and its parts,
   DESCRIBE, EXISTS, EXPLAIN, a few SHOW forms); a ``Literal`` directly under a query node is
   an ``INTO OUTFILE`` target (refused, ClickHouse's 358); functions in ``OUTSIDE_FUNCTIONS``
   (they read the host's files) and table functions outside ``TABLE_FUNCTIONS`` are refused.
   SHOW hides its subtree from EXPLAIN AST, so a SHOW statement must also match, in canonical
   form, one of the plain shapes in ``_SHOW_SHAPES`` (no subquery in LIMIT or LIKE).

The session the statement then runs in is at ``readonly=1`` (see ``server``), so the engine
also refuses every write, DDL, ``SET``, ``SETTINGS`` change and table function that reads
outside the warehouse. A node type, function or shape not listed here is refused, never
guessed at: a statement the lists do not know costs a refusal, not a hole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from streams.warehouse.query_endpoint.protocol import (
    INTO_OUTFILE_NOT_ALLOWED,
    READONLY,
    SYNTAX_ERROR,
    UNKNOWN_FORMAT,
    QueryError,
)

QUERY_NODES = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "Explain", "DescribeQuery",
    "ExistsTableQuery", "ExistsDatabaseQuery", "ExistsViewQuery", "ExistsDictionaryQuery",
    "ShowTables", "ShowCreateTableQuery", "ShowCreateViewQuery", "ShowColumns",
})  # fmt: skip
NODE_TYPES = QUERY_NODES | frozenset({
    "SelectQuery", "ExpressionList", "Literal", "Identifier", "Function", "Asterisk",
    "QualifiedAsterisk", "ColumnsRegexpMatcher", "ColumnsListMatcher",
    "QualifiedColumnsRegexpMatcher", "QualifiedColumnsListMatcher", "ColumnsTransformerList",
    "ColumnsApplyTransformer", "ColumnsExceptTransformer", "ColumnsReplaceTransformer",
    "ColumnsReplaceTransformerReplacement", "TablesInSelectQuery", "TablesInSelectQueryElement",
    "TableExpression", "TableIdentifier", "TableJoin", "ArrayJoin", "Subquery",
    "OrderByElement", "WithElement", "WindowDefinition", "WindowListElement", "Set",
    "QueryParameter", "InterpolateElement", "SampleRatio", "DataType", "NameTypePair",
    "CollationElement",
})  # fmt: skip
# Scalar functions that read the host's files (or model files named in a server's config).
OUTSIDE_FUNCTIONS = frozenset({
    "file", "naiveBayesClassifier", "naiveBayesClassifierWithProb",
    "naiveBayesClassifierWithAllProbs", "catboostEvaluate", "modelEvaluate",
})  # fmt: skip
# Table functions that generate rows or read the warehouse's own tables (readonly=1 refuses
# table functions that reach files or other servers, too; this list is the second lock).
TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "values", "null", "view", "generateSeries",
    "generate_series", "merge", "viewIfPermitted",
})  # fmt: skip
# Output formats the endpoint serves (text, JSON, columnar and ClickHouse's own binary ones).
OUTPUT_FORMATS = frozenset({
    "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "TabSeparatedWithNames", "TSVWithNames",
    "TabSeparatedWithNamesAndTypes", "TSVWithNamesAndTypes", "CSV", "CSVWithNames",
    "CSVWithNamesAndTypes", "JSON", "JSONStrings", "JSONCompact", "JSONCompactStrings",
    "JSONEachRow", "JSONStringsEachRow", "JSONCompactEachRow", "JSONCompactStringsEachRow",
    "JSONCompactEachRowWithNames", "JSONCompactEachRowWithNamesAndTypes", "JSONObjectEachRow",
    "JSONColumns", "JSONCompactColumns", "NDJSON", "JSONLines", "Native", "RowBinary",
    "RowBinaryWithNames", "RowBinaryWithNamesAndTypes", "Pretty", "PrettyCompact",
    "PrettyCompactMonoBlock", "PrettyNoEscapes", "PrettySpace", "Vertical", "Markdown", "Values",
    "XML", "Parquet", "Arrow", "ArrowStream", "ORC", "Null",
})  # fmt: skip
_IDENT = r"(?:[A-Za-z_][A-Za-z0-9_]*|`(?:[^`\\]|\\.)*`)"
_STRING = r"'(?:[^'\\]|\\.)*'"
_SHOW_SHAPES = (
    re.compile(rf"SHOW (?:TABLES|DATABASES)(?: (?:FROM|IN) {_IDENT})?"
               rf"(?: (?:NOT )?I?LIKE {_STRING})?(?: LIMIT \d{{1,9}})?"),
    re.compile(rf"SHOW CREATE (?:TABLE|VIEW) (?:{_IDENT}\.)?{_IDENT}"),
    re.compile(rf"SHOW COLUMNS (?:FROM|IN) (?:{_IDENT}\.)?{_IDENT}(?: (?:FROM|IN) {_IDENT})?"),
)  # fmt: skip
_FORMAT_LINE = re.compile(r"FORMAT `?([A-Za-z_][A-Za-z0-9_]*)`?")


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement the endpoint may run: ``sql`` is the engine's canonical text with the
    output format as its last clause; ``output_format`` the format of the response."""

    sql: str
    output_format: str
    format_clause: bool  # whether the client's text named the format (FORMAT …)
    statement: str  # the canonical text as the client wrote it, without a format added


def _engine(client: Client, sql: str, params: dict[str, Any]) -> list[str]:
    try:
        rows = client.query(sql, parameters=params).result_rows
    except DatabaseError as exc:
        raise QueryError.from_engine(exc) from None
    return [str(r[0]) for r in rows]


def canonical(client: Client, text: str) -> str:
    """The statement in the engine's canonical form (``formatQuery``), or its parse error."""
    try:
        return _engine(client, "SELECT formatQuery({q:String})", {"q": text})[0]
    except QueryError as exc:  # the engine names the wrapper; the client wants its own text
        message = re.sub(r"\.? ?: In scope SELECT formatQuery\(.*?(?=\. \([A-Z_]+\)$|$)", "",
                         str(exc), flags=re.S)  # fmt: skip
        raise QueryError(exc.code, message) from None


def _nodes(tree: list[str]) -> list[tuple[int, str, str]]:
    """(depth, node type, rest of the line) for every line of ``EXPLAIN AST``."""
    out = []
    for line in tree:
        body = line.lstrip(" ")
        kind, _, rest = body.partition(" ")
        out.append((len(line) - len(body), kind, rest))
    return out


def check_tree(tree: list[str]) -> str:
    """Refuse what ``tree`` (``EXPLAIN AST`` lines) must not run; returns the root node type."""
    nodes = _nodes(tree)
    if not nodes or nodes[0][0] != 0 or nodes[0][1] not in QUERY_NODES:
        root = nodes[0][1] if nodes else "?"
        raise QueryError(
            READONLY, f"parwatch: this endpoint does not run {root[:40]} statements "
            "(SELECT, WITH, DESCRIBE, EXISTS, EXPLAIN and plain SHOW only)",
        )  # fmt: skip
    parents: list[str] = []
    for depth, kind, rest in nodes:
        del parents[depth:]
        parent = parents[-1] if parents else ""
        if kind not in NODE_TYPES:
            raise QueryError(READONLY, f"parwatch: this endpoint does not run {kind[:40]!r}")
        if kind == "Literal" and parent in QUERY_NODES:
            raise QueryError(INTO_OUTFILE_NOT_ALLOWED, "INTO OUTFILE is not allowed")
        if kind in QUERY_NODES and kind.startswith("Show") and depth > 0:
            raise QueryError(READONLY, "parwatch: SHOW runs only as a statement of its own")
        if kind == "Function":
            name = rest.split(" ", 1)[0]
            if name in OUTSIDE_FUNCTIONS or (
                parent == "TableExpression" and name not in TABLE_FUNCTIONS
            ):
                raise QueryError(
                    READONLY, f"parwatch: Cannot execute query in readonly mode: {name[:40]}() "
                    "reaches files or other servers; this endpoint reads the warehouse only",
                )  # fmt: skip
        parents.append(kind)
    return nodes[0][1]


def named_format(sql: str) -> str | None:
    """The output format a canonical statement names: its last top-level FORMAT line, as the
    engine reads it (for ``EXPLAIN … SELECT … FORMAT JSON`` too: the EXPLAIN answers in JSON)."""
    formats = [m.group(1) for line in sql.split("\n") if (m := _FORMAT_LINE.fullmatch(line))]
    return formats[-1] if formats else None


def inspect(client: Client, text: str, default_format: str, params: dict[str, Any]) -> Statement:
    """The one read-only statement of ``text``, ready to run; see the module's contract.
    ``params``: the values of its ``{name:Type}`` placeholders (EXPLAIN AST binds them too)."""
    sql = canonical(client, text)
    if not sql.strip():
        raise QueryError(SYNTAX_ERROR, "Empty query")
    kind = check_tree(_engine(client, f"EXPLAIN AST {sql}", params))
    lines = sql.split("\n")
    clauses = [line for line in lines if not _FORMAT_LINE.fullmatch(line)]
    if kind.startswith("Show") and not (
        len(clauses) == 1 and any(s.fullmatch(clauses[0]) for s in _SHOW_SHAPES)
    ):
        raise QueryError(READONLY, "parwatch: SHOW runs in its plain forms only (SHOW TABLES, "
                         "SHOW DATABASES, SHOW CREATE TABLE, SHOW COLUMNS)")  # fmt: skip
    if any(line.startswith("INTO OUTFILE") for line in lines):
        raise QueryError(INTO_OUTFILE_NOT_ALLOWED, "INTO OUTFILE is not allowed")
    named = named_format(sql)
    fmt = named or default_format
    if fmt not in OUTPUT_FORMATS:
        raise QueryError(UNKNOWN_FORMAT, f"parwatch: format {fmt[:40]} is not served here")
    run = sql if named else f"{sql}\nFORMAT {fmt}"
    return Statement(sql=run, output_format=fmt, format_clause=bool(named),
                     statement=sql)  # fmt: skip
