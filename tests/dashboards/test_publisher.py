"""``parwatch dashboards publish`` against a local HTTP server that answers as Grafana's HTTP API
does for exactly the calls the publisher makes (Grafana itself cannot run on these machines)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dashboards.build import DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID, PLUGIN_ID, all_json
from dashboards.publisher import DatasourceConfig, GrafanaConfig, PublishError, publish
from dashboards.spec import Targets
from parwatch.broker import free_port
from parwatch.cli import main

TOKEN = "glsa_test_token_123"  # noqa: S105 (a test token for the local fake Grafana)


@dataclass
class FakeGrafana:
    """State of a Grafana instance and the requests it received."""

    token: str = TOKEN
    plugin_installed: bool = True
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None, Any]] = field(default_factory=list)

    def answer(self, method: str, path: str, auth: str | None, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, auth, body))
        if path == "/api/health":
            return 200, {"database": "ok", "version": "12.3.1"}
        if auth != f"Bearer {self.token}":
            return 401, {"message": "Unauthorized"}
        if path == f"/api/plugins/{PLUGIN_ID}/settings" and method == "GET":
            if not self.plugin_installed:
                return 404, {"message": "Plugin not found, no installed plugin with that id"}
            return 200, {"id": PLUGIN_ID, "type": "datasource", "enabled": True}
        if path.startswith("/api/folders"):
            return self._folders(method, path, body)
        if path.startswith("/api/datasources"):
            return self._datasources(method, path, body)
        if path == "/api/dashboards/db" and method == "POST":
            dash = body["dashboard"]
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            old = self.dashboards.get(dash["uid"])
            if old is not None and not body.get("overwrite"):
                return 412, {"message": "A dashboard with the same uid already exists"}
            version = (old["version"] + 1) if old else 1
            self.dashboards[dash["uid"]] = {"model": dash, "version": version,
                                            "folderUid": body["folderUid"]}  # fmt: skip
            return 200, {"status": "success", "uid": dash["uid"], "version": version,
                         "id": list(self.dashboards).index(dash["uid"]) + 1}  # fmt: skip
        return 404, {"message": "Not found"}

    def _folders(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        uid = path.removeprefix("/api/folders").strip("/")
        if method == "GET" and uid:
            found = self.folders.get(uid)
            return (200, found) if found else (404, {"message": "folder not found"})
        if method == "POST" and not uid:
            if body["uid"] in self.folders:
                return 409, {"message": "a folder with the same uid already exists"}
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"], "id": 7}
            return 200, self.folders[body["uid"]]
        if method == "PUT" and uid in self.folders:
            self.folders[uid]["title"] = body["title"]
            return 200, self.folders[uid]
        return 404, {"message": "folder not found"}

    def _datasources(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method == "POST" and path == "/api/datasources":
            if body["uid"] in self.datasources:
                return 409, {"message": "data source with the same uid already exists"}
            self.datasources[body["uid"]] = {**body, "id": 3}
            return 200, {"datasource": self.datasources[body["uid"]], "id": 3}
        uid = path.removeprefix("/api/datasources/uid/")
        if method == "GET":
            found = self.datasources.get(uid)
            return (200, found) if found else (404, {"message": "Data source not found"})
        if method == "PUT" and uid in self.datasources:
            self.datasources[uid] = {**body, "id": self.datasources[uid]["id"]}
            return 200, {"datasource": self.datasources[uid]}
        return 404, {"message": "Data source not found"}


@pytest.fixture
def grafana() -> Iterator[tuple[FakeGrafana, str]]:
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            status, payload = state.answer(
                self.command, self.path.split("?")[0], self.headers.get("Authorization"), body
            )
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _config(url: str, token: str = TOKEN) -> GrafanaConfig:
    return GrafanaConfig(
        url=url, token=token,
        datasource=DatasourceConfig("http://clickhouse:8123", "parwatch", "parwatch_grafana", "pw"),
    )  # fmt: skip


def test_publish_creates_then_updates_by_uid(grafana: tuple[FakeGrafana, str]) -> None:
    state, url = grafana
    models = all_json(Targets())
    first = publish(_config(url), models)
    assert (first.folder, first.datasource) == ("created", "created")
    assert first.dashboards == {m["uid"]: 1 for m in models.values()}
    calls = [(m, p) for m, p, _, _ in state.requests]
    assert calls == [
        ("GET", "/api/health"),
        ("GET", f"/api/plugins/{PLUGIN_ID}/settings"),
        ("GET", f"/api/folders/{FOLDER_UID}"),
        ("POST", "/api/folders"),
        ("GET", f"/api/datasources/uid/{DATASOURCE_UID}"),
        ("POST", "/api/datasources"),
    ] + [("POST", "/api/dashboards/db")] * len(models)
    assert all(auth == f"Bearer {TOKEN}" for _, p, auth, _ in state.requests if p != "/api/health")
    assert state.folders[FOLDER_UID]["title"] == FOLDER_TITLE
    ds = state.datasources[DATASOURCE_UID]
    assert ds["type"] == PLUGIN_ID and ds["jsonData"]["host"] == "clickhouse"
    assert ds["jsonData"]["port"] == 8123 and ds["jsonData"]["username"] == "parwatch_grafana"
    assert ds["secureJsonData"] == {"password": "pw"}
    post = [b for m, p, _, b in state.requests if p == "/api/dashboards/db"]
    assert all(b["overwrite"] and b["folderUid"] == FOLDER_UID for b in post)
    assert {b["dashboard"]["uid"] for b in post} == {m["uid"] for m in models.values()}
    assert all(b["dashboard"]["id"] is None for b in post)

    state.requests.clear()
    second = publish(_config(url), models)
    assert (second.folder, second.datasource) == ("unchanged", "updated")
    assert second.dashboards == {m["uid"]: 2 for m in models.values()}
    calls = [(m, p) for m, p, _, _ in state.requests]
    assert ("POST", "/api/folders") not in calls and ("POST", "/api/datasources") not in calls
    assert ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}") in calls
    assert len(state.folders) == 1 and len(state.datasources) == 1
    assert len(state.dashboards) == len(models)
    assert state.datasources[DATASOURCE_UID]["id"] == 3


def test_wrong_token_missing_plugin_and_no_grafana_are_one_clear_line(
    grafana: tuple[FakeGrafana, str],
) -> None:
    state, url = grafana
    models = all_json(Targets())
    with pytest.raises(PublishError, match=r"refused the token \(401\).*PARWATCH_GRAFANA_TOKEN"):
        publish(_config(url, token="wrong"), models)  # noqa: S106
    assert not state.folders and not state.dashboards
    state.plugin_installed = False
    with pytest.raises(PublishError, match=rf"plugin \({PLUGIN_ID}\) is not installed"):
        publish(_config(url), models)
    assert not state.folders and not state.dashboards
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PublishError, match=rf"cannot reach Grafana at {closed}"):
        publish(_config(closed), models)


def test_cli_publish(
    grafana: tuple[FakeGrafana, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, url = grafana
    monkeypatch.setenv("PARWATCH_GRAFANA_TOKEN", TOKEN)
    monkeypatch.setenv("PARWATCH_TARGET_ONLINE_INSPECTION_SHARE", "0.45")
    assert main(["dashboards", "publish", "--url", url]) == 0
    out = capsys.readouterr().out
    assert "folder parwatch: created; datasource parwatch-clickhouse: created" in out
    assert "dashboard parwatch-online-inspections: version 1" in out
    gauge = state.dashboards["parwatch-online-inspections"]["model"]["panels"][0]
    assert gauge["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] == 0.45

    monkeypatch.setenv("PARWATCH_GRAFANA_TOKEN", "nope")
    assert main(["dashboards", "publish", "--url", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"parwatch: error: Grafana at {url} refused the token (401): "
                   "check PARWATCH_GRAFANA_TOKEN"]  # fmt: skip
    monkeypatch.delenv("PARWATCH_GRAFANA_TOKEN")
    assert main(["dashboards", "publish", "--url", url]) == 2
    assert "PARWATCH_GRAFANA_TOKEN" in capsys.readouterr().err
