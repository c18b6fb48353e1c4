"""A separate process for the kill-and-restart tests (run as ``python -m``, never collected).

``publish BOOTSTRAP SPOOL_DIR INSPECTIONS_TOPIC SERVICES_TOPIC FILE.jsonl``: publishes the file
with a Publisher, flushes (the spool is fsynced), prints ``READY <stats as JSON>`` and waits to be
killed.

``append SPOOL_DIR``: appends numbered records to a bare spool forever, syncing every 100 and
printing the count synced so far after each sync.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from pathlib import Path

from producers.sdk.bulk import publish_jsonl
from producers.sdk.publisher import Publisher, PublisherConfig
from producers.sdk.spool import Spool, SpoolRecord
from schemas.topics import Topics


def numbered(i: int) -> SpoolRecord:
    return SpoolRecord("t", str(i % 13).encode(), json.dumps({"n": i}).encode())


def publish(bootstrap: str, spool_dir: str, inspections: str, services: str, path: str) -> None:
    config = PublisherConfig(
        bootstrap=bootstrap,
        topics=Topics(inspections, services),
        spool_dir=Path(spool_dir),
        connect_timeout_s=0.5,
    )
    publisher = Publisher(config)
    report = publish_jsonl(Path(path), publisher)
    stats = dataclasses.asdict(publisher.stats())
    ready = {**stats, "published": report.accepted, "bad": len(report.bad)}
    print("READY", json.dumps(ready), flush=True)
    threading.Event().wait()  # until SIGKILL: no close(), no goodbye


def append(spool_dir: str) -> None:
    spool = Spool(Path(spool_dir), segment_bytes=64 * 1024)
    i = 0
    while True:
        spool.append(numbered(j) for j in range(i, i + 100))
        i += 100
        spool.sync()
        print(i, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "publish":
        publish(*sys.argv[2:7])
    elif sys.argv[1] == "append":
        append(sys.argv[2])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]!r}")
