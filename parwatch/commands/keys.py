"""``parwatch keys``: the agencies' signing keys (new, list, retire, export). Never prints a
secret: ``export`` writes one key to a file for its agency."""

from __future__ import annotations

import argparse
import json
import os
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.settings import Settings
from parwatch.table import table_lines
from schemas.signing import (
    MAX_ACTIVE_PER_AGENCY,
    Keyring,
    KeyringError,
    SigningKey,
    keyring_document,
    load_keyring,
)

DESCRIPTION = """\
Manage the keyring of event-signing keys (a JSON file; see schemas/SIGNING.md). Each agency
holds a secret key; its publisher signs every event with HMAC-SHA256 and the worker checks the
signature against the keyring. An agency may have two active keys at once, so keys rotate without
a gap: `new` adds the second, the agency switches to it, `retire` ends the old one.

  parwatch keys new --agency TH-S-TP --out keyring.json      # prints the new key id
  parwatch keys export --keyring keyring.json --key-id ID --out th-s-tp.key.json
  parwatch keys list --keyring keyring.json
  parwatch keys retire --keyring keyring.json --key-id OLD_ID

Secrets are never printed; files holding them are written with mode 0600.
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keys",
        help="create, list, retire and export agencies' event-signing keys",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ks = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    new = ks.add_parser(
        "new",
        help="generate a key for an agency and add it to the keyring",
        description=(
            "Generate a 32-byte random key for AGENCY, add it to the keyring file (created if "
            "missing) and print its key id. An agency may hold two active keys; a third is "
            "refused unless --retire-oldest retires its oldest active key."
        ),
    )
    new.add_argument("--agency", required=True, metavar="CODE", help="agency code (catalog)")
    new.add_argument(
        "--out",
        "--keyring",
        dest="keyring",
        type=Path,
        required=True,
        metavar="FILE",
        help="the keyring file to add the key to",
    )
    new.add_argument(
        "--retire-oldest",
        action="store_true",
        help="retire the agency's oldest active key if it already has two",
    )
    new.add_argument(
        "--not-after",
        metavar="TIME",
        help="RFC 3339 time from which the key is no longer valid (optional)",
    )
    new.add_argument(
        "--allow-unknown-agency",
        action="store_true",
        help="accept an agency code that is not in the catalog",
    )
    new.set_defaults(run=run_new)

    lst = ks.add_parser(
        "list",
        help="list the keys (never their secrets)",
        description="List key id, agency, status and validity of every key.",
    )
    lst.add_argument("--keyring", type=Path, required=True, metavar="FILE")
    lst.add_argument("--agency", metavar="CODE", help="only this agency's keys")
    lst.add_argument("--json", action="store_true", help="print a JSON list")
    lst.set_defaults(run=run_list)

    ret = ks.add_parser(
        "retire",
        help="retire a key (it no longer verifies events)",
        description="Mark a key retired: events signed with it are refused.",
    )
    ret.add_argument("--keyring", type=Path, required=True, metavar="FILE")
    ret.add_argument("--key-id", required=True)
    ret.set_defaults(run=run_retire)

    exp = ks.add_parser(
        "export",
        help="write one key to its own keyring file, to hand to its agency",
        description=(
            "Write a keyring file holding only KEY_ID (mode 0600), for the agency's publisher: "
            "PARWATCH_SIGNING_KEY_FILE=that file, PARWATCH_SIGNING_KEY_ID=KEY_ID."
        ),
    )
    exp.add_argument("--keyring", type=Path, required=True, metavar="FILE")
    exp.add_argument("--key-id", required=True)
    exp.add_argument("--out", type=Path, required=True, metavar="FILE")
    exp.set_defaults(run=run_export)


def _load(path: Path, *, missing_ok: bool = False) -> Keyring:
    if missing_ok and not path.exists():
        return Keyring({})
    try:
        return load_keyring(path)
    except KeyringError as exc:
        raise UsageError(str(exc)) from None


def _write(path: Path, keys: list[SigningKey]) -> None:
    """Atomically replace ``path`` with a keyring holding ``keys``; mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(keyring_document(keys), f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key_id(agency: str, now: datetime) -> str:
    return f"{agency}.{now:%Y%m%d}.{secrets.token_hex(3)}"


def run_new(args: argparse.Namespace, settings: Settings) -> int:
    agency = args.agency.strip()
    if not agency:
        raise UsageError("--agency: empty agency code")
    if not args.allow_unknown_agency and agency not in wiring.catalog(settings).agencies:
        raise UsageError(
            f"--agency {agency}: not in the agency catalog (add it there first, or pass "
            "--allow-unknown-agency)"
        )
    not_after = None
    if args.not_after:
        try:
            not_after = datetime.fromisoformat(args.not_after)
        except ValueError:
            raise UsageError(f"--not-after {args.not_after!r}: not an RFC 3339 time") from None
        if not_after.tzinfo is None:
            raise UsageError(f"--not-after {args.not_after!r}: give a UTC offset (+07:00)")
    ring = _load(args.keyring, missing_ok=True)
    keys = list(ring.keys.values())
    active = ring.active(agency)
    retired = None
    if len(active) >= MAX_ACTIVE_PER_AGENCY:
        if not args.retire_oldest:
            raise UsageError(
                f"agency {agency} already has {len(active)} active keys "
                f"({', '.join(k.key_id for k in active)}); retire one with `parwatch keys retire`"
                " or pass --retire-oldest"
            )
        retired = active[0]
        keys = [replace(k, status="retired") if k is retired else k for k in keys]
    now = datetime.now(UTC).replace(microsecond=0)
    key = SigningKey(
        key_id=_key_id(agency, now),
        agency_code=agency,
        secret=secrets.token_bytes(32),
        created_at=now,
        not_after=not_after,
    )
    _write(args.keyring, [*keys, key])
    if retired is not None:
        print(f"retired {retired.key_id}", flush=True)
    print(key.key_id)
    return 0


def run_list(args: argparse.Namespace, settings: Settings) -> int:
    ring = _load(args.keyring)
    keys = [k for k in ring.keys.values() if args.agency in (None, k.agency_code)]

    def ts(t: datetime | None) -> str | None:
        return None if t is None else t.isoformat()

    rows = [
        {
            "key_id": k.key_id,
            "agency_code": k.agency_code,
            "status": k.status,
            "created_at": ts(k.created_at),
            "not_before": ts(k.not_before),
            "not_after": ts(k.not_after),
        }
        for k in keys
    ]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    names = ("key_id", "agency_code", "status", "created_at", "not_before", "not_after")
    cells = [[str(r[n] or "-") for n in names] for r in rows]
    print("\n".join(table_lines(names, cells, rule=False)))
    print(f"({len(rows)} keys)")
    return 0


def run_retire(args: argparse.Namespace, settings: Settings) -> int:
    ring = _load(args.keyring)
    key = ring.get(args.key_id)
    if key is None:
        raise UsageError(f"--key-id {args.key_id}: not in {args.keyring}")
    if key.status == "retired":
        print(f"{key.key_id} was already retired")
        return 0
    keys = [
        replace(k, status="retired") if k.key_id == key.key_id else k for k in ring.keys.values()
    ]
    _write(args.keyring, keys)
    left = [k.key_id for k in ring.active(key.agency_code) if k.key_id != key.key_id]
    print(f"retired {key.key_id}; {key.agency_code} active keys: {', '.join(left) or 'none'}")
    return 0


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    ring = _load(args.keyring)
    key = ring.get(args.key_id)
    if key is None:
        raise UsageError(f"--key-id {args.key_id}: not in {args.keyring}")
    if key.status != "active":
        raise UsageError(f"--key-id {args.key_id}: retired; export an active key")
    if args.out.resolve() == args.keyring.resolve():
        raise UsageError("--out must not be the keyring itself")
    _write(args.out, [key])
    print(f"wrote {key.key_id} ({key.agency_code}) to {args.out}")
    return 0
