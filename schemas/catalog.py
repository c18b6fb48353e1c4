"""Reference catalogs: the agencies and the procedures, as data files shipped with the project.

Units are renamed, merged and split (the 2025 two-tier reform abolished the district level), so
agency codes carry validity dates (``valid_to`` exclusive). The files are UTF-8 CSV in NFC; the
warehouse loads the same files (reloadable without a restart).
"""

from __future__ import annotations

import csv
import unicodedata
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Literal

from schemas.errors import PipelineError

AgencyKind = Literal["province", "department", "district", "commune"]
ProcedureLevel = Literal["province", "district", "commune"]

AGENCY_COLUMNS = ("code", "name", "kind", "parent", "valid_from", "valid_to")
PROCEDURE_COLUMNS = ("code", "name", "agency", "level", "full_process_eligible")


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


@dataclass(frozen=True)
class Catalog:
    """Both catalogs, indexed by code. Immutable: a reload builds a new one."""

    agencies: dict[str, Agency]
    procedures: dict[str, Procedure]


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


def bundled_dir() -> Path:
    """The folder of the catalogs shipped with the project (``schemas/reference``)."""
    return Path(str(resources.files("schemas") / "reference"))


def load_catalog(directory: Path | None = None) -> Catalog:
    """Load ``agencies.csv`` and ``procedures.csv`` from ``directory`` (default: bundled)."""
    d = directory or bundled_dir()
    agencies = load_agencies(d / "agencies.csv")
    return Catalog(agencies=agencies, procedures=load_procedures(d / "procedures.csv", agencies))
