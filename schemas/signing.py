"""Event signing: HMAC-SHA256 over the exact value bytes, the key id and signature in headers.

Wire format (``schemas/SIGNING.md`` for agencies):

* header ``parwatch-key-id``: the key id, ASCII (``[A-Za-z0-9._:-]``, at most 128 characters);
* header ``parwatch-signature``: ``v1=`` then the lowercase hex HMAC-SHA256 of the message
  value, with the key's secret (32 random bytes) as the HMAC key; any other form (uppercase
  hex included) is refused.

The keyring (a JSON file, ``load_keyring``) holds, per agency, at most two *active* keys (so an
agency can switch keys without a gap) and any number of retired ones. A key verifies an event
when it is in the keyring, active, within ``not_before``/``not_after`` (``not_after``
exclusive), and belongs to the event's ``agency_code``.

Contract:

* Pure: no clock reads (``now`` is passed in), no I/O except ``load_keyring``/``dump_keyring``.
* ``check_signature`` returns ``None`` or an ``InvalidEvent`` with ``Reason.BAD_SIGNATURE``; its
  detail names the key id and what is wrong, never the secret or the full signature.
* Comparison is constant-time (``hmac.compare_digest``). Signing or verifying ~400 bytes costs a
  few microseconds.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from schemas.errors import InvalidEvent, PipelineError, Reason

KEY_ID_HEADER = "parwatch-key-id"
SIGNATURE_HEADER = "parwatch-signature"
SIGNATURE_PREFIX = b"v1="
MAX_ACTIVE_PER_AGENCY = 2
MIN_SECRET_BYTES = 16
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SIGNATURE_FORMAT = re.compile(rb"v1=[0-9a-f]{64}")
KEYRING_VERSION = 1

Headers = Iterable[tuple[str, bytes]] | Mapping[str, bytes]
Status = Literal["active", "retired"]


class KeyringError(PipelineError, ValueError):
    """A keyring file that cannot be used; the message names the file, the entry and the field."""


_BLOCK = 64  # SHA-256's block size
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _pads(secret: bytes) -> tuple[Any, Any]:
    """SHA-256 states after the HMAC inner and outer key blocks (RFC 2104), to copy per message:
    the same MAC as ``hmac.digest``, without redoing the key schedule (0.7 instead of 1.8 µs)."""
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    block = secret.ljust(_BLOCK, b"\0")
    return hashlib.sha256(block.translate(_IPAD)), hashlib.sha256(block.translate(_OPAD))


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One agency key. ``secret`` is the raw HMAC key; it is never shown in ``repr``."""

    key_id: str
    agency_code: str
    secret: bytes = field(repr=False)
    status: Status = "active"
    created_at: datetime | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None  # exclusive
    _pads: tuple[Any, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pads", _pads(self.secret))

    def mac(self, value: bytes) -> bytes:
        """``v1=<hex HMAC-SHA256(secret, value)>`` as ASCII bytes (``signature``, faster)."""
        inner, outer = self._pads[0].copy(), self._pads[1].copy()
        inner.update(value)
        outer.update(inner.digest())
        digest: str = outer.hexdigest()
        return SIGNATURE_PREFIX + digest.encode()

    def valid_at(self, now: datetime) -> bool:
        return (self.not_before is None or self.not_before <= now) and (
            self.not_after is None or now < self.not_after
        )


@dataclass(frozen=True)
class Keyring:
    """Keys by id. Immutable: adding or retiring a key builds a new keyring."""

    keys: Mapping[str, SigningKey]

    def get(self, key_id: str) -> SigningKey | None:
        return self.keys.get(key_id)

    def for_agency(self, agency_code: str) -> list[SigningKey]:
        """The agency's keys in keyring order (oldest first: new keys are appended)."""
        return [k for k in self.keys.values() if k.agency_code == agency_code]

    def active(self, agency_code: str) -> list[SigningKey]:
        return [k for k in self.for_agency(agency_code) if k.status == "active"]


# -- signing and verifying ------------------------------------------------------------------


def signature(value: bytes, secret: bytes) -> bytes:
    """``v1=<hex HMAC-SHA256(secret, value)>`` as ASCII bytes."""
    return SIGNATURE_PREFIX + hmac.digest(secret, value, "sha256").hex().encode()


def sign(value: bytes, key: SigningKey) -> list[tuple[str, bytes]]:
    """The two headers that sign ``value`` (the exact bytes sent) with ``key``."""
    return [
        (KEY_ID_HEADER, key.key_id.encode("ascii")),
        (SIGNATURE_HEADER, key.mac(value)),
    ]


class SignatureError(PipelineError, ValueError):
    """Why a message's signature is refused (the text is safe to store: no secrets)."""


def _header_values(headers: Headers | None) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    if headers is None:
        return found
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if name in (KEY_ID_HEADER, SIGNATURE_HEADER):
            found.setdefault(name, []).append(bytes(value) if value is not None else b"")
    return found


def verify(value: bytes, headers: Headers | None, keyring: Keyring, *, now: datetime) -> SigningKey:
    """The key that signed ``value``, or ``SignatureError`` saying why there is none.

    Checks, in order: both headers present once; the key id known, active and valid at ``now``;
    the signature format; the HMAC (constant-time). Does not check the agency: see
    ``check_signature``.
    """
    found = _header_values(headers)
    key_ids, sigs = found.get(KEY_ID_HEADER, []), found.get(SIGNATURE_HEADER, [])
    if not key_ids and not sigs:
        raise SignatureError(f"unsigned: no {KEY_ID_HEADER} / {SIGNATURE_HEADER} headers")
    if len(key_ids) != 1 or len(sigs) != 1:
        raise SignatureError(
            f"expected one {KEY_ID_HEADER} and one {SIGNATURE_HEADER} header, "
            f"got {len(key_ids)} and {len(sigs)}"
        )
    try:
        key_id = key_ids[0].decode("ascii")
    except UnicodeDecodeError:
        raise SignatureError(f"{KEY_ID_HEADER} is not ASCII") from None
    if not KEY_ID_PATTERN.match(key_id):
        raise SignatureError(f"{KEY_ID_HEADER} {key_id[:40]!r} is not a valid key id")
    key = keyring.get(key_id)
    if key is None:
        raise SignatureError(f"key {key_id} is not in the keyring")
    if key.status != "active":
        raise SignatureError(f"key {key_id} of {key.agency_code} is retired")
    if not key.valid_at(now):
        raise SignatureError(
            f"key {key_id} of {key.agency_code} is not valid at {now.isoformat()} "
            f"(valid {_when(key.not_before)} to {_when(key.not_after)})"
        )
    sig = sigs[0]
    if not _SIGNATURE_FORMAT.fullmatch(sig):  # lowercase only, as SIGNING.md specifies
        raise SignatureError(f"{SIGNATURE_HEADER} is not v1=<64 lowercase hex digits>")
    if not hmac.compare_digest(sig, key.mac(value)):
        raise SignatureError(f"signature does not match the value bytes for key {key_id}")
    return key


def check_signature(
    value: bytes,
    headers: Headers | None,
    keyring: Keyring,
    agency_code: str | None,
    *,
    now: datetime,
) -> InvalidEvent | None:
    """``None`` when ``value`` is signed by a valid key of ``agency_code``; else the refusal.

    ``agency_code`` is the event's own ``agency_code``; ``None`` when the payload has none that
    can be read (it is then refused for another reason): only the signature is checked.
    """
    try:
        key = verify(value, headers, keyring, now=now)
    except SignatureError as exc:
        return InvalidEvent(Reason.BAD_SIGNATURE, str(exc), payload=value, agency_code=agency_code)
    if agency_code is not None and key.agency_code != agency_code:
        return InvalidEvent(
            Reason.BAD_SIGNATURE,
            f"signed with key {key.key_id} of {key.agency_code}, "
            f"but the event's agency_code is {agency_code!r}",
            payload=value,
            agency_code=agency_code,
        )
    return None


def _when(t: datetime | None) -> str:
    return t.isoformat() if t is not None else "-"


# -- the keyring file -----------------------------------------------------------------------


def _decode_secret(text: str) -> bytes:
    """Base64 (standard or URL-safe, padding optional) or ``hex:`` followed by hex digits."""
    if text.startswith("hex:"):
        return binascii.unhexlify(text[4:])
    padded = text + "=" * (-len(text) % 4)
    alphabet = b"-_" if ("-" in text or "_" in text) else None
    return base64.b64decode(padded, altchars=alphabet, validate=True)


def _timestamp(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise KeyringError(f"{where}: expected an RFC 3339 timestamp string, got {value!r}")
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise KeyringError(f"{where}: {value!r} is not an RFC 3339 timestamp") from None
    if t.tzinfo is None:
        raise KeyringError(f"{where}: {value!r} has no UTC offset")
    return t


def _parse_key(entry: Any, where: str) -> SigningKey:
    if not isinstance(entry, dict):
        raise KeyringError(f"{where}: expected an object")
    unknown = sorted(set(entry) - {"key_id", "agency_code", "secret", "status", "created_at",
                                   "not_before", "not_after"})  # fmt: skip
    if unknown:
        raise KeyringError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for name in ("key_id", "agency_code", "secret"):
        if not isinstance(entry.get(name), str) or not entry[name]:
            raise KeyringError(f"{where}.{name}: missing or not a non-empty string")
    key_id = entry["key_id"]
    if not KEY_ID_PATTERN.match(key_id):
        raise KeyringError(f"{where}.key_id: {key_id!r} must match {KEY_ID_PATTERN.pattern}")
    try:
        secret = _decode_secret(entry["secret"])
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where}.secret: not base64 (or hex:…)") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise KeyringError(
            f"{where}.secret: {len(secret)} bytes; at least {MIN_SECRET_BYTES} are needed"
        )
    status = entry.get("status", "active")
    if status not in ("active", "retired"):
        raise KeyringError(f"{where}.status: {status!r} is not 'active' or 'retired'")
    key = SigningKey(
        key_id=key_id,
        agency_code=entry["agency_code"],
        secret=secret,
        status=status,
        created_at=_timestamp(entry.get("created_at"), f"{where}.created_at"),
        not_before=_timestamp(entry.get("not_before"), f"{where}.not_before"),
        not_after=_timestamp(entry.get("not_after"), f"{where}.not_after"),
    )
    if key.not_before and key.not_after and key.not_after <= key.not_before:
        raise KeyringError(f"{where}: not_after is not after not_before")
    return key


def parse_keyring(doc: Any, source: str = "keyring") -> Keyring:
    """Build a ``Keyring`` from the parsed JSON document; ``KeyringError`` names what is wrong."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise KeyringError(f'{source}: expected {{"version": 1, "keys": [...]}}')
    if doc.get("version", KEYRING_VERSION) != KEYRING_VERSION:
        raise KeyringError(f"{source}: version {doc.get('version')!r}; this build reads 1")
    keys: dict[str, SigningKey] = {}
    for i, entry in enumerate(doc["keys"]):
        key = _parse_key(entry, f"{source}: keys[{i}]")
        if key.key_id in keys:
            raise KeyringError(f"{source}: keys[{i}].key_id: {key.key_id} appears twice")
        keys[key.key_id] = key
    ring = Keyring(keys)
    for agency in sorted({k.agency_code for k in keys.values()}):
        active = ring.active(agency)
        if len(active) > MAX_ACTIVE_PER_AGENCY:
            ids = ", ".join(k.key_id for k in active)
            raise KeyringError(
                f"{source}: agency {agency} has {len(active)} active keys ({ids}); "
                f"at most {MAX_ACTIVE_PER_AGENCY}: retire one"
            )
    return ring


def load_keyring(path: Path) -> Keyring:
    """Read a keyring file (UTF-8 JSON). Raises ``KeyringError`` with the file and entry."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyringError(f"{path}: no such keyring file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyringError(f"{path}: cannot read: {exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise KeyringError(f"{path}: not JSON: {exc}") from None
    return parse_keyring(doc, str(path))


def keyring_document(keys: Sequence[SigningKey]) -> dict[str, Any]:
    """The JSON document of a keyring file holding ``keys`` (in this order)."""

    def ts(t: datetime | None) -> str | None:
        return None if t is None else t.isoformat()

    return {
        "version": KEYRING_VERSION,
        "keys": [
            {
                "key_id": k.key_id,
                "agency_code": k.agency_code,
                "secret": base64.b64encode(k.secret).decode("ascii"),
                "status": k.status,
                "created_at": ts(k.created_at),
                "not_before": ts(k.not_before),
                "not_after": ts(k.not_after),
            }
            for k in keys
        ],
    }
