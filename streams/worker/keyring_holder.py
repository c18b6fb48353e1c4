"""The worker's signing keyring, loaded again when its file changes (no restart needed).

* When: the engine calls ``maybe_reload`` where and as often as it checks the agency catalog
  (every ``catalog_check_s``, ``PARWATCH_CATALOG_CHECK_S``), between batches. A key that
  ``parwatch keys retire`` retired refuses the events checked after that reload.
* What counts as a change: the file's modification time, size or inode moved (``parwatch keys``
  replaces the file atomically, so a reader sees the old file or the new one).
* A file that cannot be read or is not a valid keyring leaves the keyring loaded before in force,
  logs an error, and is read again at every check until it loads: the worker keeps verifying
  with the keys it had, rather than refusing every event over a broken file.
* Blocking (reads one small file); single-threaded use.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from schemas.signing import Keyring, KeyringError, load_keyring

log = logging.getLogger("parwatch.worker")

Stamp = tuple[int, int, int] | None


def describe(keyring: Keyring) -> str:
    """Counts, never secrets: ``N keys (A active) of G agencies``."""
    keys = list(keyring.keys.values())
    active = sum(k.status == "active" for k in keys)
    agencies = len({k.agency_code for k in keys})
    return f"{len(keys)} keys ({active} active) of {agencies} agencies"


class KeyringHolder:
    """``keyring`` is the keyring in force; ``path`` (None: never reloaded) is its file."""

    def __init__(self, keyring: Keyring, path: Path | None) -> None:
        self.keyring = keyring
        self.path = path
        self._stamp = self._read_stamp()

    def _read_stamp(self) -> Stamp:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def maybe_reload(self) -> bool:
        """Load the file again if it changed; return whether the keyring in force changed."""
        if self.path is None:
            return False
        stamp = self._read_stamp()
        if stamp == self._stamp:
            return False
        try:
            ring = load_keyring(self.path)
        except KeyringError as exc:
            log.error("signing keyring not reloaded, the keys loaded before stay in force: %s", exc)
            return False  # the stamp stays: read again at the next check
        self.keyring, self._stamp = ring, stamp
        log.info("signing keyring reloaded from %s: %s", self.path, describe(ring))
        return True
