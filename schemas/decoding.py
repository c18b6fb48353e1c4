"""``decode(bytes) -> event``: the one boundary where raw bytes become a validated event.

Every failure becomes an ``InvalidEvent`` with a ``Reason`` from the closed set, checked in this
order (the first that applies wins):

1. ``malformed_json``: not UTF-8, not JSON, or not a JSON object;
2. ``unsupported_schema``: ``schema`` missing or not a version this build accepts;
3. ``pii_detected``: a raw citizen ID or phone number in an unnamed field (or a raw ID in
   ``applicant.id_hash``); the payload kept for dead letters is redacted;
4. ``invalid_event``: the model refuses it; ``errors`` lists every field problem;
5. ``unknown_agency``: ``agency_code`` is not in the agency catalog;
6. ``future_timestamp``: ``occurred_at`` more than ``max_skew`` ahead of ``now``.

Pure: no I/O, no clock. ``now`` is passed in. Unnamed fields are kept (``model_extra``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Container
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from schemas.errors import FieldError, InvalidEvent, Reason
from schemas.events import EVENT_ADAPTER, MODELS, SUPPORTED_SCHEMAS, LatestEvent, upgrade
from schemas.fastpath import FAST_ADAPTER, has_unnamed, nfc_safe
from schemas.pii import PII_PATTERN, find_pii, redact, redact_text

MAX_FUTURE_SKEW = timedelta(minutes=10)
_FAST = FAST_ADAPTER.validator.validate_json  # the TypeAdapter's own wrapper costs a call
_RAW_ID_IN_HASH = re.compile(r"^\d{12}$")


@cache
def _named(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """The wire names a model defines, each with its nested model if it has one."""
    names: dict[str, type[BaseModel] | None] = {}
    for name, info in model.model_fields.items():
        nested = None
        for arg in getattr(info.annotation, "__args__", (info.annotation,)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                nested = arg
        names[info.alias or name] = nested
    return names


def unnamed_fields(obj: dict[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """The values of ``obj`` under keys that the contract does not name, at any depth."""
    out: dict[str, Any] = {}
    named = _named(model)
    for key, value in obj.items():
        if key not in named:
            out[key] = value
            continue
        nested = named[key]
        if nested is not None and isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in unnamed_fields(value, nested).items()})
    return out


def _pii_paths(obj: dict[str, Any], model: type[BaseModel]) -> list[str]:
    paths = find_pii(unnamed_fields(obj, model))
    applicant = obj.get("applicant")
    if isinstance(applicant, dict):
        id_hash = applicant.get("id_hash")
        if isinstance(id_hash, int | str) and not isinstance(id_hash, bool):
            text = str(id_hash)
            if _RAW_ID_IN_HASH.match(text) or PII_PATTERN.fullmatch(text):
                paths.append("applicant.id_hash")
    return paths


def _redacted_payload(obj: dict[str, Any]) -> bytes:
    clean = redact(obj)
    applicant = clean.get("applicant")
    if isinstance(applicant, dict) and "id_hash" in applicant:
        applicant["id_hash"] = "[REDACTED]"
    return _utf8(json.dumps(clean, ensure_ascii=False))


def _pii_refusal(
    obj: dict[str, Any], model: type[BaseModel], agency: str | None, event_id: str | None
) -> InvalidEvent | None:
    pii = _pii_paths(obj, model)
    if not pii:
        return None
    return InvalidEvent(
        Reason.PII_DETECTED,
        f"personal data (citizen ID or phone number) in {', '.join(pii)}",
        errors=tuple(FieldError(p, "personal data") for p in pii),
        payload=_redacted_payload(obj),
        agency_code=agency,
        event_id=event_id,
    )


def _field_errors(exc: ValidationError) -> tuple[FieldError, ...]:
    errors = []
    for err in exc.errors(include_url=False, include_input=False):
        # Drop the union tag (``inspection/1``) that pydantic puts first in the location.
        loc = [str(p) for p in err["loc"] if str(p) not in SUPPORTED_SCHEMAS]
        errors.append(FieldError(loc=".".join(loc) or "(event)", msg=err["msg"]))
    return tuple(errors)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse(text: str | bytes) -> Any:
    """Standard JSON only: NaN and Infinity are refused. Raises ValueError or RecursionError."""
    return json.loads(text, parse_constant=_reject_constant)


def _malformed(detail: str, text: str) -> InvalidEvent:
    # Not personal data by reason, but redacted anyway: a broken payload may still hold some.
    return InvalidEvent(Reason.MALFORMED_JSON, detail[:500], payload=_utf8(redact_text(text)))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", errors="replace")  # lone surrogates cannot be encoded


def _diagnose(raw: bytes, exc: ValidationError) -> InvalidEvent:
    """Slow path, only for payloads the fast path refused: say exactly why."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return _malformed(f"not UTF-8: {e.reason} at byte {e.start}",
                          raw.decode("utf-8", errors="replace"))  # fmt: skip
    try:
        obj = _parse(text)
    except (ValueError, RecursionError) as e:
        msg = str(e) if isinstance(e, ValueError) else "nested too deeply"
        return _malformed(f"not JSON: {msg}", text)
    # json.loads is laxer than the contract's parser (lone surrogates, for one).
    strict = [e["msg"] for e in exc.errors(include_url=False) if e["type"] == "json_invalid"]
    if strict:
        return _malformed(f"not JSON: {strict[0]}", text)
    if not isinstance(obj, dict):
        return InvalidEvent(
            Reason.MALFORMED_JSON, "top-level value is not a JSON object", payload=raw
        )
    schema = obj.get("schema")
    agency = obj.get("agency_code") if isinstance(obj.get("agency_code"), str) else None
    event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
    if not isinstance(schema, str) or schema not in SUPPORTED_SCHEMAS:
        shown = repr(schema)[:80] if "schema" in obj else "missing"
        return InvalidEvent(
            Reason.UNSUPPORTED_SCHEMA,
            f"schema {shown}; supported: {', '.join(sorted(SUPPORTED_SCHEMAS))}",
            payload=raw,
            agency_code=agency,
            event_id=event_id,
        )
    refusal = _pii_refusal(obj, MODELS[schema], agency, event_id)
    if refusal is not None:
        return refusal
    errors = _field_errors(exc)
    return InvalidEvent(
        Reason.INVALID_EVENT,
        "; ".join(f"{e.loc}: {e.msg}" for e in errors)[:1000],
        errors=errors,
        payload=raw,
        agency_code=agency,
        event_id=event_id,
    )


_last_limit: tuple[datetime, timedelta, float] | None = None


def _limit(now: datetime, max_skew: timedelta) -> float:
    """``(now + max_skew).timestamp()``, remembered: a batch decodes every event with one
    ``now``. Comparing ``timestamp()`` floats orders instants exactly as comparing the aware
    datetimes (two instants a microsecond apart give two floats until the year 2242), and costs
    less than a comparison of datetimes with different time zone objects."""
    global _last_limit
    last = _last_limit
    if last is not None and last[0] is now and last[1] is max_skew:
        return last[2]
    limit = (now + max_skew).timestamp()
    _last_limit = (now, max_skew, limit)
    return limit


def decode(
    raw: bytes,
    *,
    known_agency: Container[str],
    now: datetime,
    max_skew: timedelta = MAX_FUTURE_SKEW,
) -> LatestEvent:
    """Validate ``raw`` against the contract and return the event in its latest version.

    ``known_agency`` holds the agency catalog's codes (a set, or ``Catalog.agencies``). Raises
    ``InvalidEvent`` (never anything else for bad input); the caller records its origin.
    """
    return decode_timed(raw, known_agency, now, max_skew)[0]


def decode_timed(
    raw: bytes, known_agency: Container[str], now: datetime,
    max_skew: timedelta = MAX_FUTURE_SKEW,
) -> tuple[LatestEvent, float]:  # fmt: skip
    """``decode``, and ``occurred_at.timestamp()``: the skew check computes it, and the worker
    needs it again for the event's rows (it costs about half a microsecond an event)."""
    event: LatestEvent | None = None
    # nfc_safe(raw), inline: the fast models' results equal the contract's (see ``fastpath``)
    if b"\\u" not in raw and (raw.isascii() or nfc_safe(raw)):
        try:
            event = _FAST(raw)
        except ValidationError:
            pass  # the contract's models decide, and say why
        else:
            unnamed = has_unnamed(event)  # type: ignore[arg-type]
    if event is None:
        try:
            event = EVENT_ADAPTER.validate_json(raw)
        except ValidationError as exc:
            raise _diagnose(raw, exc) from None
        unnamed = has_unnamed_fields(event)
    if unnamed:  # only then can an unnamed field hold personal data
        try:
            obj = _parse(raw)
        except (ValueError, RecursionError) as e:
            text = raw.decode("utf-8", errors="replace")
            raise _malformed(f"not JSON: {e}", text) from None
        refusal = _pii_refusal(obj, type(event), event.agency_code, str(event.event_id))
        if refusal is not None:
            raise refusal
    if event.agency_code not in known_agency:
        raise InvalidEvent(
            Reason.UNKNOWN_AGENCY,
            f"agency_code {event.agency_code!r} is not in the agency catalog",
            payload=raw,
            agency_code=event.agency_code,
            event_id=str(event.event_id),
        )
    ts = event.occurred_at.timestamp()
    if ts > _limit(now, max_skew):
        raise InvalidEvent(
            Reason.FUTURE_TIMESTAMP,
            f"occurred_at {event.occurred_at.isoformat()} is more than "
            f"{int(max_skew.total_seconds() // 60)} min ahead of {now.isoformat()}",
            payload=raw,
            agency_code=event.agency_code,
            event_id=str(event.event_id),
        )
    return upgrade(event), ts


def accept_fast(raw: bytes, known_agency: Container[str], limit: float) -> LatestEvent | None:
    """``decode``'s common case alone, for a caller that needs a yes (the publisher SDK): the
    event when the fast models accept ``raw``, no unnamed field holds personal data, its agency
    is in ``known_agency`` and ``occurred_at.timestamp()`` is at most ``limit`` (now plus the
    skew, as a Unix time); None when ``decode`` must decide (it then accepts or refuses ``raw``
    as always, so a caller falls back to it). ``raw`` must be NFC already, or not UTF-8 at all
    (whatever is not UTF-8 the fast models refuse): this skips ``nfc_safe``'s decode and check,
    which the publisher has just made while normalising. About 1.5 us an event less than
    ``decode``."""
    if b"\\u" in raw:
        return None
    try:
        event = _FAST(raw)
    except ValidationError:
        return None
    if event.agency_code not in known_agency or event.occurred_at.timestamp() > limit:
        return None
    if has_unnamed(event):
        try:
            if _pii_paths(_parse(raw), type(event)):
                return None
        except (ValueError, RecursionError):
            return None
    return upgrade(event)


@cache
def _nested(model: type[BaseModel]) -> tuple[str, ...]:
    """Attribute names of the fields that can hold a nested model."""
    return tuple(
        name
        for name, info in model.model_fields.items()
        if _named(model)[info.alias or name] is not None
    )


def has_unnamed_fields(model: BaseModel) -> bool:
    """Whether ``model`` or a model nested in it holds fields the contract does not name."""
    if model.__pydantic_extra__:
        return True
    for name in _nested(type(model)):
        value = getattr(model, name)
        if value is not None and has_unnamed_fields(value):
            return True
    return False
