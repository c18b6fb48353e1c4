"""The worker's keyring holder: a changed file is loaded again; a broken one keeps the keys in
force until it loads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from schemas.signing import Keyring, SigningKey, keyring_document, load_keyring
from streams.worker.keyring_holder import KeyringHolder, describe

A = "TH-S-TP"


def _write(path: Path, *keys: SigningKey, bump_ns: int = 0) -> None:
    path.write_text(json.dumps(keyring_document(list(keys))), encoding="utf-8")
    if bump_ns:  # a distinct mtime even on file systems with coarse timestamps
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump_ns))


def test_a_retired_key_is_retired_after_the_next_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = SigningKey("a-1", A, b"a" * 32)
    new = SigningKey("a-2", A, b"b" * 32)
    path = tmp_path / "keyring.json"
    _write(path, old, new)
    holder = KeyringHolder(load_keyring(path), path)
    assert holder.maybe_reload() is False  # unchanged
    _write(path, SigningKey("a-1", A, b"a" * 32, status="retired"), new, bump_ns=10**9)
    with caplog.at_level("INFO", logger="parwatch.worker"):
        assert holder.maybe_reload() is True
    assert [k.key_id for k in holder.keyring.active(A)] == ["a-2"]
    assert describe(holder.keyring) == "2 keys (1 active) of 1 agencies"
    assert f"signing keyring reloaded from {path}: 2 keys (1 active)" in caplog.text
    assert holder.maybe_reload() is False


def test_a_broken_file_keeps_the_keys_in_force_until_it_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = SigningKey("a-1", A, b"a" * 32)
    path = tmp_path / "keyring.json"
    _write(path, key)
    holder = KeyringHolder(load_keyring(path), path)
    path.write_text('{"version": 1, "keys": [', encoding="utf-8")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    assert holder.maybe_reload() is False
    assert holder.maybe_reload() is False  # tried again, still broken
    assert [k.key_id for k in holder.keyring.active(A)] == ["a-1"]
    assert caplog.text.count("signing keyring not reloaded") == 2
    _write(path, SigningKey("a-1", A, b"a" * 32, status="retired"), bump_ns=2 * 10**9)
    assert holder.maybe_reload() is True
    assert holder.keyring.active(A) == []


def test_without_a_file_nothing_is_reloaded() -> None:
    holder = KeyringHolder(Keyring({}), None)
    assert holder.maybe_reload() is False
