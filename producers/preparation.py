"""Preparation of an event for Kafka: the exact bytes to send, validated against the contract.

Contract of ``Preparer.prepare(event, now)``:

* ``event`` is a JSON object as a mapping, a pydantic event model, or the serialised JSON
  bytes. It becomes UTF-8 JSON in NFC: the bytes that are validated are the bytes that are sent.
* Validation accepts exactly what ``schemas.decode`` accepts (the check the pipeline runs): a
  fast path takes the common valid event, and everything else, refusals included, goes through
  ``decode`` itself, which stays the one definition of the contract.
* Returns a ``PreparedRecord``: the topic of the event's schema, the key
  ``{agency_code}:{inspection_id|dossier_id}``, the value, the ``event_id`` and the Kafka
  headers: with a signing key, ``parwatch-key-id`` and ``parwatch-signature`` (HMAC-SHA256 of
  exactly the value bytes, ``schemas.signing``). Raises ``PublishError`` for an event the
  contract refuses (too large, not JSON, invalid, or, when signing, of another agency than the
  key's: ``bad_signature``) and ``TypeError`` for something that is not an event at all.
* Pure: no I/O and no clock (``now`` is passed in). The only shared state is a cache of model
  field names, so one ``Preparer`` may serve several threads at once.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Container, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from producers.publisher_config import PublishError
from schemas import EVENT_ADAPTER, InvalidEvent, LatestEvent, Reason, decode, upgrade
from schemas.decoding import MAX_FUTURE_SKEW, has_unnamed_fields
from schemas.signing import SigningKey, sign
from schemas.topics import Topics

Event = Mapping[str, Any] | BaseModel | bytes | bytearray | memoryview


class PreparedRecord(NamedTuple):
    """A validated event as it will be sent."""

    topic: str
    key: bytes
    value: bytes
    event_id: str
    headers: tuple[tuple[str, bytes], ...] = ()


class Preparer:
    """Serialises and validates events; see the module docstring for the contract."""

    def __init__(
        self,
        topics: Topics,
        known_agencies: Container[str] | None,
        max_event_bytes: int,
        signing_key: SigningKey | None = None,
    ) -> None:
        self._topics = topics
        self._known: Container[str] = _Anything() if known_agencies is None else known_agencies
        self._max_event_bytes = max_event_bytes
        self._signing_key = signing_key

    def prepare(self, event: Event, now: datetime) -> PreparedRecord:
        """The exact bytes to send, validated, with their topic, key and event id."""
        if isinstance(event, bytes | bytearray | memoryview):
            raw = _nfc_bytes(bytes(event))
        elif isinstance(event, BaseModel):
            raw = _nfc(event.model_dump_json(by_alias=True, exclude_unset=True)).encode()
        elif isinstance(event, Mapping):
            try:
                text = json.dumps(
                    event if isinstance(event, dict) else dict(event),
                    ensure_ascii=False,
                    allow_nan=False,
                    separators=(",", ":"),
                )
            except (TypeError, ValueError) as exc:
                raise PublishError(
                    InvalidEvent(Reason.MALFORMED_JSON, f"not serialisable as JSON: {exc}")
                ) from None
            raw = _nfc(text).encode()
        else:
            raise TypeError(f"cannot publish a {type(event).__name__}: pass a dict, model or bytes")
        if len(raw) > self._max_event_bytes:
            raise PublishError(
                InvalidEvent(
                    Reason.INVALID_EVENT,
                    f"event of {len(raw)} bytes exceeds {self._max_event_bytes} bytes",
                )
            )
        valid = self._validate(raw, now)
        topic = self._topics.for_schema(valid.schema_version)
        headers: tuple[tuple[str, bytes], ...] = ()
        signing = self._signing_key
        if signing is not None:
            if valid.agency_code != signing.agency_code:
                raise PublishError(
                    InvalidEvent(
                        Reason.BAD_SIGNATURE,
                        f"agency_code {valid.agency_code!r} is not the signing key's agency "
                        f"({signing.agency_code}, key {signing.key_id})",
                        agency_code=valid.agency_code,
                        event_id=str(valid.event_id),
                    )
                )
            headers = tuple(sign(raw, signing))
        return PreparedRecord(topic, valid.key.encode(), raw, str(valid.event_id), headers)

    def _validate(self, raw: bytes, now: datetime) -> LatestEvent:
        """``schemas.decode(raw)``, with a fast path for the common case.

        The fast path accepts only what ``decode`` accepts: a payload the models accept, with no
        unnamed field (so no personal data can hide in one), a known agency and a timestamp
        within the skew. Everything else, refusals included, goes through ``decode`` itself,
        which stays the one definition of the contract.
        """
        try:
            event = EVENT_ADAPTER.validate_json(raw)
        except ValidationError:
            event = None
        if (
            event is None
            or has_unnamed_fields(event)
            or event.agency_code not in self._known
            or event.occurred_at - now > MAX_FUTURE_SKEW
        ):
            try:
                return decode(raw, known_agency=self._known, now=now)
            except InvalidEvent as invalid:
                raise PublishError(invalid) from None
        return upgrade(event)


class _Anything:
    def __contains__(self, item: object) -> bool:
        return True


def _nfc(text: str) -> str:
    # NFC of the whole JSON text equals NFC of each string in it: JSON syntax is ASCII and no
    # ASCII character composes with a following mark.
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def _nfc_bytes(raw: bytes) -> bytes:
    if raw.isascii():
        return raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw  # decode() refuses it as malformed_json
    return raw if unicodedata.is_normalized("NFC", text) else _nfc(text).encode("utf-8")
