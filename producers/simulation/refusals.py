"""Payloads that the pipeline must refuse, one way or another for each refusal reason.

``refused_payload(reason, valid, ...)`` spoils a valid payload (a fresh event, used nowhere else)
so that ``schemas.decode`` refuses it with exactly ``reason``: decode checks reasons in a fixed
order (malformed JSON, schema, personal data, model, agency, time), so each spoiled payload is
otherwise valid. Personal data is fake (random phone or ID numbers), never a real person's.
"""

from __future__ import annotations

import json
import random
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from producers.simulation.office_hours import LOCAL_OFFSET, rfc3339
from schemas.errors import Reason
from schemas.events import SUPPORTED_SCHEMAS

REFUSAL_REASONS: tuple[Reason, ...] = (
    Reason.MALFORMED_JSON,
    Reason.UNSUPPORTED_SCHEMA,
    Reason.INVALID_EVENT,
    Reason.UNKNOWN_AGENCY,
    Reason.FUTURE_TIMESTAMP,
    Reason.PII_DETECTED,
)
"""The reasons the simulator injects (``bad_signature`` needs signing, which it does not do)."""

_CONTACT = unicodedata.normalize("NFC", "Liên hệ người nộp")
_MOBILE_PREFIXES = ("090", "091", "098", "097", "086", "032", "035", "070", "081", "088")


def encode(payload: dict[str, Any]) -> bytes:
    """The wire form: compact UTF-8 JSON, Vietnamese text unescaped."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _phone(rng: random.Random) -> str:
    digits = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**7):07d}"
    style = rng.randrange(4)
    if style == 0:
        return digits
    if style == 1:
        return f"{digits[:4]} {digits[4:7]} {digits[7:]}"
    if style == 2:
        return f"{digits[:4]}.{digits[4:7]}.{digits[7:]}"
    return f"+84 {digits[1:4]} {digits[4:7]} {digits[7:]}"


def _malformed(raw: bytes, rng: random.Random) -> bytes:
    cut = rng.randint(1, len(raw) - 1)
    variant = rng.randrange(4)
    if variant == 0:  # truncated by a crashed sender
        return raw[:cut]
    if variant == 1:  # not UTF-8
        return raw[:cut] + b"\xff\xfe" + raw[cut:]
    if variant == 2:  # a batch instead of an event
        return b"[" + raw + b"]"
    return raw.replace(b'"', b"'")  # a hand-written "JSON"


def _invalid(p: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    variants = ["no_offset", "event_id"]
    event_type = p.get("event_type")
    v2 = p["schema"] == "service/2"
    if p["schema"] == "offering/1":
        variants += ["level", "no_prefill_designed"]
    else:
        variants.append("event_type")
    if event_type == "activity":
        variants.append("no_activity")
    if p.get("form"):
        variants += ["no_form", "too_many_prefilled"]
    if event_type == "completed":
        variants.append("no_result_electronic" if v2 else "no_on_time")
    if v2 and event_type == "submitted":
        variants += ["no_due_at", "reused_negative"]
    if event_type == "paid":
        variants.append("payment_channel")
    variant = rng.choice(variants)
    if variant == "no_offset":
        p["occurred_at"] = p["occurred_at"][:19]
    elif variant == "event_id":
        p["event_id"] = p["event_id"].replace("-", "")[:20]
    elif variant == "event_type":
        p["event_type"] = "closed"
    elif variant == "level":
        p["level"] = rng.choice(("online", "level_4", "toan_trinh"))
    elif variant == "no_prefill_designed":
        del p["prefill_designed"]
    elif variant == "no_activity":
        del p["activity"]
    elif variant == "no_form":
        del p["form"]
    elif variant == "too_many_prefilled":
        p["form"]["fields_prefilled"] = p["form"]["fields_total"] + 1
    elif variant == "no_result_electronic":
        del p["result_electronic"]
    elif variant == "no_due_at":
        del p["due_at"]
    elif variant == "reused_negative":
        p["reused_components"] = -1
    elif variant == "payment_channel":
        p["payment_channel"] = "cash"
    else:
        del p["on_time"]
    return p


def _unknown_agency(known: dict[str, Any], code: str, rng: random.Random) -> str:
    candidates = [
        code.lower(),
        "TH-D999",
        "TH-S-KHONGRO",
        "NA-S-TP",
        f"TH-D{rng.randint(500, 999)}",
    ]
    for candidate in rng.sample(candidates, len(candidates)):
        if candidate not in known:
            return candidate
    return f"XX-UNKNOWN-{rng.randrange(10**6)}"


def refused_payload(
    reason: Reason,
    valid: dict[str, Any],
    *,
    known_agencies: dict[str, Any],
    now: datetime,
    rng: random.Random,
) -> bytes:
    """Bytes that ``decode(..., now=now)`` refuses with ``reason``; ``valid`` is spoiled in place.

    Future timestamps lie 2–4 years after ``now``, so a live pipeline whose clock is somewhat
    later than the fixed ``now`` refuses them too.
    """
    p = valid
    if reason is Reason.MALFORMED_JSON:
        return _malformed(encode(p), rng)
    if reason is Reason.UNSUPPORTED_SCHEMA:
        if rng.random() < 0.25:
            del p["schema"]
        else:
            kind = p["schema"].split("/")[0]
            versions = (f"{kind}/2", f"{kind}/3", f"{kind}/1.1", f"{kind.capitalize()}/1")
            p["schema"] = rng.choice([v for v in versions if v not in SUPPORTED_SCHEMAS])
    elif reason is Reason.INVALID_EVENT:
        p = _invalid(p, rng)
    elif reason is Reason.UNKNOWN_AGENCY:
        p["agency_code"] = _unknown_agency(known_agencies, p["agency_code"], rng)
    elif reason is Reason.FUTURE_TIMESTAMP:
        local_now = now.astimezone(UTC).replace(tzinfo=None) + LOCAL_OFFSET
        ahead = timedelta(days=rng.randint(730, 1460), minutes=rng.randrange(24 * 60))
        p["occurred_at"] = rfc3339(local_now + ahead)
    elif reason is Reason.PII_DETECTED:
        if rng.random() < 0.8:
            p["ghi_chu"] = f"{_CONTACT}: {_phone(rng)}"
        else:
            p["so_cccd"] = f"038{rng.randrange(10**9):09d}"
    else:
        raise ValueError(f"the simulator does not inject {reason.value}")
    return encode(p)
