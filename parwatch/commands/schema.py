"""``parwatch schema export DIR``: the contract as JSON Schema files for agencies."""

from __future__ import annotations

import argparse
from pathlib import Path

from parwatch.settings import Settings
from schemas.jsonschema_export import export


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schema",
        help="export the event contract as JSON Schema",
        description="Work with the event contract (EVENTS.md, version 2).",
    )
    ssub = p.add_subparsers(dest="schema_command", required=True, metavar="COMMAND")
    e = ssub.add_parser(
        "export",
        help="write JSON Schema files (draft 2020-12) into DIR",
        description=(
            "Write inspection-1.schema.json, service-1.schema.json, service-2.schema.json, "
            "offering-1.schema.json and event.schema.json (the union) into DIR, so that "
            "agencies can validate events in any language before sending them. Rules JSON "
            "Schema cannot express (agency catalog, future timestamps, personal data, "
            "fields_prefilled <= fields_total) are listed in each file's description."
        ),
    )
    e.add_argument("dir", type=Path, metavar="DIR", help="output folder (created if missing)")
    e.set_defaults(run=run_export)


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    for path in export(args.dir):
        print(path)
    return 0
