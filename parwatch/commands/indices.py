"""``parwatch indices``: the province's published annual index results (PAR INDEX, SIPAS, PAPI,
PCI) in the catalog folder's ``annual_indices.csv``: list them, or add a year's result."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import tempfile
import textwrap
import unicodedata
from dataclasses import asdict
from pathlib import Path

from parwatch.errors import UsageError
from parwatch.settings import Settings
from parwatch.table import table_lines
from schemas.catalog import (
    ANNUAL_INDEX_COLUMNS,
    INDEX_NAMES,
    AnnualIndex,
    annual_index_of,
    bundled_dir,
    read_annual_indices,
)

FILE = "annual_indices.csv"

ADD_DESCRIPTION = (
    "Append one published result to annual_indices.csv in PARWATCH_CATALOG_DIR (the folder "
    "of agencies.csv and procedures.csv; the bundled catalog is never edited). The row is "
    "checked first: a known index, a score within 0..scale, a rank within 1..ranked-of, a "
    "publisher and a source (the address or title where the figure was published: enter only "
    "figures you can cite). One row per index and year: --replace overwrites an existing one. "
    "The warehouse's annual_indices table is reloaded with the catalogs by `parwatch migrate`."
)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "indices",
        help="list or add the province's annual index results (PAR INDEX, SIPAS, PAPI, PCI)",
        description=(
            "The province's published annual index results, kept in annual_indices.csv in the "
            "catalog folder (PARWATCH_CATALOG_DIR, else the bundled catalog)."
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = actions.add_parser("list", help="print the results in the catalog folder")
    lst.add_argument("--index", choices=INDEX_NAMES, help="one index (default: all)")
    lst.add_argument("--json", action="store_true", help="print a JSON array")
    lst.set_defaults(run=run_list)
    add = actions.add_parser(
        "add",
        help="append a validated result to annual_indices.csv in PARWATCH_CATALOG_DIR",
        description=textwrap.fill(ADD_DESCRIPTION, 79),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("--index", required=True, choices=INDEX_NAMES, help="which index")
    add.add_argument("--year", required=True, help="the year the result is for (not published)")
    add.add_argument("--score", required=True, help="the score, e.g. 68.74")
    add.add_argument("--scale", required=True, help="the maximum score: 100 (PAPI: 80)")
    add.add_argument("--rank", default="", help="the province's rank (omit if not published)")
    add.add_argument("--ranked-of", default="", help="provinces ranked, e.g. 63")
    add.add_argument("--publisher", required=True, help="e.g. VCCI, Bộ Nội vụ, UNDP/CECODES")
    add.add_argument("--source", required=True, help="the URL or title of the publication")
    add.add_argument("--replace", action="store_true", help="overwrite this index and year")
    add.set_defaults(run=run_add)


def _read(path: Path) -> tuple[str, list[AnnualIndex]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return "", []
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    good, errors = read_annual_indices(text)
    if errors:
        raise UsageError("; ".join(f"{path}:{e.line}: {e.message}" for e in errors[:5]))
    return text, good


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    path = (settings.catalog_dir or bundled_dir()) / FILE
    results = [r for r in _read(path)[1] if args.index in (None, r.index_name)]
    results.sort(key=lambda r: (r.index_name, r.year))
    if args.json:
        print(json.dumps([asdict(r) for r in results], ensure_ascii=False, indent=1))
        return 0
    if not results:
        print(f"no results in {path}")
        return 0
    head = ("index", "year", "score", "rank", "publisher", "source")
    rows = [
        (r.index_name, str(r.year), f"{_number(r.score)}/{_number(r.scale)}",
         f"{r.rank}/{r.ranked_of or '?'}" if r.rank else "", r.publisher, r.source)
        for r in results
    ]  # fmt: skip
    print("\n".join(table_lines(head, rows, right=(1, 2, 3))))
    return 0


def _number(x: float) -> str:
    return format(x, ".15g")  # 87.83 stays 87.83, 100.0 is written 100


def _fields(r: AnnualIndex) -> list[str]:
    return [r.index_name, str(r.year), _number(r.score), _number(r.scale),
            "" if r.rank is None else str(r.rank),
            "" if r.ranked_of is None else str(r.ranked_of), r.publisher, r.source]  # fmt: skip


def run_add(args: argparse.Namespace, settings: Settings) -> int:
    if settings.catalog_dir is None:
        raise UsageError(
            "set PARWATCH_CATALOG_DIR to the folder of your catalogs (start from a copy of the "
            f"bundled {bundled_dir()}); the bundled catalog is not edited"
        )
    if not settings.catalog_dir.is_dir():
        raise UsageError(f"PARWATCH_CATALOG_DIR {settings.catalog_dir}: no such folder")
    path = settings.catalog_dir / FILE
    row = {
        "index_name": args.index, "year": args.year, "score": args.score, "scale": args.scale,
        "rank": args.rank, "ranked_of": args.ranked_of, "publisher": args.publisher,
        "source": args.source,
    }  # fmt: skip
    try:
        result = annual_index_of(
            {k: unicodedata.normalize("NFC", v.strip()) for k, v in row.items()}
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _, existing = _read(path)
    same = [r for r in existing if (r.index_name, r.year) == (result.index_name, result.year)]
    if same and not args.replace:
        old = same[0]
        raise UsageError(
            f"{path} already holds {old.index_name} {old.year} (score {_number(old.score)}, source "
            f"{old.source}); add --replace to overwrite it"
        )
    kept = [r for r in existing if r not in same] + [result]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(ANNUAL_INDEX_COLUMNS)
    writer.writerows(_fields(r) for r in kept)
    # Replace the file whole (a reader never sees half a row), keeping its other rows' order.
    fd, tmp = tempfile.mkstemp(dir=settings.catalog_dir, prefix=".annual_indices.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(out.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    verb = "replaced" if same else "added"
    score = f"{_number(result.score)}/{_number(result.scale)}"
    print(f"{verb} {result.index_name} {result.year} ({score}) in {path}")
    print("load it into the warehouse with `parwatch migrate` (reloads the catalog tables)")
    return 0
