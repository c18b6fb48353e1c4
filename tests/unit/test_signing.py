"""Event signing: sign/verify, rotation, expiry, other agencies, changed bytes, keyring files,
and the `parwatch keys` command."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from parwatch.cli import main
from producers.sdk.preparation import Preparer
from producers.sdk.publisher_config import PublishError
from schemas.errors import Reason
from schemas.signing import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    Keyring,
    KeyringError,
    SigningKey,
    check_signature,
    keyring_document,
    load_keyring,
    parse_keyring,
    sign,
)
from schemas.topics import Topics
from tests.conftest import make_inspection_event

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
TP, YT = "TH-S-TP", "TH-S-YT"


def key(key_id: str, agency: str = TP, **kw: Any) -> SigningKey:
    return SigningKey(key_id, agency, hashlib.sha256(key_id.encode()).digest(), **kw)


def ring(*keys: SigningKey) -> Keyring:
    return Keyring({k.key_id: k for k in keys})


VALUE = json.dumps(make_inspection_event(agency_code=TP), ensure_ascii=False).encode()


def test_signature_is_hmac_sha256_hex_of_the_value_bytes() -> None:
    k = key("TP.1")
    headers = dict(sign(VALUE, k))
    assert headers[KEY_ID_HEADER] == b"TP.1"
    expected = hmac.new(k.secret, VALUE, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == f"v1={expected}".encode()
    assert check_signature(VALUE, sign(VALUE, k), ring(k), TP, now=NOW) is None
    # A mapping of headers (as some clients give them) works the same.
    assert check_signature(VALUE, headers, ring(k), TP, now=NOW) is None


@pytest.mark.parametrize("length", [16, 32, 63, 64, 65, 200])
def test_precomputed_mac_equals_hmac_for_any_key_length(length: int) -> None:
    k = SigningKey("k", TP, bytes((i * 7 + 3) % 256 for i in range(length)))
    for value in (b"", VALUE, VALUE * 50):
        expected = b"v1=" + hmac.new(k.secret, value, hashlib.sha256).hexdigest().encode()
        assert k.mac(value) == expected
        assert k.mac(value) == expected  # the cached states are copied, never consumed


def refusal_detail(value: bytes, headers: Any, keyring: Keyring, agency: str | None) -> str:
    refusal = check_signature(value, headers, keyring, agency, now=NOW)
    assert refusal is not None
    assert refusal.reason is Reason.BAD_SIGNATURE
    assert refusal.payload == value
    return refusal.detail


def test_changed_bytes_with_a_replayed_signature_are_refused() -> None:
    k = key("TP.1")
    headers = sign(VALUE, k)
    changed = VALUE.replace(b"video_conference", b"on_site")
    assert changed != VALUE
    detail = refusal_detail(changed, headers, ring(k), TP)
    assert detail == "signature does not match the value bytes for key TP.1"
    # One byte of whitespace is a change too: the signature covers the exact bytes.
    assert "does not match" in refusal_detail(VALUE + b" ", headers, ring(k), TP)


def test_unsigned_unknown_retired_and_malformed_headers_are_refused() -> None:
    k = key("TP.1")
    assert refusal_detail(VALUE, [], ring(k), TP).startswith("unsigned")
    assert refusal_detail(VALUE, None, ring(k), TP).startswith("unsigned")
    assert refusal_detail(VALUE, sign(VALUE, key("TP.9")), ring(k), TP) == (
        "key TP.9 is not in the keyring"
    )
    retired = key("TP.1", status="retired")
    assert refusal_detail(VALUE, sign(VALUE, k), ring(retired), TP) == (
        "key TP.1 of TH-S-TP is retired"
    )
    only_id = [(KEY_ID_HEADER, b"TP.1")]
    assert "got 1 and 0" in refusal_detail(VALUE, only_id, ring(k), TP)
    twice = sign(VALUE, k) + sign(VALUE, k)
    assert "got 2 and 2" in refusal_detail(VALUE, twice, ring(k), TP)
    bad_format = [(KEY_ID_HEADER, b"TP.1"), (SIGNATURE_HEADER, b"sha256=abc")]
    assert refusal_detail(VALUE, bad_format, ring(k), TP) == (
        "parwatch-signature is not v1=<64 lowercase hex digits>"
    )
    bad_id = [(KEY_ID_HEADER, "khóa".encode()), (SIGNATURE_HEADER, b"v1=" + b"0" * 64)]
    assert refusal_detail(VALUE, bad_id, ring(k), TP) == "parwatch-key-id is not ASCII"


def test_uppercase_hex_is_refused_as_signing_md_specifies_lowercase() -> None:
    k = key("TP.1")
    genuine = dict(sign(VALUE, k))[SIGNATURE_HEADER]
    upper = b"v1=" + genuine[3:].upper()
    assert upper != genuine and upper.lower() == genuine  # the same MAC, other case
    headers = [(KEY_ID_HEADER, b"TP.1"), (SIGNATURE_HEADER, upper)]
    assert refusal_detail(VALUE, headers, ring(k), TP) == (
        "parwatch-signature is not v1=<64 lowercase hex digits>"
    )
    mixed = [(KEY_ID_HEADER, b"TP.1"), (SIGNATURE_HEADER, b"V1=" + genuine[3:])]
    assert "lowercase" in refusal_detail(VALUE, mixed, ring(k), TP)
    assert check_signature(VALUE, sign(VALUE, k), ring(k), TP, now=NOW) is None


def test_details_never_hold_the_secret_or_the_signature() -> None:
    k = key("TP.1")
    sig = dict(sign(VALUE, k))[SIGNATURE_HEADER].decode()
    forged = [(KEY_ID_HEADER, b"TP.1"), (SIGNATURE_HEADER, b"v1=" + b"ab" * 32)]
    cases = [
        (VALUE + b" ", sign(VALUE, k)),
        (VALUE, forged),
        (VALUE, sign(VALUE, key("TP.2"))),
    ]
    for value, headers in cases:
        detail = refusal_detail(value, headers, ring(k), TP)
        assert k.secret.hex() not in detail and sig[3:] not in detail and "ab" * 32 not in detail
    assert "secret" not in repr(k) and k.secret.hex() not in repr(k)


def test_a_key_of_another_agency_is_refused() -> None:
    tp, yt = key("TP.1"), key("YT.1", YT)
    keys = ring(tp, yt)
    assert check_signature(VALUE, sign(VALUE, tp), keys, TP, now=NOW) is None
    detail = refusal_detail(VALUE, sign(VALUE, yt), keys, TP)
    assert detail == "signed with key YT.1 of TH-S-YT, but the event's agency_code is 'TH-S-TP'"
    # Without a readable agency code only the signature itself is checked.
    assert check_signature(VALUE, sign(VALUE, yt), keys, None, now=NOW) is None


def test_rotation_two_active_keys_verify_then_the_retired_one_does_not() -> None:
    old, new = key("TP.old"), key("TP.new")
    both = ring(old, new)
    for k in (old, new):
        assert check_signature(VALUE, sign(VALUE, k), both, TP, now=NOW) is None
    after = ring(SigningKey(old.key_id, TP, old.secret, status="retired"), new)
    assert check_signature(VALUE, sign(VALUE, new), after, TP, now=NOW) is None
    assert "retired" in refusal_detail(VALUE, sign(VALUE, old), after, TP)


def test_validity_window_not_before_inclusive_not_after_exclusive() -> None:
    k = key("TP.1", not_before=NOW, not_after=NOW + timedelta(days=30))
    keys = ring(k)
    headers = sign(VALUE, k)
    assert check_signature(VALUE, headers, keys, TP, now=NOW) is None
    early = check_signature(VALUE, headers, keys, TP, now=NOW - timedelta(seconds=1))
    late = check_signature(VALUE, headers, keys, TP, now=NOW + timedelta(days=30))
    assert early is not None and late is not None
    assert late.detail.startswith("key TP.1 of TH-S-TP is not valid at 2026-12-29T08:00:00+00:00")
    last = NOW + timedelta(days=30) - timedelta(microseconds=1)
    assert check_signature(VALUE, headers, keys, TP, now=last) is None


def test_signing_costs_a_few_microseconds() -> None:
    k = key("TP.1")
    keys = ring(k)
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        check_signature(VALUE, sign(VALUE, k), keys, TP, now=NOW)
    per_event = (time.perf_counter() - start) / n
    assert per_event < 50e-6, f"{per_event * 1e6:.1f} µs to sign and verify one event"


# -- keyring files ---------------------------------------------------------------------------


def test_keyring_round_trips_through_its_file(tmp_path: Path) -> None:
    keys = [key("TP.1", not_after=NOW), key("TP.2", status="retired"), key("YT.1", YT)]
    path = tmp_path / "keyring.json"
    path.write_text(json.dumps(keyring_document(keys)))
    loaded = load_keyring(path)
    assert list(loaded.keys.values()) == keys
    assert [k.key_id for k in loaded.active(TP)] == ["TP.1"]


def entry(**overrides: Any) -> dict[str, Any]:
    e = {"key_id": "TP.1", "agency_code": TP, "secret": "A" * 44, "status": "active"}
    e.update(overrides)
    return {k: v for k, v in e.items() if v is not None}


NOT_BASE64, TOO_SHORT = "not base64!", "AAAA"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], 'kr: expected {"version": 1, "keys": [...]}'),
        ({"version": 2, "keys": []}, "kr: version 2; this build reads 1"),
        ({"keys": [entry(secret=NOT_BASE64)]}, "kr: keys[0].secret: not base64 (or hex:…)"),
        (
            {"keys": [entry(secret=TOO_SHORT)]},
            "kr: keys[0].secret: 3 bytes; at least 16 are needed",
        ),
        ({"keys": [entry(key_id="khóa 1")]}, "kr: keys[0].key_id: 'khóa 1' must match"),
        ({"keys": [entry(agency_code=None)]}, "kr: keys[0].agency_code: missing or not a non-"),
        ({"keys": [entry(status="paused")]}, "kr: keys[0].status: 'paused' is not 'active' or"),
        ({"keys": [entry(not_after="2026-13-01")]}, "kr: keys[0].not_after: '2026-13-01' is not"),
        ({"keys": [entry(not_after="2026-12-01T00:00")]}, "kr: keys[0].not_after: '2026-12-01T0"),
        ({"keys": [entry(colour="blue")]}, "kr: keys[0]: unknown field(s) colour"),
        ({"keys": [entry(), entry()]}, "kr: keys[1].key_id: TP.1 appears twice"),
        (
            {"keys": [entry(key_id="a"), entry(key_id="b"), entry(key_id="c")]},
            "kr: agency TH-S-TP has 3 active keys (a, b, c); at most 2: retire one",
        ),
    ],
)
def test_keyring_errors_name_the_entry_and_field(doc: Any, message: str) -> None:
    with pytest.raises(KeyringError) as err:
        parse_keyring(doc, "kr")
    assert str(err.value).startswith(message)
    assert "A" * 44 not in str(err.value)


def test_keyring_file_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match=r"no such keyring file"):
        load_keyring(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(KeyringError, match=r"bad.json: not JSON: Expecting property name"):
        load_keyring(bad)
    hexed = tmp_path / "hex.json"
    hexed.write_text(json.dumps({"keys": [entry(secret="hex:" + "ab" * 32)]}))
    assert load_keyring(hexed).keys["TP.1"].secret == bytes.fromhex("ab" * 32)


# -- the publisher's preparation signs ------------------------------------------------------


def test_preparer_signs_the_exact_bytes_and_refuses_another_agency() -> None:
    k = key("TP.1")
    preparer = Preparer(Topics(), None, 1_000_000, k)
    record = preparer.prepare(make_inspection_event(agency_code=TP), NOW)
    assert check_signature(record.value, record.headers, ring(k), TP, now=NOW) is None
    with pytest.raises(PublishError) as err:
        preparer.prepare(make_inspection_event(agency_code=YT), NOW)
    assert err.value.reason is Reason.BAD_SIGNATURE
    assert "not the signing key's agency (TH-S-TP, key TP.1)" in str(err.value)
    unsigned = Preparer(Topics(), None, 1_000_000).prepare(make_inspection_event(), NOW)
    assert unsigned.headers == ()


# -- parwatch keys ---------------------------------------------------------------------------


def keys_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["keys", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_keys_command_rotation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kr = str(tmp_path / "keyring.json")
    code, first, _ = keys_cli(capsys, "new", "--agency", TP, "--out", kr)
    assert code == 0 and first.strip().startswith("TH-S-TP.")
    assert (tmp_path / "keyring.json").stat().st_mode & 0o777 == 0o600
    code, second, _ = keys_cli(capsys, "new", "--agency", TP, "--out", kr)
    assert code == 0
    code, _, err = keys_cli(capsys, "new", "--agency", TP, "--out", kr)
    assert code == 2 and "already has 2 active keys" in err and "--retire-oldest" in err
    code, out, _ = keys_cli(capsys, "new", "--agency", TP, "--out", kr, "--retire-oldest")
    assert code == 0
    retired_line, third = out.strip().splitlines()
    assert retired_line == f"retired {first.strip()}"
    code, out, _ = keys_cli(capsys, "list", "--keyring", kr, "--json")
    listed = json.loads(out)
    assert [(r["key_id"], r["status"]) for r in listed] == [
        (first.strip(), "retired"),
        (second.strip(), "active"),
        (third, "active"),
    ]
    secrets = [k.secret for k in load_keyring(Path(kr)).keys.values()]
    assert len({len(s) for s in secrets}) == 1 and len(secrets[0]) == 32
    code, table, _ = keys_cli(capsys, "list", "--keyring", kr)
    assert code == 0 and "(3 keys)" in table
    for s in secrets:
        assert s.hex() not in table + out
    code, out, _ = keys_cli(capsys, "retire", "--keyring", kr, "--key-id", second.strip())
    assert code == 0 and out.strip().endswith(f"active keys: {third}")
    agency_file = str(tmp_path / "agency.json")
    code, _, _ = keys_cli(
        capsys, "export", "--keyring", kr, "--key-id", third, "--out", agency_file
    )
    exported = load_keyring(Path(agency_file))
    assert list(exported.keys) == [third]
    assert exported.keys[third] == load_keyring(Path(kr)).keys[third]


def test_keys_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kr = str(tmp_path / "keyring.json")
    code, _, err = keys_cli(capsys, "new", "--agency", "TH-KHONG-CO", "--out", kr)
    assert code == 2 and "not in the agency catalog" in err
    code, _, err = keys_cli(capsys, "list", "--keyring", kr)
    assert code == 2 and err == f"parwatch: error: {kr}: no such keyring file\n"
    (tmp_path / "keyring.json").write_text('{"keys": [{"key_id": "x"}]}')
    code, _, err = keys_cli(capsys, "list", "--keyring", kr)
    assert err == f"parwatch: error: {kr}: keys[0].agency_code: missing or not a non-empty string\n"
    code, _, err = keys_cli(capsys, "retire", "--keyring", kr, "--key-id", "nope")
    assert code == 2
