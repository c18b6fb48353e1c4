"""Grafana dashboard JSON from ``dashboards.spec``, for the ClickHouse datasource plugin.

Why generated: the thresholds are the targets, and the targets are settings
(``PARWATCH_TARGET_*``). ``dashboard_json(d)`` turns one spec into Grafana's JSON model (schema
version 39: panels with ``gridPos``, ``fieldConfig`` thresholds, ``templating`` variables). The
committed files under ``dashboards/json/`` are this builder's output for the default targets (a
test keeps them equal); ``parwatch dashboards build`` and ``parwatch dashboards publish`` build
them again from the current settings, so a changed target changes the thresholds too. The lines
inside the charts (``target_line``) and the tables of agencies below target read the targets
from the warehouse's ``kpi_settings``, as the KPI views do.

Stable identifiers: dashboard ``uid``s, the folder uid ``parwatch`` and the datasource uid
``parwatch-clickhouse`` never change; panels get ids by position.

Run ``python -m dashboards.build`` to rewrite ``dashboards/json/`` with the default targets.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dashboards.spec import (
    GRAINS,
    VARIABLE_LABELS,
    VARIABLE_SQL,
    Dashboard,
    Panel,
    Targets,
    build_dashboards,
)

PLUGIN_ID = "grafana-clickhouse-datasource"
DATASOURCE_UID = "parwatch-clickhouse"
DATASOURCE_NAME = "parwatch ClickHouse"
FOLDER_UID = "parwatch"
FOLDER_TITLE = "parwatch — Cải cách hành chính Thanh Hóa"
JSON_DIR = Path(__file__).parent / "json"
DATASOURCE_REF = {"type": PLUGIN_ID, "uid": "${datasource}"}
# The workers' metrics: provisioned with this uid (deploy/grafana/provisioning/datasources).
PROMETHEUS_REF = {"type": "prometheus", "uid": "parwatch-prometheus"}

_GRAFANA_TYPE = {
    "gauge": "gauge",
    "stat": "stat",
    "timeseries": "timeseries",
    "bargauge": "bargauge",
    "table": "table",
    "barchart": "timeseries",  # bars drawn by the time series panel (drawStyle bars)
}


def thresholds(panel: Panel) -> dict[str, Any]:
    """Grafana's absolute thresholds: red below the target, green from it; else the steps."""
    if panel.target is not None:
        steps: list[dict[str, Any]] = [
            {"color": "red", "value": None},
            {"color": "green", "value": panel.target},
        ]
    else:
        steps = [{"color": "green", "value": None}]
        steps += [{"color": c, "value": v} for v, c in panel.inverse_steps]
    return {"mode": "absolute", "steps": steps}


def _overrides(panel: Panel) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for column, label in panel.labels.items():
        props: list[dict[str, Any]] = [{"id": "displayName", "value": label}]
        if column in panel.column_units:
            props.append({"id": "unit", "value": panel.column_units[column]})
        if column == panel.target_column:
            props.append({"id": "custom.cellOptions", "value": {"type": "color-text"}})
        if column in panel.column_targets:
            steps = [{"color": "red", "value": None},
                     {"color": "green", "value": panel.column_targets[column]}]  # fmt: skip
            props.append({"id": "thresholds", "value": {"mode": "absolute", "steps": steps}})
            props.append({"id": "custom.cellOptions", "value": {"type": "color-text"}})
        if column in panel.dashed or column == "target_line":
            props.append({"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}})
        if column == "target_line":
            props.append({"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}})
        out.append({"matcher": {"id": "byName", "options": column}, "properties": props})
    return out


def _options(panel: Panel) -> dict[str, Any]:
    fields = "/^(" + "|".join(panel.labels) + ")$/" if panel.labels else ""
    if panel.kind in ("gauge", "stat"):
        reduce = {"values": False, "calcs": ["lastNotNull"], "fields": fields}
        if panel.kind == "gauge":
            return {"reduceOptions": reduce, "showThresholdMarkers": True,
                    "showThresholdLabels": True}  # fmt: skip
        return {"reduceOptions": reduce, "colorMode": "value", "graphMode": "none",
                "textMode": "value_and_name", "justifyMode": "auto"}  # fmt: skip
    if panel.kind == "bargauge":
        return {
            "reduceOptions": {"values": True, "calcs": [], "fields": fields},
            "orientation": "horizontal",
            "displayMode": "gradient",
            "showUnfilled": True,
        }
    if panel.kind == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"}}  # fmt: skip


def _defaults(panel: Panel) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, "thresholds": thresholds(panel)}
    if panel.unit == "percentunit":
        defaults.update(min=0, max=1, decimals=1)
    if panel.kind in ("timeseries", "barchart"):
        defaults["custom"] = {
            "drawStyle": "bars" if panel.kind == "barchart" else "line",
            "stacking": {"mode": "normal" if panel.kind == "barchart" else "none"},
            "fillOpacity": 80 if panel.kind == "barchart" else 10,
            "lineWidth": 2,
            "showPoints": "auto",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "line" if panel.target is not None else "off"},
        }
        defaults["color"] = {"mode": "palette-classic"}
    elif panel.kind == "table":
        defaults["custom"] = {"cellOptions": {"type": "auto"}, "align": "auto"}
    else:
        defaults["color"] = {"mode": "thresholds"}
    return defaults


def _targets(panel: Panel) -> list[dict[str, Any]]:
    if panel.live:
        return [
            {"refId": chr(ord("A") + i), "datasource": PROMETHEUS_REF, "expr": expr,
             "legendFormat": legend, "range": True, "instant": False}
            for i, (legend, expr) in enumerate(panel.promql)
        ]  # fmt: skip
    return [
        {
            "refId": "A",
            "datasource": DATASOURCE_REF,
            "editorType": "sql",
            "queryType": "timeseries" if panel.time_series else "table",
            "format": 0 if panel.time_series else 1,
            "rawSql": panel.sql,
        }
    ]


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": _GRAFANA_TYPE[panel.kind],
        "title": panel.title,
        "description": panel.description,
        "datasource": PROMETHEUS_REF if panel.live else DATASOURCE_REF,
        "gridPos": {"h": panel.h, "w": panel.w, "x": x, "y": y},
        "fieldConfig": {"defaults": _defaults(panel), "overrides": _overrides(panel)},
        "options": _options(panel),
        "targets": _targets(panel),
    }


def _variable(name: str) -> dict[str, Any]:
    if name == "grain":  # a custom list: the KPI views' grains, year first
        options = [
            {"selected": i == 0, "text": text, "value": value}
            for i, (value, text) in enumerate(GRAINS)
        ]
        return {
            "type": "custom",
            "name": name,
            "label": VARIABLE_LABELS[name],
            "query": ",".join(f"{text} : {value}" for value, text in GRAINS),
            "current": {"selected": True, "text": GRAINS[0][1], "value": GRAINS[0][0]},
            "options": options,
            "multi": False,
            "includeAll": False,
            "hide": 0,
        }
    if name == "period":  # one period of that grain; the latest first (Grafana's default)
        return {
            "type": "query",
            "name": name,
            "label": VARIABLE_LABELS[name],
            "datasource": DATASOURCE_REF,
            "query": VARIABLE_SQL[name],
            "refresh": 1,
            "multi": False,
            "includeAll": False,
            "options": [],
            "sort": 0,
            "hide": 0,
        }
    return {
        "type": "query",
        "name": name,
        "label": VARIABLE_LABELS[name],
        "datasource": DATASOURCE_REF,
        "query": VARIABLE_SQL[name],
        "refresh": 1,
        "multi": True,
        "includeAll": True,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "options": [],
        "sort": 0,
        "hide": 0,
    }


def dashboard_json(d: Dashboard) -> dict[str, Any]:
    panels, x, y, row_h = [], 0, 0, 0
    for i, p in enumerate(d.panels, start=1):
        if x + p.w > 24:
            x, y, row_h = 0, y + row_h, 0
        panels.append(panel_json(p, i, x, y))
        x, row_h = x + p.w, max(row_h, p.h)
    datasource_var = {
        "type": "datasource",
        "name": "datasource",
        "label": "Nguồn dữ liệu",
        "query": PLUGIN_ID,
        "current": {"selected": True, "text": DATASOURCE_NAME, "value": DATASOURCE_UID},
        "options": [],
        "refresh": 1,
        "regex": "",
        "hide": 0,
    }
    return {
        "id": None,
        "uid": d.uid,
        "title": d.title,
        "description": d.description,
        "tags": list(d.tags),
        "timezone": "Asia/Ho_Chi_Minh",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": d.time_from, "to": d.time_to},
        "refresh": d.refresh,
        "templating": {"list": [datasource_var] + [_variable(v) for v in d.variables]},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def all_json(targets: Targets) -> dict[str, dict[str, Any]]:
    """File name (``<uid>.json``) -> dashboard JSON, for these targets."""
    return {f"{d.uid}.json": dashboard_json(d) for d in build_dashboards(targets)}


def render(model: dict[str, Any]) -> str:
    """The file text: UTF-8 JSON (NFC Vietnamese kept as is), indent 2, final newline."""
    return json.dumps(model, ensure_ascii=False, indent=2) + "\n"


def write_json(out_dir: Path, targets: Targets) -> list[Path]:
    """Write every dashboard into ``out_dir``; return the paths (idempotent)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, model in all_json(targets).items():
        path = out_dir / name
        path.write_text(render(model), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_json(JSON_DIR, Targets()):
        print(written)
