"""Reference catalogs: the agencies, the procedures and the province's published annual index
results, as data files shipped with the project.

Units are renamed, merged and split (the 2025 two-tier reform abolished the district level), so
agency codes carry validity dates (``valid_to`` exclusive). The files are UTF-8 CSV in NFC; the
warehouse loads the same files (reloadable without a restart).
"""

from __future__ import annotations

import csv
import io
import math
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal

from schemas.errors import PipelineError

AgencyKind = Literal["province", "department", "district", "commune"]
ProcedureLevel = Literal["province", "district", "commune"]

AGENCY_COLUMNS = ("code", "name", "kind", "parent", "valid_from", "valid_to")
PROCEDURE_COLUMNS = ("code", "name", "agency", "level", "full_process_eligible")
ANNUAL_INDEX_COLUMNS = (
    "index_name", "year", "score", "scale", "rank", "ranked_of", "publisher", "source",
)  # fmt: skip
IndexName = Literal["PAR_INDEX", "SIPAS", "PAPI", "PCI"]
INDEX_NAMES: tuple[IndexName, ...] = ("PAR_INDEX", "SIPAS", "PAPI", "PCI")


class CatalogError(PipelineError, ValueError):
    """A catalog file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class Agency:
    code: str
    name: str
    kind: AgencyKind
    parent: str | None
    valid_from: date
    valid_to: date | None  # exclusive; None while the unit exists

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)


@dataclass(frozen=True, slots=True)
class Procedure:
    code: str
    name: str
    agency: str
    level: ProcedureLevel
    full_process_eligible: bool


@dataclass(frozen=True, slots=True)
class AnnualIndex:
    """One published result of the province: ``score`` out of ``scale``, ``rank`` among
    ``ranked_of`` provinces (either may be unknown), with who published it and where."""

    index_name: IndexName
    year: int
    score: float
    scale: float
    rank: int | None
    ranked_of: int | None
    publisher: str
    source: str


@dataclass(frozen=True, slots=True)
class LineError:
    """One bad line of a reference file: its number (1 = the header) and what is wrong."""

    line: int
    message: str


@dataclass(frozen=True)
class Catalog:
    """The catalogs, indexed by code (annual results in file order). Immutable: a reload builds
    a new one."""

    agencies: dict[str, Agency]
    procedures: dict[str, Procedure]
    annual_indices: tuple[AnnualIndex, ...] = field(default=())


def _rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from exc
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != columns:
        raise CatalogError(f"{path}: header must be {','.join(columns)}")
    rows = []
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            raise CatalogError(f"{path}:{reader.line_num}: expected {len(columns)} columns")
        rows.append((reader.line_num, {k: unicodedata.normalize("NFC", v) for k, v in row.items()}))
    return rows


def _date(value: str, where: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CatalogError(f"{where}: not an ISO date: {value!r}") from exc


def load_agencies(path: Path) -> dict[str, Agency]:
    agencies: dict[str, Agency] = {}
    for line, row in _rows(path, AGENCY_COLUMNS):
        where = f"{path}:{line}"
        if row["kind"] not in ("province", "department", "district", "commune"):
            raise CatalogError(f"{where}: unknown kind {row['kind']!r}")
        if row["code"] in agencies:
            raise CatalogError(f"{where}: duplicate agency code {row['code']!r}")
        agencies[row["code"]] = Agency(
            code=row["code"],
            name=row["name"],
            kind=row["kind"],  # type: ignore[arg-type]
            parent=row["parent"] or None,
            valid_from=_date(row["valid_from"], where),
            valid_to=_date(row["valid_to"], where) if row["valid_to"] else None,
        )
    for a in agencies.values():
        if a.parent is not None and a.parent not in agencies:
            raise CatalogError(f"{path}: agency {a.code} has unknown parent {a.parent!r}")
    return agencies


def load_procedures(path: Path, agencies: dict[str, Agency]) -> dict[str, Procedure]:
    procedures: dict[str, Procedure] = {}
    for line, row in _rows(path, PROCEDURE_COLUMNS):
        where = f"{path}:{line}"
        if row["code"] in procedures:
            raise CatalogError(f"{where}: duplicate procedure code {row['code']!r}")
        if row["agency"] not in agencies:
            raise CatalogError(f"{where}: unknown agency {row['agency']!r}")
        if row["level"] not in ("province", "district", "commune"):
            raise CatalogError(f"{where}: unknown level {row['level']!r}")
        if row["full_process_eligible"] not in ("true", "false"):
            raise CatalogError(f"{where}: full_process_eligible must be true or false")
        procedures[row["code"]] = Procedure(
            code=row["code"],
            name=row["name"],
            agency=row["agency"],
            level=row["level"],  # type: ignore[arg-type]
            full_process_eligible=row["full_process_eligible"] == "true",
        )
    return procedures


def _int(text: str, name: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    return value


def _float(text: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {text!r}")
    return value


def annual_index_of(row: dict[str, str]) -> AnnualIndex:
    """One validated result from a row of text fields (the CSV's columns); ``ValueError`` says
    what is wrong. ``rank`` and ``ranked_of`` may be empty (unknown); the score may not."""
    name = row["index_name"]
    if name not in INDEX_NAMES:
        raise ValueError(f"index_name must be one of {', '.join(INDEX_NAMES)}, not {name!r}")
    year = _int(row["year"], "year", 1990, 2100)
    if not row["score"]:
        raise ValueError("score is empty (a result without a published score is left out)")
    score, scale = _float(row["score"], "score"), _float(row["scale"], "scale")
    if scale <= 0:
        raise ValueError(f"scale must be above 0, not {row['scale']}")
    if not 0 <= score <= scale:
        raise ValueError(f"score {row['score']} is outside 0..{row['scale']} (the scale)")
    ranked_of = _int(row["ranked_of"], "ranked_of", 1, 1000) if row["ranked_of"] else None
    rank = _int(row["rank"], "rank", 1, ranked_of or 1000) if row["rank"] else None
    if not row["publisher"].strip():
        raise ValueError("publisher is empty")
    if not row["source"].strip():
        raise ValueError("source is empty (the title or address where the figure was published)")
    return AnnualIndex(
        index_name=name,
        year=year, score=score, scale=scale, rank=rank, ranked_of=ranked_of,
        publisher=row["publisher"].strip(), source=row["source"].strip(),
    )  # fmt: skip


def read_annual_indices(text: str) -> tuple[list[AnnualIndex], list[LineError]]:
    """Parse ``annual_indices.csv`` text: the good results and one ``LineError`` per bad line
    (a missing or wrong header is one error at line 1, and nothing else is read). One result
    per (index_name, year)."""
    reader = csv.reader(io.StringIO(unicodedata.normalize("NFC", text.removeprefix("\ufeff"))))
    header = next(reader, None)
    if header is None or tuple(header) != ANNUAL_INDEX_COLUMNS:
        return [], [LineError(1, f"header must be {','.join(ANNUAL_INDEX_COLUMNS)}")]
    good: list[AnnualIndex] = []
    errors: list[LineError] = []
    seen: dict[tuple[str, int], int] = {}
    start = reader.line_num + 1
    for fields in reader:
        line, start = start, reader.line_num + 1
        if not fields:
            continue
        if len(fields) != len(ANNUAL_INDEX_COLUMNS):
            errors.append(LineError(line, f"expected {len(ANNUAL_INDEX_COLUMNS)} columns, "
                                          f"found {len(fields)}"))  # fmt: skip
            continue
        try:
            result = annual_index_of(dict(zip(ANNUAL_INDEX_COLUMNS, fields, strict=True)))
        except ValueError as exc:
            errors.append(LineError(line, str(exc)))
            continue
        key = (result.index_name, result.year)
        if key in seen:
            errors.append(LineError(line, f"duplicate {key[0]} {key[1]} (line {seen[key]})"))
            continue
        seen[key] = line
        good.append(result)
    return good, errors


def load_annual_indices(path: Path) -> tuple[AnnualIndex, ...]:
    """The results in ``path``; none when the file does not exist (a catalog folder made before
    the file was added). A bad line raises ``CatalogError`` naming every bad line."""
    if not path.exists():
        return ()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read: {exc}") from exc
    good, errors = read_annual_indices(text)
    if errors:
        raise CatalogError("; ".join(f"{path}:{e.line}: {e.message}" for e in errors))
    return tuple(good)


def bundled_dir() -> Path:
    """The folder of the catalogs shipped with the project (``schemas/reference``)."""
    return Path(str(resources.files("schemas") / "reference"))


def load_catalog(directory: Path | None = None) -> Catalog:
    """Load ``agencies.csv``, ``procedures.csv`` and ``annual_indices.csv`` (optional) from
    ``directory`` (default: bundled)."""
    d = directory or bundled_dir()
    agencies = load_agencies(d / "agencies.csv")
    return Catalog(
        agencies=agencies,
        procedures=load_procedures(d / "procedures.csv", agencies),
        annual_indices=load_annual_indices(d / "annual_indices.csv"),
    )
