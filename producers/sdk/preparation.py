"""Preparation of an event for Kafka: the exact bytes to send, validated against the contract.

Contract of ``Preparer.prepare(event, now=None)``:

* ``event`` is a JSON object as a mapping, a pydantic event model, or the serialised JSON
  bytes. It becomes UTF-8 JSON in NFC: the bytes that are validated are the bytes that are sent.
* Validation is the pipeline's own: ``schemas.decoding.accept_fast`` (the fast models' yes, which
  ``decode`` gives too) and, whenever that does not settle it, ``schemas.decode`` itself; so the
  SDK accepts exactly what the pipeline accepts.
* Returns a ``PreparedRecord``: the topic of the event's schema (``Topics.for_schema``), the
  contract's key (the model's ``key``: ``{agency_code}:{inspection_id}``,
  ``{agency_code}:{dossier_id}`` or ``{agency_code}:{procedure_code}``), the value, the
  ``event_id`` (unless built with ``event_ids=False``) and the Kafka headers: with a signing
  key, ``parwatch-key-id`` and ``parwatch-signature`` (HMAC-SHA256 of exactly the value bytes,
  ``schemas.signing``).
  Raises ``PublishError`` for an event the contract refuses (too large, not JSON, invalid, or,
  when signing, of another agency than the key's: ``bad_signature``) and ``TypeError`` for
  something that is not an event at all.
* Pure but for the clock: no I/O; ``now`` (for the check that ``occurred_at`` is not too far
  ahead) is the wall clock unless passed in. No state once built, so one ``Preparer`` may serve
  several threads at once.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections.abc import Container, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import BaseModel

from producers.sdk.publisher_config import PublishError
from schemas import InvalidEvent, Reason, decode
from schemas.decoding import MAX_FUTURE_SKEW, accept_fast
from schemas.signing import SigningKey, sign
from schemas.topics import Topics

Event = Mapping[str, Any] | BaseModel | bytes | bytearray | memoryview

_SKEW_S = MAX_FUTURE_SKEW.total_seconds()


class PreparedRecord(NamedTuple):
    """A validated event as it will be sent."""

    topic: str
    key: bytes
    value: bytes
    event_id: str
    headers: tuple[tuple[str, bytes], ...] = ()


_record = tuple.__new__  # a NamedTuple built without its Python-level __new__ (0.3 us)


class Preparer:
    """Serialises and validates events; see the module docstring for the contract."""

    def __init__(
        self,
        topics: Topics,
        known_agencies: Container[str] | None,
        max_event_bytes: int,
        signing_key: SigningKey | None = None,
        *,
        event_ids: bool = True,
    ) -> None:
        """``event_ids=False`` leaves ``PreparedRecord.event_id`` empty: the text of the UUID
        costs about 0.7 us an event, and the publisher needs it only for ``on_delivery``
        (``event_id_of`` finds it in the value when it is needed after all)."""
        self._topics = topics
        self._known: Container[str] = _Anything() if known_agencies is None else known_agencies
        self._max_event_bytes = max_event_bytes
        self._signing_key = signing_key
        self._event_ids = event_ids

    def prepare(self, event: Event, now: datetime | None = None) -> PreparedRecord:
        """The exact bytes to send, validated, with their topic, key and event id. ``now`` (for
        the skew check) defaults to the wall clock."""
        if type(event) is bytes:  # the common case first
            raw = event if event.isascii() else _nfc_bytes(event)
        elif isinstance(event, bytes | bytearray | memoryview):
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
        # raw is NFC now (or not UTF-8): the common case needs only the fast models' yes.
        if now is None:
            clock = time.time()
            valid = accept_fast(raw, self._known, clock + _SKEW_S)
        else:
            valid = accept_fast(raw, self._known, (now + MAX_FUTURE_SKEW).timestamp())
        if valid is None:  # decode decides, and says why it refuses
            if now is None:
                now = datetime.fromtimestamp(clock, UTC)
            try:
                valid = decode(raw, known_agency=self._known, now=now)
            except InvalidEvent as invalid:
                raise PublishError(invalid) from None
        topic = self._topics.for_schema(valid.schema_version)
        key = valid.key.encode()
        event_id = str(valid.event_id) if self._event_ids else ""
        signing = self._signing_key
        if signing is None:
            return _record(PreparedRecord, (topic, key, raw, event_id, ()))
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
        return PreparedRecord(topic, key, raw, event_id, tuple(sign(raw, signing)))


def event_id_of(value: bytes) -> str:
    """The ``event_id`` of a record's value, or "" if it has none (slow: parses the JSON)."""
    try:
        event_id = json.loads(value).get("event_id")
    except (ValueError, AttributeError, RecursionError):
        return ""
    return event_id if isinstance(event_id, str) else ""


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
