"""What the two engines share: positions that hash alike, Faust's settings from ours, and the
roles each engine runs."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys

import faust
from aiokafka import TopicPartition
from faust.types import TP

from streams.worker.batch import Batch
from streams.worker.faust_engine import credentials


def test_batch_positions_are_the_same_for_both_engines_partition_types() -> None:
    a, b = Batch(), Batch()
    for batch, tp in ((a, TopicPartition("t", 3)), (b, TP("t", 3))):
        batch.first.setdefault(tp, 10)
        batch.offsets[tp] = 20
    assert a.token() == b.token()
    assert TopicPartition("t", 3) in b.offsets


def test_faust_credentials_follow_the_kafka_security_settings() -> None:
    assert credentials({}) is None
    assert credentials({"security_protocol": "PLAINTEXT"}) is None
    context = ssl.create_default_context()
    sasl = credentials({
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u", "sasl_plain_password": "p", "ssl_context": context,
    })  # fmt: skip
    assert isinstance(sasl, faust.SASLCredentials)
    assert (sasl.username, sasl.password, sasl.ssl_context) == ("u", "p", context)
    assert isinstance(credentials({"security_protocol": "SSL", "ssl_context": context}),
                      faust.SSLCredentials)  # fmt: skip


def test_the_sink_role_is_refused_on_the_faust_engine() -> None:
    env = {**os.environ, "PARWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "parwatch.cli", "worker", "--engine", "faust", "--role", "sink"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--role sink runs on the batch engine only" in done.stderr
