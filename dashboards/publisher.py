"""Publishes the folder, the ClickHouse datasource and the dashboards to a Grafana, by uid.

``publish(config, dashboards)`` is idempotent: a second run updates what the first created
(folder by uid ``parwatch``, datasource by uid ``parwatch-clickhouse``, dashboards by their
uids with ``overwrite``) and creates nothing new. Calls, in order, with grafana-client:

1. ``GET /api/health`` — is Grafana there (no token needed);
2. ``GET /api/plugins/grafana-clickhouse-datasource/settings`` — the token is accepted (401
   otherwise) and the plugin is installed (404 otherwise);
3. ``GET /api/folders/parwatch``, then ``POST /api/folders`` (404) or ``PUT
   /api/folders/parwatch`` (title changed);
4. ``GET /api/datasources/uid/parwatch-clickhouse``, then ``POST /api/datasources`` (404) or
   ``PUT /api/datasources/uid/parwatch-clickhouse``;
5. ``POST /api/dashboards/db`` per dashboard, ``overwrite: true``, in the folder.

Every failure is a ``PublishError`` with one line that says what to fix. Blocking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import niquests
from grafana_client.api import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaTimeoutError,
    GrafanaUnauthorizedError,
)

from dashboards.build import DATASOURCE_NAME, DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID, PLUGIN_ID
from dashboards.errors import DashboardsError


class PublishError(DashboardsError):
    """Publishing failed; the message is one line for the operator."""


@dataclass(frozen=True, slots=True)
class DatasourceConfig:
    """How Grafana reaches ClickHouse (as Grafana sees it), with a read-only user."""

    url: str = "http://clickhouse:8123"  # http(s)://host:port of ClickHouse's HTTP interface
    database: str = "parwatch"
    username: str = "parwatch_grafana"
    password: str | None = None  # None: keep the password Grafana already has


@dataclass(frozen=True, slots=True)
class GrafanaConfig:
    url: str  # e.g. http://grafana:3000
    token: str  # a service-account token (Editor or Admin)
    datasource: DatasourceConfig = DatasourceConfig()
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Published:
    folder: str  # "created" | "updated" | "unchanged"
    datasource: str  # "created" | "updated"
    dashboards: dict[str, int]  # uid -> version Grafana reports


def datasource_model(ds: DatasourceConfig) -> dict[str, Any]:
    """The datasource as Grafana's API (and provisioning) describe it for the plugin (v4)."""
    parts = urlsplit(ds.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PublishError(f"ClickHouse URL for Grafana must be http(s)://host:port, got {ds.url}")
    secure = parts.scheme == "https"
    model: dict[str, Any] = {
        "uid": DATASOURCE_UID,
        "name": DATASOURCE_NAME,
        "type": PLUGIN_ID,
        "access": "proxy",
        "isDefault": False,
        "jsonData": {
            "host": parts.hostname,
            "port": parts.port or (8443 if secure else 8123),
            "protocol": "http",
            "secure": secure,
            "path": parts.path.strip("/"),
            "username": ds.username,
            "defaultDatabase": ds.database,
        },
    }
    if ds.password is not None:
        model["secureJsonData"] = {"password": ds.password}
    return model


def _api(config: GrafanaConfig) -> GrafanaApi:
    parts = urlsplit(config.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PublishError(f"Grafana URL must be http(s)://host[:port], got {config.url!r}")
    if not config.token:
        raise PublishError("no Grafana token: set PARWATCH_GRAFANA_TOKEN (a service-account token)")
    api: GrafanaApi = GrafanaApi.from_url(
        config.url, credential=config.token, timeout=config.timeout_s
    )
    return api


def _status(exc: GrafanaException) -> int:
    return int(getattr(exc, "status_code", 0) or 0)


def _get_or_none(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except GrafanaClientError as exc:
        if _status(exc) == 404:
            return None
        raise


def publish(config: GrafanaConfig, dashboards: Mapping[str, Mapping[str, Any]]) -> Published:
    """Create or update the folder, the datasource and every dashboard (see module doc)."""
    api = _api(config)
    where = config.url.rstrip("/")
    try:
        try:
            api.client.GET("/health")
        except (niquests.exceptions.RequestException, GrafanaTimeoutError) as exc:
            raise PublishError(f"cannot reach Grafana at {where}: {_first_line(exc)}") from None
        try:
            api.client.GET(f"/plugins/{PLUGIN_ID}/settings")
        except GrafanaUnauthorizedError:
            raise PublishError(
                f"Grafana at {where} refused the token (401): check PARWATCH_GRAFANA_TOKEN"
            ) from None
        except GrafanaClientError as exc:
            if _status(exc) == 404:
                raise PublishError(
                    f"the ClickHouse datasource plugin ({PLUGIN_ID}) is not installed in Grafana "
                    f"at {where}: install it (grafana cli plugins install {PLUGIN_ID}, or "
                    f"GF_INSTALL_PLUGINS={PLUGIN_ID}) and restart Grafana"
                ) from None
            raise
        folder = _folder(api)
        datasource = _datasource(api, datasource_model(config.datasource))
        versions: dict[str, int] = {}
        for model in dashboards.values():
            answer = api.dashboard.update_dashboard(
                {
                    "dashboard": {**model, "id": None},
                    "folderUid": FOLDER_UID,
                    "overwrite": True,
                    "message": "parwatch dashboards publish",
                }
            )
            versions[str(model["uid"])] = int(answer.get("version", 0))
        return Published(folder=folder, datasource=datasource, dashboards=versions)
    except GrafanaUnauthorizedError:
        raise PublishError(
            f"Grafana at {where} refused the token (401): check PARWATCH_GRAFANA_TOKEN"
        ) from None
    except GrafanaTimeoutError:
        raise PublishError(
            f"Grafana at {where} did not answer within {config.timeout_s:g} s"
        ) from None
    except GrafanaException as exc:
        code = _status(exc)
        hint = " (the token needs the Editor or Admin role)" if code == 403 else ""
        raise PublishError(f"Grafana at {where} answered {code}: {exc.message}{hint}") from None
    except niquests.exceptions.RequestException as exc:
        raise PublishError(f"lost Grafana at {where}: {_first_line(exc)}") from None


def _folder(api: GrafanaApi) -> str:
    found = _get_or_none(api.folder.get_folder, FOLDER_UID)
    if found is None:
        api.folder.create_folder(FOLDER_TITLE, uid=FOLDER_UID)
        return "created"
    if found.get("title") != FOLDER_TITLE:
        api.folder.update_folder(FOLDER_UID, title=FOLDER_TITLE, overwrite=True)
        return "updated"
    return "unchanged"


def _datasource(api: GrafanaApi, model: dict[str, Any]) -> str:
    found = _get_or_none(api.datasource.get_datasource_by_uid, DATASOURCE_UID)
    if found is None:
        api.datasource.create_datasource(model)
        return "created"
    api.datasource.update_datasource_by_uid(DATASOURCE_UID, {**model, "id": found.get("id")})
    return "updated"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
