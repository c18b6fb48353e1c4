"""Personal data in fields the contract does not name: detection and redaction.

The contract (EVENTS.md) forbids a raw 12-digit citizen ID number or a phone number in any
unnamed field; such an event is refused with ``pii_detected`` and its dead-letter copy has every
match replaced by ``[REDACTED]``. Named fields are validated by the models instead (an
``applicant.id_hash`` that holds a raw ID is reported here too, so that it is redacted).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

REDACTED = "[REDACTED]"

_CITIZEN_ID = r"(?<!\d)\d{12}(?!\d)"
# Vietnamese numbers: mobile 0[35789]xxxxxxxx, landline 02xxxxxxxxx; +84 / 84 instead of 0;
# digits may be grouped with spaces, dots or dashes.
_PHONE = r"(?<![\d+])(?:\+84|84|0)[ .-]?(?:[35789](?:[ .-]?\d){8}|2(?:[ .-]?\d){9})(?!\d)"
PII_PATTERN = re.compile(f"{_CITIZEN_ID}|{_PHONE}")


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        yield path, str(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def find_pii(unnamed: dict[str, Any]) -> list[str]:
    """Paths (dotted) of the values in ``unnamed`` that hold a citizen ID or a phone number."""
    return [path for path, text in _strings(unnamed, "") if PII_PATTERN.search(text)]


def redact(value: Any) -> Any:
    """A deep copy of a decoded JSON value with every ID or phone number replaced."""
    if isinstance(value, str):
        return PII_PATTERN.sub(REDACTED, value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return REDACTED if PII_PATTERN.search(str(value)) else value
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def redact_text(text: str) -> str:
    """Redact a payload that could not be parsed as JSON (best effort, on its text)."""
    return PII_PATTERN.sub(REDACTED, text)
