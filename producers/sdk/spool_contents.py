"""What a spool directory holds, read without opening it: for ``parwatch spool status``, and so
that an event already waiting in the spool is not queued (and later sent) a second time.

Contract of ``read_contents``:

* Read-only: it writes, truncates and deletes nothing and never waits for the spool's lock, so
  it may run while a publisher holds the spool. It then returns a snapshot that may already be
  stale: records appended after their segment was read are missing, records acknowledged
  meanwhile may still be counted (a segment deleted under it counts as empty).
* It counts what ``Spool`` would send: the records after the cursor, each segment up to its
  first torn or corrupt record (``Spool`` cuts the segment there when it opens it).
* ``in_use`` is probed with a shared ``flock`` held for a few microseconds; a ``Spool`` opened
  in exactly that moment in another process fails as "in use" (``SpoolError``).
* Memory: one segment's bytes at a time, plus the set of event ids when asked for.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path

from producers.sdk.preparation import event_id_of
from producers.sdk.spool import (
    MAGIC,
    SpoolRecord,
    parse_records,
    read_cursor,
    segment_name,
    segment_numbers,
    start_of,
)


@dataclass
class SpoolContents:
    """Records waiting in a spool directory (see ``read_contents``)."""

    directory: Path
    waiting: int = 0
    """Records not yet acknowledged by Kafka: they are sent when a publisher opens the spool."""
    waiting_bytes: int = 0
    oldest: SpoolRecord | None = None
    """The first record to be sent."""
    event_ids: set[str] = field(default_factory=set)
    """Event ids of the waiting records (filled only when asked for)."""
    in_use: bool = False
    """A process (a publisher, ``parwatch spool deliver``) holds the spool right now."""


def read_contents(directory: Path, *, event_ids: bool = False) -> SpoolContents:
    """What ``directory`` holds, read-only (see the module docstring). A missing directory is an
    empty spool. With ``event_ids`` the ids of the waiting records are collected too."""
    contents = SpoolContents(Path(directory))
    if not contents.directory.is_dir():
        return contents
    contents.in_use = _held(contents.directory / "lock")
    segments = segment_numbers(contents.directory)
    cursor = start_of(segments, read_cursor(contents.directory))
    for seq in segments:
        if seq < cursor[0]:
            continue
        try:
            data = (contents.directory / segment_name(seq)).read_bytes()
        except FileNotFoundError:  # acknowledged and deleted since we listed it
            continue
        if data[: len(MAGIC)] != MAGIC:
            continue
        start = cursor[1] if seq == cursor[0] else len(MAGIC)
        records, end, _ = parse_records(data, min(start, len(data)))
        contents.waiting += len(records)
        contents.waiting_bytes += max(0, end - start)
        if records and contents.oldest is None:
            contents.oldest = records[0][0]
        if event_ids:
            contents.event_ids.update(event_id_of(r.value) for r, _ in records)
    contents.event_ids.discard("")
    return contents


def _held(lock_path: Path) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock we got
    return False
