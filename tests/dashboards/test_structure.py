"""Every dashboard's JSON: stable unique uids, a query and the datasource variable on every
panel, thresholds equal to the configured targets, committed files equal to the builder's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dashboards.build import (
    DATASOURCE_UID,
    JSON_DIR,
    PLUGIN_ID,
    all_json,
    render,
)
from dashboards.spec import Targets
from parwatch.cli import main
from parwatch.settings import Settings

EXPECTED_UIDS = {
    "parwatch-plan-targets",
    "parwatch-scorecard-766",
    "parwatch-data-quality",
    "parwatch-annual-indices",
    "parwatch-online-inspections",
    "parwatch-pipeline-health",
}


def _threshold_values(panel: dict[str, Any]) -> list[float | None]:
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    return [s["value"] for s in steps]


def test_committed_json_is_the_builders_output_for_the_default_settings() -> None:
    defaults = Targets(dict(Settings().targets))
    assert {k: v for k, v in defaults.values.items() if v is not None} == dict(Targets().values)
    built = all_json(defaults)
    committed = {p.name: p.read_text(encoding="utf-8") for p in JSON_DIR.glob("*.json")}
    assert set(committed) == set(built)
    for name, model in built.items():
        assert committed[name] == render(model), f"{name}: run python -m dashboards.build"


def test_uids_variables_queries_and_datasources() -> None:
    models = list(all_json(Targets()).values())
    assert {m["uid"] for m in models} == EXPECTED_UIDS
    for m in models:
        variables = {v["name"]: v for v in m["templating"]["list"]}
        ds = variables["datasource"]
        assert ds["type"] == "datasource" and ds["query"] == PLUGIN_ID
        assert ds["current"]["value"] == DATASOURCE_UID
        if m["uid"] != "parwatch-annual-indices":
            assert variables["agency"]["includeAll"] and variables["agency"]["multi"]
            assert variables["agency"]["current"]["value"] == ["$__all"]
        if "kpi_${grain}" in json.dumps(m):  # a whole-period dashboard: grain and period
            assert variables["grain"]["current"]["value"] == "year"
            assert "kpi_${grain}" in variables["period"]["query"]
        if m["uid"] == "parwatch-online-inspections":
            assert variables["sector"]["includeAll"]
        ids = [p["id"] for p in m["panels"]]
        assert len(ids) == len(set(ids)) >= 1
        for p in m["panels"]:
            if p["datasource"]["type"] == "prometheus":  # a live panel: PromQL on Prometheus
                assert m["uid"] == "parwatch-pipeline-health", p["title"]
                assert p["datasource"] == {"type": "prometheus", "uid": "parwatch-prometheus"}
                assert p["targets"] and all(
                    t["datasource"] == p["datasource"]
                    and ("parwatch_" in t["expr"] or 'job="parwatch-worker"' in t["expr"])
                    for t in p["targets"]
                ), p["title"]
                continue
            assert p["datasource"] == {"type": PLUGIN_ID, "uid": "${datasource}"}, p["title"]
            (target,) = p["targets"]
            assert target["datasource"] == p["datasource"]
            assert target["editorType"] == "sql" and target["rawSql"].strip(), p["title"]
            assert p["title"] and p["description"], p["id"]
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24
        text = json.dumps(m, ensure_ascii=False)
        assert any(w in text for w in ("Kiểm tra", "Sức khỏe", "Mục tiêu", "chỉ số", "Chỉ số"))


@pytest.mark.parametrize(
    "env",
    [
        {},
        {
            "PARWATCH_TARGET_ONLINE_INSPECTION_SHARE": "0.55",
            "PARWATCH_TARGET_PREFILL_DESIGN_COVERAGE": "0.9",
            "PARWATCH_TARGET_FULL_PROCESS_OFFERING_RATE": "0.8",
            "PARWATCH_TARGET_DATA_REUSE_RATE": "0.7",
        },
    ],
)
def test_thresholds_equal_the_configured_targets(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    settings = Settings()
    assert main(["dashboards", "build", "--out", str(tmp_path)]) == 0
    models = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in tmp_path.glob("*.json")}
    assert set(models) == EXPECTED_UIDS
    t = settings.targets
    expected = {
        "online_share": t["online_inspection_share"],
        "online_share_by_month": t["online_inspection_share"],
        "agencies_ranked": t["online_inspection_share"],
        "agencies_below_target": t["online_inspection_share"],
        "online_inspection_share_gaps": t["online_inspection_share"],
    }
    for key in ("full_process_offering_rate", "prefill_design_coverage", "online_inspection_share"):
        for suffix in ("gauge", "trend", "projection"):
            expected[f"{key}_{suffix}"] = t[key]
    from dashboards.spec import build_dashboards

    specs = {(d.uid, i): p.key for d in build_dashboards(Targets())
             for i, p in enumerate(d.panels, start=1)}  # fmt: skip
    seen = set()
    for m in models.values():
        for p in m["panels"]:
            key = specs[(m["uid"], p["id"])]
            if key in expected:
                assert _threshold_values(p) == [None, expected[key]], key
                seen.add(key)
            elif key in ("live_warehouse_down", "live_refused_share"):  # alert levels
                assert _threshold_values(p) == [None, 1 if key == "live_warehouse_down" else 0.1]
            elif key != "freshness":
                assert _threshold_values(p) == [None], key
    assert seen == set(expected)
    gauge = next(p for p in models["parwatch-online-inspections"]["panels"]
                 if p["type"] == "gauge")  # fmt: skip
    assert f"{t['online_inspection_share']:.0%}" in gauge["description"]
    # the scorecard colours each indicator by its own threshold, where one is set
    (card,) = models["parwatch-scorecard-766"]["panels"]
    coloured = {
        o["matcher"]["options"]: prop["value"]["steps"][1]["value"]
        for o in card["fieldConfig"]["overrides"] for prop in o["properties"]
        if prop["id"] == "thresholds"
    }  # fmt: skip
    assert coloured == {
        k: v for k, v in t.items()
        if v is not None and k in coloured | {"on_time_rate": 0, "online_dossier_rate": 0}
    } and coloured["data_reuse_rate"] == t["data_reuse_rate"]  # fmt: skip
