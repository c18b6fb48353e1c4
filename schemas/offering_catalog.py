"""The service-offering catalog as CSV: which procedure each agency offers online, at which level,
from when (EVENTS.md, "Service offerings"). The provincial portal exports it; each good line
becomes one ``offering/1`` event.

File format: UTF-8 CSV with the header ``OFFERING_COLUMNS``; ``prefill_designed`` is ``true`` or
``false``; ``effective_at`` is RFC 3339 with an explicit offset, or a plain ``YYYY-MM-DD``
meaning 00:00 in Asia/Ho_Chi_Minh. Text is read in NFC.

Contract: ``read_offerings`` is pure (no I/O, no clock) and never raises for bad input: every bad
line gives one ``LineError`` with its line number (a missing or wrong header is one error at
line 1, and then nothing is read). ``offering_event`` is deterministic: the same line always
gives the same ``event_id``, so importing a file twice sends the same events and the pipeline
counts each once.
"""

from __future__ import annotations

import csv
import io
import unicodedata
import uuid
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from schemas.catalog import CatalogError, LineError, bundled_dir, load_catalog
from schemas.fields import EARLIEST, Timestamp
from schemas.offering import OfferingLevel

__all__ = [
    "OFFERING_COLUMNS",
    "LineError",
    "OfferingCatalogError",
    "OfferingLine",
    "bundled_offerings",
    "offering_event",
    "parse_effective_at",
    "read_offerings",
]

OFFERING_COLUMNS = ("agency_code", "procedure_code", "level", "prefill_designed", "effective_at")
LEVELS: tuple[str, ...] = get_args(OfferingLevel)
LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
MAX_PROCEDURE_CODE = 32
MAX_CATALOG_BYTES = 64 * 2**20
"""The largest catalog export read (a province's is about 300 KB; 64 MiB is over a million
lines): a bigger file is refused before it is read."""

OFFERING_NAMESPACE = uuid.UUID("5f0c7a3e-8d2b-4c61-9a47-0e6b2d9c1f58")
"""The uuid5 namespace of offering event ids. Fixed forever: changing it changes every id."""

_TIMESTAMP: TypeAdapter[datetime] = TypeAdapter(Timestamp)


class OfferingCatalogError(CatalogError):
    """The bundled offering catalog has bad lines (a packaging bug, not user input)."""


@dataclass(frozen=True)
class OfferingLine:
    """One good line: the state of the service (agency x procedure) from ``effective_at``
    (aware) on."""

    line: int
    agency_code: str
    procedure_code: str
    level: str
    prefill_designed: bool
    effective_at: datetime


def parse_effective_at(text: str) -> datetime:
    """RFC 3339 with an explicit offset (the contract's own parser), or ``YYYY-MM-DD`` meaning
    00:00 that day in Asia/Ho_Chi_Minh. ``ValueError`` says what is wrong."""
    if len(text) == 10 and text[4:5] == "-" and text[7:8] == "-":
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"effective_at {text!r} is not a valid date") from None
        moment = datetime(day.year, day.month, day.day, tzinfo=LOCAL)
        if moment < EARLIEST:
            raise ValueError(f"effective_at {text!r} is before 1970 (storage limit)")
        return moment
    try:
        return _TIMESTAMP.validate_python(text)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ValueError(
            f"effective_at {text!r}: {reason} (or a date YYYY-MM-DD, 00:00 local time)"
        ) from None


def _line_of(number: int, fields: list[str], known_agencies: Container[str] | None) -> OfferingLine:
    if len(fields) != len(OFFERING_COLUMNS):
        raise ValueError(
            f"expected {len(OFFERING_COLUMNS)} columns ({','.join(OFFERING_COLUMNS)}), "
            f"found {len(fields)}"
        )
    agency, procedure, level, prefill, effective = (f.strip() for f in fields)
    if not agency:
        raise ValueError("agency_code is empty")
    if known_agencies is not None and agency not in known_agencies:
        raise ValueError(f"unknown agency {agency!r} (not in the agency catalog)")
    if not procedure:
        raise ValueError("procedure_code is empty")
    if len(procedure) > MAX_PROCEDURE_CODE:
        raise ValueError(
            f"procedure_code {procedure!r} is {len(procedure)} characters "
            f"(at most {MAX_PROCEDURE_CODE})"
        )
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    if prefill.lower() not in ("true", "false"):
        raise ValueError(f"prefill_designed must be true or false, not {prefill!r}")
    return OfferingLine(
        line=number, agency_code=agency, procedure_code=procedure, level=level,
        prefill_designed=prefill.lower() == "true", effective_at=parse_effective_at(effective),
    )  # fmt: skip


def read_offerings(
    text: str, *, known_agencies: Container[str] | None = None
) -> tuple[list[OfferingLine], list[LineError]]:
    """The good lines of an offering CSV and one ``LineError`` per bad line, in file order.

    ``known_agencies``: the agency codes to accept (None: any). A line repeating an earlier
    line's (agency, procedure, effective_at) instant is a duplicate, whatever its level: the
    state at that instant would be ambiguous. Blank lines are skipped.
    """
    reader = csv.reader(io.StringIO(unicodedata.normalize("NFC", text.removeprefix("\ufeff"))))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        return [], [LineError(1, f"header: {exc}")]
    if header is None:
        return [], [LineError(1, f"missing header: expected {','.join(OFFERING_COLUMNS)}")]
    if tuple(h.strip() for h in header) != OFFERING_COLUMNS:
        unknown = [h for h in header if h.strip() not in OFFERING_COLUMNS]
        detail = f" (unknown column {', '.join(map(repr, unknown))})" if unknown else ""
        return [], [LineError(1, f"header must be {','.join(OFFERING_COLUMNS)}{detail}")]
    good: list[OfferingLine] = []
    errors: list[LineError] = []
    seen: dict[tuple[str, str, datetime], int] = {}
    start = reader.line_num + 1
    while True:
        try:
            fields = next(reader, None)
        except csv.Error as exc:  # e.g. an unterminated quote: the rest is unreadable
            errors.append(LineError(start, f"not CSV: {exc}"))
            break
        if fields is None:
            break
        number, start = start, reader.line_num + 1
        if not fields or fields == [""]:
            continue
        try:
            line = _line_of(number, fields, known_agencies)
        except ValueError as exc:
            errors.append(LineError(number, str(exc)))
            continue
        key = (line.agency_code, line.procedure_code, line.effective_at)
        if key in seen:
            errors.append(LineError(number, (
                f"duplicate: {line.agency_code} {line.procedure_code} already has a state "
                f"at {line.effective_at.isoformat()} (line {seen[key]})"
            )))  # fmt: skip
            continue
        seen[key] = number
        good.append(line)
    return good, errors


def offering_event(line: OfferingLine) -> dict[str, Any]:
    """The ``offering/1`` event of ``line``. ``occurred_at`` keeps the line's offset; the
    ``event_id`` is uuid5(``OFFERING_NAMESPACE``, agency|procedure|instant in UTC|level|
    prefill), so a date and the same instant written with an offset give the same id."""
    instant = line.effective_at.astimezone(UTC).isoformat()
    prefill = "true" if line.prefill_designed else "false"
    name = "|".join((line.agency_code, line.procedure_code, instant, line.level, prefill))
    return {
        "schema": "offering/1",
        "event_id": str(uuid.uuid5(OFFERING_NAMESPACE, name)),
        "occurred_at": line.effective_at.isoformat(),
        "agency_code": line.agency_code,
        "procedure_code": line.procedure_code,
        "level": line.level,
        "prefill_designed": line.prefill_designed,
    }


def bundled_path() -> Path:
    return bundled_dir() / "offerings.csv"


def bundled_offerings() -> list[OfferingLine]:
    """The offering catalog shipped with the project (illustrative, see
    ``schemas/reference/README.md``), checked against the bundled agency catalog. Raises
    ``OfferingCatalogError`` if any line is bad."""
    path = bundled_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise OfferingCatalogError(f"{path}: cannot read: {exc}") from exc
    good, errors = read_offerings(text, known_agencies=load_catalog().agencies)
    if errors:
        shown = "; ".join(f"{path}:{e.line}: {e.message}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise OfferingCatalogError(shown + more)
    return good
