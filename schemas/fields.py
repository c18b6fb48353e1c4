"""Field types shared by the event models: RFC 3339 timestamps with an offset, NFC text."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    StringConstraints,
    WithJsonSchema,
)

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""Storage limit (ClickHouse DateTime64): earlier timestamps are refused as invalid_event.
Later ones are bounded by the ``future_timestamp`` rule."""

# RFC 3339 section 5.6 date-time: an explicit offset (Z or +hh:mm) is mandatory.
# Years from 1970 (the storage limit, see EARLIEST).
_RFC3339 = re.compile(
    r"^(?:19[7-9]\d|[2-9]\d{3})-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


def _require_rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):  # already parsed (Python callers); must be aware
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamp must carry an explicit UTC offset")
        return value
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string with an explicit UTC offset")
    m = _RFC3339.match(value)
    if not m:
        raise ValueError(
            "must be RFC 3339 with an explicit UTC offset, e.g. 2024-06-01T03:00:00+07:00"
        )
    # Parsed here (not by pydantic) because strict mode refuses strings for datetimes;
    # fractions beyond microseconds are truncated, as Python cannot hold them.
    fraction = m.group(1)
    if value[10] == "T" and (fraction is None or len(fraction) <= 7) and value[-1] != "z":
        text = value  # Python 3.11 reads this form as it is
    else:
        fraction = (fraction or "")[:7]
        text = value[:19].replace("t", "T") + fraction + m.group(2).upper().replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:  # e.g. month 13, hour 25
        raise ValueError(f"not a valid date-time: {exc}") from None
    if moment < EARLIEST:
        raise ValueError("must not be before 1970-01-01T00:00:00Z (storage limit)")
    return moment


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


RFC3339_PATTERN = _RFC3339.pattern
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID = re.compile(UUID_PATTERN)


def _require_canonical_uuid(value: Any) -> Any:
    if isinstance(value, UUID):
        return value
    if not isinstance(value, str) or not _UUID.match(value):
        raise ValueError("must be a UUID in its canonical 8-4-4-4-12 hexadecimal form")
    return value  # pydantic parses the canonical text itself (faster than UUID())


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_require_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN}),
]
"""``occurred_at``: RFC 3339 with an explicit offset; naive or numeric timestamps are refused."""

EventId = Annotated[
    UUID,
    BeforeValidator(_require_canonical_uuid),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": UUID_PATTERN}),
]
"""``event_id``: a UUID, canonical hyphenated form (any case); stored lower-case."""

Text = Annotated[str, AfterValidator(_nfc)]
"""Free text, normalised to NFC so Vietnamese diacritics compare and group correctly."""


def bounded_text(max_length: int) -> Any:
    """A non-empty NFC string of at most ``max_length`` characters."""
    return Annotated[
        str, StringConstraints(min_length=1, max_length=max_length), AfterValidator(_nfc)
    ]


AgencyCode = str
"""Any string; membership of the agency catalog is checked after validation (``unknown_agency``)."""
