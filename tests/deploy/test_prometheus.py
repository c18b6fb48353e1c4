"""deploy/prometheus/: the alert rules pass Prometheus's own checker and their unit tests
(Debian's promtool, installed by tests/setup-tools.sh), every alert has a test that fires it and
one that does not, and a runbook line in deploy/README.md."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from tests.deploy.conftest import DEPLOY, load_yaml

PROMETHEUS = DEPLOY / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: run tests/setup-tools.sh (Debian's prometheus)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def alerts() -> list[str]:
    rules = load_yaml(PROMETHEUS / "alerts.yml")
    return [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]


@needs_promtool
def test_promtool_check_rules() -> None:
    done = promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


@needs_promtool
def test_promtool_check_config() -> None:
    done = promtool("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_test_rules() -> None:
    done = promtool("test", "rules", "alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    tests: list[dict[str, Any]] = load_yaml(PROMETHEUS / "alerts.test.yml")["tests"]
    cases = [c for t in tests for c in t.get("alert_rule_test", [])]
    for alert in alerts():
        mine = [c for c in cases if c["alertname"] == alert]
        assert any(c.get("exp_alerts") for c in mine), f"{alert}: no test fires it"
        assert any(not c.get("exp_alerts") for c in mine), f"{alert}: no test keeps it quiet"


def test_every_alert_has_a_runbook_line() -> None:
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    runbook = readme.split("## Alerts and their runbook", 1)
    assert len(runbook) == 2, "deploy/README.md lacks its '## Alerts and their runbook' section"
    for alert in alerts():
        assert f"`{alert}`" in runbook[1].split("\n## ", 1)[0], alert


def test_prometheus_scrapes_the_workers_on_their_metrics_port() -> None:
    from parwatch.settings import Settings

    config = load_yaml(PROMETHEUS / "prometheus.yml")
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "parwatch-worker")
    compose = load_yaml(DEPLOY / "compose.yaml")
    env = compose["services"]["worker"]["environment"]
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    assert job["dns_sd_configs"][0]["port"] == int(env["PARWATCH_METRICS_PORT"])
    assert int(env["PARWATCH_METRICS_PORT"]) == Settings.model_fields["metrics_port"].default
    assert env["PARWATCH_METRICS_HOST"] == "0.0.0.0"  # noqa: S104 (the container's network)
    alerts_file = load_yaml(PROMETHEUS / "alerts.yml")
    assert 'job="parwatch-worker"' in str(alerts_file)
