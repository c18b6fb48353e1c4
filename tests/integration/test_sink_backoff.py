"""The warehouse sink retries an unreachable ClickHouse server after jittered delays drawn from
the generator it was given (a real clickhouse-connect client against a closed port)."""

from __future__ import annotations

import asyncio
import logging
import random
import socket

import pytest

from streams.warehouse.client import WarehouseConfig, connect
from streams.worker.backoff import Backoff
from streams.worker.sink import ClickHouseSink


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _logged_delays(seed: int, caplog: pytest.LogCaptureFixture, tries: int) -> list[float]:
    config = WarehouseConfig(f"http://127.0.0.1:{_closed_port()}")
    sink = ClickHouseSink(
        lambda: connect(config), backoff_initial_s=0.01, backoff_max_s=0.05,
        rng=random.Random(seed),
    )  # fmt: skip
    caplog.clear()

    async def until_tries() -> None:
        task = asyncio.ensure_future(sink.call(lambda client: client.command("SELECT 1")))
        while sink.stats.retries < tries:
            await asyncio.sleep(0.005)
        task.cancel()

    with caplog.at_level(logging.WARNING, logger="parwatch.sink"):
        asyncio.run(asyncio.wait_for(until_tries(), timeout=60))
    sink.close()
    delays = [float(r.args[0]) for r in caplog.records if "retrying in" in r.msg]  # type: ignore[index,arg-type]
    return delays[:tries]


def test_retry_delays_come_from_the_sinks_generator(caplog: pytest.LogCaptureFixture) -> None:
    expected = Backoff(0.01, 0.05, random.Random(5))
    assert _logged_delays(5, caplog, tries=6) == [expected.next() for _ in range(6)]
    other = _logged_delays(6, caplog, tries=6)
    assert all(0.01 <= d <= 0.05 for d in other)
    assert other != _logged_delays(5, caplog, tries=6)
