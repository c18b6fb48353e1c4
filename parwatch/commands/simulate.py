"""``parwatch simulate``: seeded, realistic agency traffic and the KPIs it implies."""

from __future__ import annotations

import argparse
from pathlib import Path

from parwatch import wiring
from parwatch.errors import UsageError
from parwatch.progress import Progress
from parwatch.settings import Settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "simulate",
        help="generate seeded agency traffic; publish it or write it to a file",
        description=(
            "Generate realistic, seeded traffic for the agencies of the catalog: inspections "
            "with a mix of activity modes and kinds (kiểm tra, thanh tra; out-of-order, late "
            "and duplicate events, cancelled inspections), service/2 dossier lifecycles (due "
            "dates, supplement pauses, payments, completion on time or late, rejection, "
            "withdrawal; service/1 from agencies that have not upgraded) and the offering/1 "
            "events of services from the bundled offering catalog (up to 3% of the messages; "
            "dossiers go to those services). The same --seed and --events give byte-identical "
            "events and ground truth. Publishes each message to its topic (inspections, "
            "services, offerings) on PARWATCH_KAFKA_BOOTSTRAP, or writes JSON Lines to --out "
            "instead. --truth writes the KPIs the traffic implies (month, quarter, year), in "
            "the shape of `parwatch kpi --json`."
        ),
    )
    p.add_argument("--seed", type=int, required=True, help="random seed")
    p.add_argument("--events", type=int, required=True, help="number of messages to produce")
    p.add_argument("--out", type=Path, help="write events to this JSON Lines file, not Kafka")
    p.add_argument("--truth", type=Path, help="write the ground-truth KPIs (JSON) here")
    p.add_argument(
        "--invalid-share", type=float, default=0.0,
        help="fraction of deliberately invalid messages, every refusal reason (default 0)",
    )  # fmt: skip
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from producers.simulation.raw import publish_raw
    from producers.simulation.simulator import (
        SimulationConfig,
        describe,
        simulate,
        write_jsonl,
        write_truth,
    )

    if args.events < 0:
        raise UsageError("--events must be >= 0")
    if not 0.0 <= args.invalid_share <= 1.0:
        raise UsageError("--invalid-share must be between 0 and 1")
    for path in (args.out, args.truth):
        if path is not None and not path.parent.is_dir():
            raise UsageError(f"{path.parent}: no such folder")
    bootstrap = None if args.out else wiring.require_bootstrap(settings)
    config = SimulationConfig(
        seed=args.seed, events=args.events, invalid_share=args.invalid_share,
        hybrid_counts_as_online=settings.hybrid_counts_as_online,
    )  # fmt: skip
    sim = simulate(config, wiring.catalog(settings))
    print(describe(sim))
    if args.truth:
        write_truth(sim, args.truth)
        print(f"truth: {args.truth}")
    if args.out:
        write_jsonl(sim, args.out)
        print(f"events: {args.out}")
        return 0
    assert bootstrap is not None
    progress = Progress("publishing", len(sim.messages))
    sent = publish_raw(
        bootstrap, settings.topics, ((m.kind, m.key, m.value) for m in sim.messages),
        kafka_options=wiring.kafka_options(settings), progress=progress,
    )  # fmt: skip
    progress.done(sent)
    print(f"published {sent} messages to {bootstrap}")
    return 0
