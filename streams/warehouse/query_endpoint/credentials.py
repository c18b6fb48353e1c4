"""The query endpoint's one user and its password, kept beside the embedded warehouse.

Contract: the process that owns the warehouse calls ``ensure_password`` before it serves; the
first call writes a random password (32 bytes of ``secrets``, URL-safe text) to
``password_path(warehouse)`` with mode 0600, created exclusively so two owners cannot race;
later calls read it (and tighten a file whose mode lets others read it). Readers on the same
machine (``parwatch kpi``, ``sql``, ``report``, ``dead-letters list``, classifiers) call
``read_password``; whoever can read the file can query, nobody else can. The user is ``USER``.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from urllib.parse import urlsplit

USER = "parwatch"
MAX_PASSWORD_BYTES = 1024


def password_path(warehouse_url: str) -> Path:
    """``<warehouse folder>.query-password``, beside the embedded warehouse's folder."""
    path = Path(os.path.realpath(urlsplit(warehouse_url).path))
    return path.with_name(path.name + ".query-password")


def read_password(path: Path) -> str | None:
    """The password in ``path``, or None when there is none (or it cannot be read)."""
    try:
        with path.open("rb") as f:
            text = f.read(MAX_PASSWORD_BYTES).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None


def ensure_password(path: Path) -> str:
    """The endpoint's password: read from ``path``, or generated there (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
        existing = read_password(path)
        if existing is None:
            raise OSError(f"{path}: unreadable or empty; remove it to generate a new one") from None
        return existing
    password = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(password + "\n")
    return password
