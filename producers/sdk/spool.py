"""A durable, append-only, on-disk FIFO of Kafka records: the publisher's spool.

The publisher writes here whatever it cannot hand to Kafka (broker down, send failed), and a
drainer reads it back, in order, once the broker is reachable.

Layout of ``directory``:

* ``<seq>.seg``: segment files, an 8-byte magic header, then records, each
  ``[u32 length][u32 crc32(payload)][payload]`` with
  ``payload = [u16 topic length][u32 key length or 0xFFFFFFFF for None][topic][key][value]``;
  a record with Kafka headers (the signature, for one) sets the top bit of the topic length
  (topic names are at most 249 bytes) and has ``[headers]`` between key and value:
  ``[u16 count]`` then, per header, ``[u16 name length][name][u32 value length][value]``. A
  record without headers is written exactly as before headers existed, so spools written by
  earlier versions read unchanged;
* ``cursor``: JSON ``{"segment": seq, "offset": byte offset}`` of the first unacknowledged
  record, replaced atomically (temporary file + ``os.replace``);
* ``lock``: held with ``flock`` while a ``Spool`` is open, so two processes never share it.

Contract:

* Order: records are read back (``peek``) in exactly the order they were appended.
* ``append`` writes each call's records with one ``write`` system call into the OS page cache:
  from then on they survive the death of the process (SIGKILL included). ``sync`` (fsync of the
  segment and, after a segment was created or deleted, of the directory) makes them survive a
  power loss too. Neither blocks on anything but the local disk.
* ``ack(n)`` marks the first ``n`` pending records delivered (the cursor file is replaced
  atomically, not fsynced); a fully acknowledged segment is deleted. A crash between a send and
  its ``ack`` (or a power loss soon after an ``ack``) sends those records again after restart:
  delivery is at-least-once, and consumers deduplicate by ``event_id``.
* Crash safety: a record torn by a crash mid-write (or a corrupt record) fails its length or
  CRC check. On open, each segment is cut at its first bad record, with a warning; everything
  appended (and, against power loss, synced) before it is still there, in order.
* Thread safety: every method takes one lock, so a publishing thread and a drainer thread may
  share a ``Spool``. Calls are short: at most one ``peek`` worth of disk reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import struct
import threading
import zlib
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from producers.errors import ProducerError

log = logging.getLogger(__name__)

MAGIC = b"PWSPOOL1"
_HEADER = struct.Struct(">II")  # length of payload, crc32 of payload
_PAYLOAD_HEAD = struct.Struct(">HI")  # topic length, key length (or _NO_KEY)
_NO_KEY = 0xFFFFFFFF
_HAS_HEADERS = 0x8000  # top bit of the topic length
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_MAX_RECORD = 64 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024


class SpoolError(ProducerError, RuntimeError):
    """The spool directory cannot be used (locked by another process, unreadable)."""


class SpoolRecord(NamedTuple):
    """One Kafka record as it will be sent: topic, key bytes, value bytes, headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


def _encode_headers(headers: tuple[tuple[str, bytes], ...]) -> bytes:
    parts = [_U16.pack(len(headers))]
    for name, value in headers:
        raw = name.encode()
        parts += (_U16.pack(len(raw)), raw, _U32.pack(len(value)), value)
    return b"".join(parts)


def encode_record(record: SpoolRecord) -> bytes:
    topic = record.topic.encode()
    if len(topic) >= _HAS_HEADERS:
        raise ValueError(f"topic name of {len(topic)} bytes is too long")
    key = record.key
    flag = _HAS_HEADERS if record.headers else 0
    head = _PAYLOAD_HEAD.pack(len(topic) | flag, _NO_KEY if key is None else len(key))
    extra = _encode_headers(record.headers) if record.headers else b""
    payload = b"".join((head, topic, key or b"", extra, record.value))
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_payload(payload: bytes | memoryview) -> SpoolRecord:
    topic_len, key_len = _PAYLOAD_HEAD.unpack_from(payload, 0)
    has_headers = bool(topic_len & _HAS_HEADERS)
    topic_len &= ~_HAS_HEADERS
    pos = _PAYLOAD_HEAD.size
    topic = bytes(payload[pos : pos + topic_len]).decode()
    pos += topic_len
    key: bytes | None = None
    if key_len != _NO_KEY:
        key = bytes(payload[pos : pos + key_len])
        pos += key_len
    headers: list[tuple[str, bytes]] = []
    if has_headers:
        (count,) = _U16.unpack_from(payload, pos)
        pos += _U16.size
        for _ in range(count):
            (name_len,) = _U16.unpack_from(payload, pos)
            pos += _U16.size
            name = bytes(payload[pos : pos + name_len]).decode()
            pos += name_len
            (value_len,) = _U32.unpack_from(payload, pos)
            pos += _U32.size
            if pos + value_len > len(payload):
                raise struct.error("header value runs past the record")
            headers.append((name, bytes(payload[pos : pos + value_len])))
            pos += value_len
    return SpoolRecord(topic, key, bytes(payload[pos:]), tuple(headers))


def parse_records(buf: bytes, start: int) -> tuple[list[tuple[SpoolRecord, int]], int, bool]:
    """Records in ``buf`` from ``start``: [(record, end offset in buf)], next offset, and
    whether parsing stopped at a bad (corrupt, not merely incomplete) record."""
    out: list[tuple[SpoolRecord, int]] = []
    pos = start
    view = memoryview(buf)
    n = len(buf)
    while pos + _HEADER.size <= n:
        length, crc = _HEADER.unpack_from(buf, pos)
        if length > _MAX_RECORD or length < _PAYLOAD_HEAD.size:
            return out, pos, True
        end = pos + _HEADER.size + length
        if end > n:
            break
        payload = view[pos + _HEADER.size : end]
        if zlib.crc32(payload) != crc:
            return out, pos, True
        try:
            record = _decode_payload(payload)
        except (struct.error, UnicodeDecodeError):
            return out, pos, True
        out.append((record, end))
        pos = end
    return out, pos, False


def segment_name(seq: int) -> str:
    return f"{seq:012d}.seg"


def segment_numbers(directory: Path) -> list[int]:
    """The sequence numbers of the segment files in ``directory``, oldest first."""
    return sorted(int(p.stem) for p in directory.glob("*.seg") if p.stem.isdigit())


def read_cursor(directory: Path) -> tuple[int, int] | None:
    """The cursor file's (segment, offset), or None if it is missing or unreadable."""
    try:
        data = json.loads((directory / "cursor").read_text())
        seq, offset = int(data["segment"]), int(data["offset"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        log.warning("spool cursor in %s is unreadable; reading from the start", directory)
        return None
    return (seq, max(offset, len(MAGIC)))


def start_of(segments: list[int], cursor: tuple[int, int] | None) -> tuple[int, int]:
    """Where the first unacknowledged record is, given the segments and the cursor file."""
    if cursor is None or not segments or cursor[0] not in segments:
        # No valid cursor: start at the oldest segment (at-least-once, never a loss).
        first = segments[0] if segments else 0
        if cursor is not None and segments and cursor[0] > segments[-1]:
            first = segments[-1] + 1
        return (first, len(MAGIC))
    return cursor


class Spool:
    """The on-disk FIFO (see the module docstring for its contract)."""

    def __init__(self, directory: Path, *, segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self._lock = threading.RLock()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise SpoolError(f"spool {self.directory} is in use by another process") from None
        self._closed = False
        self._dir_dirty = False
        # Reading state: the cursor (first unacknowledged record) and records already read
        # past it, each with the (segment, end offset) that acknowledging it moves the cursor to.
        self._segments: list[int] = []
        self._cursor: tuple[int, int] = (0, len(MAGIC))
        self._read_pos: tuple[int, int] = (0, len(MAGIC))
        self._read_ahead: deque[tuple[SpoolRecord, int, int]] = deque()
        self._pending = 0
        self._write_fd = -1
        self._write_seq = 0
        self._write_size = 0
        try:
            self._recover()
        except BaseException:
            os.close(self._lock_fd)  # releases the lock
            raise

    # -- opening -------------------------------------------------------------------------

    def _recover(self) -> None:
        for tmp in self.directory.glob("*.tmp"):
            tmp.unlink()
        segments = segment_numbers(self.directory)
        cursor = start_of(segments, read_cursor(self.directory))
        for seq in segments:
            if seq < cursor[0]:
                (self.directory / segment_name(seq)).unlink()  # fully acknowledged
                self._dir_dirty = True
        self._segments = [s for s in segments if s >= cursor[0]]
        pending = 0
        for seq in self._segments:
            start = cursor[1] if seq == cursor[0] else len(MAGIC)
            pending += self._check_segment(seq, start)
        self._pending = pending
        self._write_seq = (self._segments[-1] + 1) if self._segments else max(cursor[0], 1)
        self._open_segment(self._write_seq)
        if pending == 0:
            # Everything is acknowledged: drop the old segments, start at the new one.
            self._cursor = (self._write_seq, len(MAGIC))
            self._write_cursor()
            self._delete_before(self._write_seq)
        else:
            self._cursor = cursor
        self._read_pos = self._cursor
        if pending:
            log.info("spool %s holds %d unsent records", self.directory, pending)

    def _check_segment(self, seq: int, start: int) -> int:
        """Count the valid records of a segment from ``start``; cut it at its first bad one."""
        path = self.directory / segment_name(seq)
        data = path.read_bytes()
        if data[: len(MAGIC)] != MAGIC:
            log.error("spool segment %s has no valid header; ignoring its contents", path)
            with path.open("r+b") as f:
                f.truncate(0)
                f.write(MAGIC)
            return 0
        records, end, _ = parse_records(data, min(start, len(data)))
        if end < len(data):
            log.warning(
                "spool segment %s: %d bytes after the last valid record (torn by a crash?) "
                "are ignored",
                path,
                len(data) - end,
            )
            with path.open("r+b") as f:
                f.truncate(end)
        return len(records)

    def _open_segment(self, seq: int, *, sync_previous: bool = True) -> None:
        path = self.directory / segment_name(seq)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        os.write(fd, MAGIC)
        os.replace(tmp, path)  # a segment file always has its header
        if self._write_fd >= 0:
            if sync_previous:  # sync() only reaches the newest segment
                os.fsync(self._write_fd)
            os.close(self._write_fd)
        self._write_fd, self._write_seq, self._write_size = fd, seq, len(MAGIC)
        if seq not in self._segments:
            self._segments.append(seq)
        self._dir_dirty = True

    # -- writing -------------------------------------------------------------------------

    def append(self, records: Iterable[SpoolRecord]) -> int:
        """Append ``records`` after everything appended before; return how many.

        Survives the death of this process once it returns; call ``sync`` for power loss.
        """
        encoded = [encode_record(r) for r in records]
        if not encoded:
            return 0
        blob = b"".join(encoded)
        with self._lock:
            self._check_open()
            if self._write_size >= self.segment_bytes:
                self._open_segment(self._write_seq + 1)
            view = memoryview(blob)
            written = 0
            while written < len(blob):
                written += os.write(self._write_fd, view[written:])
            self._write_size += len(blob)
            self._pending += len(encoded)
        return len(encoded)

    def sync(self) -> None:
        """fsync what was appended (and the directory, if segments came or went)."""
        with self._lock:
            self._check_open()
            os.fsync(self._write_fd)
            if self._dir_dirty:
                dir_fd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
                self._dir_dirty = False

    # -- reading -------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Records appended and not yet acknowledged."""
        return self._pending

    def __len__(self) -> int:
        return self._pending

    def peek(self, n: int) -> list[SpoolRecord]:
        """The first ``n`` (or fewer) unacknowledged records, oldest first; consumes nothing."""
        with self._lock:
            self._check_open()
            self._fill(n)
            return [r for r, _, _ in itertools.islice(self._read_ahead, n)]

    def ack(self, n: int) -> None:
        """Mark the first ``n`` unacknowledged records delivered; delete finished segments."""
        if n <= 0:
            return
        with self._lock:
            self._check_open()
            self._fill(n)
            if n > len(self._read_ahead):
                raise ValueError(f"cannot ack {n} records: only {len(self._read_ahead)} pending")
            for _ in range(n - 1):
                self._read_ahead.popleft()
            _, seq, offset = self._read_ahead.popleft()
            self._pending -= n
            if self._pending == 0:
                if self._write_size >= self.segment_bytes // 16:
                    # Drained: start a fresh segment, so that the spent one goes now.
                    self._open_segment(self._write_seq + 1, sync_previous=False)
                seq, offset = self._write_seq, self._write_size
            elif self._read_ahead and self._read_ahead[0][1] != seq:
                # The next record starts a later segment: the earlier ones are spent.
                seq, offset = self._read_ahead[0][1], len(MAGIC)
            self._cursor = (seq, offset)
            self._read_pos = max(self._read_pos, self._cursor)
            self._write_cursor()
            self._delete_before(seq)

    def _fill(self, n: int) -> None:
        """Read records past the cursor until ``n`` are buffered or the spool is exhausted."""
        while len(self._read_ahead) < n:
            seq, offset = self._read_pos
            idx = self._segments.index(seq)
            path = self.directory / segment_name(seq)
            with path.open("rb") as f:
                f.seek(offset)
                want = _READ_CHUNK
                while True:
                    buf = f.read(want)
                    records, used, bad = parse_records(buf, 0)
                    if records or bad or len(buf) < want:
                        break
                    want *= 2  # one record larger than the chunk
                    f.seek(offset)
            for record, end in records:
                self._read_ahead.append((record, seq, offset + end))
            offset += used
            self._read_pos = (seq, offset)
            if records and len(self._read_ahead) < n:
                continue
            if records:
                return
            if bad:
                log.error("spool segment %s is corrupt at byte %d; skipping its rest", path, offset)
            if idx + 1 < len(self._segments):
                self._read_pos = (self._segments[idx + 1], len(MAGIC))
                continue
            return

    # -- bookkeeping ---------------------------------------------------------------------

    def _write_cursor(self) -> None:
        path = self.directory / "cursor"
        tmp = path.with_suffix(".tmp")
        seq, offset = self._cursor
        tmp.write_text(json.dumps({"segment": seq, "offset": offset}))
        os.replace(tmp, path)

    def _delete_before(self, seq: int) -> None:
        while self._segments and self._segments[0] < seq:
            done = self._segments.pop(0)
            with contextlib.suppress(FileNotFoundError):
                (self.directory / segment_name(done)).unlink()
            self._dir_dirty = True

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"spool {self.directory} is closed")

    def close(self) -> None:
        """fsync and release the directory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self.sync()
            self._closed = True
            os.close(self._write_fd)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
