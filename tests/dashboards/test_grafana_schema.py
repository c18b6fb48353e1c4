"""Every dashboard JSON against Grafana's published dashboard schema: the TypeScript types of
``@grafana/schema`` (the release of the Grafana that deploy/ runs), checked by the TypeScript
compiler. Each dashboard becomes an object literal typed ``Dashboard`` (so an unknown or
mistyped field is an error), and each panel's ``options`` and ``fieldConfig.defaults.custom``
literals are typed with that panel type's own ``Options`` and ``FieldConfig``. Both tools are
installed by ``tests/setup-tools.sh`` into ``tests/.tools``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dashboards.build import all_json
from dashboards.spec import Targets

TOOLS = Path(__file__).parents[1] / ".tools"
SCHEMA = TOOLS / "node_modules/@grafana/schema"
TSC = TOOLS / "node_modules/.bin/tsc"
# a relative path: the package's "exports" do not map its panel types' declaration files
CFG = (
    "./node_modules/@grafana/schema/dist/types/raw/composable/{0}/panelcfg/x/{1}PanelCfg_types.gen"
)
# JSON holds an enum's value, not the enum: each string enum of the types is read as the union
# of its values (`${E}`); every other type, and the excess-property check, stay as they are.
WIRE = (
    "type Wire<T> = T extends string ? `${T}` : T extends (infer U)[] ? Wire<U>[] "
    ": T extends object ? { [K in keyof T]: Wire<T[K]> } : T;"
    # panel options and field config: Grafana merges saved ones over the panel type's defaults,
    # so every field may be left out (the types mark defaulted fields required)
    " type Saved<T> = T extends string ? `${T}` : T extends (infer U)[] ? Saved<U>[] "
    ": T extends object ? { [K in keyof T]?: Saved<T[K]> } : T;"
)
PANEL_TYPES = {
    "gauge": "Gauge",
    "stat": "Stat",
    "timeseries": "TimeSeries",
    "bargauge": "BarGauge",
    "table": "Table",
}
HAS_FIELD_CONFIG = {"timeseries", "table"}


def _program(models: dict[str, dict[str, object]]) -> str:
    lines = ['import type { Dashboard } from "@grafana/schema";', WIRE]
    for kind, name in PANEL_TYPES.items():
        lines.append(f'import type * as {name} from "{CFG.format(kind.lower(), name)}";')
    for n, (file, model) in enumerate(sorted(models.items())):
        lines.append(f"// {file}")
        lines.append(
            f"export const d{n}: Wire<Dashboard> = {json.dumps(model, ensure_ascii=False)};"
        )
        panels = model["panels"]
        assert isinstance(panels, list)
        for i, panel in enumerate(panels):
            name = PANEL_TYPES[panel["type"]]
            lines.append(
                f"export const d{n}p{i}o: Saved<{name}.Options> = {json.dumps(panel['options'])};"
            )
            custom = panel["fieldConfig"]["defaults"].get("custom")
            if custom is not None and panel["type"] in HAS_FIELD_CONFIG:
                lines.append(
                    f"export const d{n}p{i}c: Saved<{name}.FieldConfig> = {json.dumps(custom)};"
                )
    return "\n".join(lines) + "\n"


def _tsc(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    if not TSC.exists() or not SCHEMA.exists():
        pytest.fail("run bash tests/setup-tools.sh (installs @grafana/schema and typescript)")
    (tmp_path / "dashboards.ts").write_text(source, encoding="utf-8")
    (tmp_path / "node_modules").symlink_to(TOOLS / "node_modules")
    args = [str(TSC), "--noEmit", "--strict", "--skipLibCheck", "--target", "es2022",
            "--module", "esnext", "--moduleResolution", "bundler", "dashboards.ts"]  # fmt: skip
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_every_dashboard_type_checks_against_grafana_schema(tmp_path: Path) -> None:
    models = all_json(Targets())
    assert {p["type"] for m in models.values() for p in m["panels"]} <= set(PANEL_TYPES)
    done = _tsc(tmp_path, _program(models))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_catches_a_wrong_field(tmp_path: Path) -> None:
    models = all_json(Targets())
    model = next(iter(models.values()))
    model["panels"][0]["gridPos"]["w"] = "wide"  # a string where the schema wants a number
    model["panels"][0]["options"]["reduceOptions"]["calc"] = ["mean"]  # not an option
    done = _tsc(tmp_path, _program({"broken.json": model}))
    assert done.returncode != 0
    assert "gridPos" in done.stdout or "'w'" in done.stdout or "string" in done.stdout
    assert "calc" in done.stdout
