"""``parwatch dashboards``: build the Grafana dashboards' JSON, or publish them to a Grafana."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from parwatch.errors import UsageError
from parwatch.settings import Settings

if TYPE_CHECKING:
    from dashboards.spec import Targets


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "dashboards",
        help="build or publish the Grafana dashboards",
        description=(
            "The Grafana dashboards (the plan's targets, the 766 scorecard, data quality, annual "
            "indices, online inspections, pipeline health) for the grafana-clickhouse-datasource "
            "plugin. Their thresholds are the targets of the settings (PARWATCH_TARGET_*)."
        ),
    )
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    pub = actions.add_parser(
        "publish",
        help="create or update the folder, datasource and dashboards in a Grafana, by uid",
        description=(
            "Create or update, through Grafana's HTTP API, the folder 'parwatch', the ClickHouse "
            "datasource (uid parwatch-clickhouse; PARWATCH_GRAFANA_CLICKHOUSE_URL, _USER, "
            "_PASSWORD: how Grafana reaches ClickHouse, with a read-only user) and the "
            "dashboards. Idempotent: a second run updates, never duplicates. The token is "
            "PARWATCH_GRAFANA_TOKEN (a service-account token with the Editor or Admin role). "
            "The Grafana must have the grafana-clickhouse-datasource plugin installed."
        ),
    )
    pub.add_argument("--url", help="Grafana's URL, e.g. http://grafana:3000 "
                     "(default PARWATCH_GRAFANA_URL)")  # fmt: skip
    pub.set_defaults(run=run_publish)
    build = actions.add_parser(
        "build",
        help="write the dashboards' JSON files for the current targets",
        description=(
            "Write <uid>.json for each dashboard into DIR, with thresholds from the current "
            "settings; point Grafana's file provisioning at DIR (deploy/grafana/provisioning)."
        ),
    )
    build.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    build.set_defaults(run=run_build)


def _targets(settings: Settings) -> Targets:
    from dashboards.spec import Targets

    return Targets(dict(settings.targets))


def run_build(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.build import write_json

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out}: not a folder")
    for path in write_json(args.out, _targets(settings)):
        print(path)
    return 0


def run_publish(args: argparse.Namespace, settings: Settings) -> int:
    from dashboards.build import all_json
    from dashboards.publisher import DatasourceConfig, GrafanaConfig, PublishError, publish

    url = args.url or settings.grafana_url
    if not url:
        raise UsageError("no Grafana URL: pass --url http://host:3000 or set PARWATCH_GRAFANA_URL")
    token = settings.grafana_token.get_secret_value() if settings.grafana_token else ""
    if not token:
        raise UsageError("no Grafana token: set PARWATCH_GRAFANA_TOKEN (a service-account token)")
    password = settings.grafana_clickhouse_password
    config = GrafanaConfig(
        url=url,
        token=token,
        datasource=DatasourceConfig(
            url=settings.grafana_clickhouse_url,
            database=settings.clickhouse_database,
            username=settings.grafana_clickhouse_user,
            password=password.get_secret_value() if password else None,
        ),
    )
    try:
        done = publish(config, all_json(_targets(settings)))
    except PublishError as exc:
        raise UsageError(str(exc)) from None
    print(f"folder parwatch: {done.folder}; datasource parwatch-clickhouse: {done.datasource}")
    for uid, version in done.dashboards.items():
        print(f"dashboard {uid}: version {version}")
    print(f"open {url.rstrip('/')}/dashboards/f/parwatch/")
    return 0
