"""ClickHouse users of deploy/clickhouse/users.d: grants as the README states them, read-only
profiles for the analyst and Grafana, passwords only from the server's environment."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # our own files, not untrusted input
from pathlib import Path
from typing import Any

from tests.deploy.conftest import DEPLOY, INTERPOLATION, load_yaml

USERS_XML = DEPLOY / "clickhouse/users.d/parwatch-users.xml"


def _parse(path: Path) -> ET.ElementTree[ET.Element]:
    return ET.parse(path)  # noqa: S314 (the repository's own file)


def users_from_xml() -> dict[str, dict[str, str]]:
    root = _parse(USERS_XML).getroot()
    profiles = {p.tag: p for p in root.findall("profiles/*")}
    users: dict[str, dict[str, str]] = {}
    for user in root.findall("users/*"):
        profile = user.findtext("profile", "")
        grants = [q.text or "" for q in user.findall("grants/query")]
        users[user.tag] = {
            "profile": profile,
            "readonly": profiles[profile].findtext("readonly", ""),
            "grants": "; ".join(" ".join(g.split()) for g in grants),
        }
    return users


def users_from_readme() -> dict[str, dict[str, str]]:
    """The table under "## ClickHouse users and grants" in deploy/README.md."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    section = text.split("## ClickHouse users and grants", 1)[1].split("\n## ", 1)[0]
    users: dict[str, dict[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and re.fullmatch(r"parwatch_\w+", cells[0]):
            users[cells[0]] = {"profile": cells[1], "readonly": cells[2], "grants": cells[3]}
    return users


def test_readme_states_exactly_the_grants_of_the_xml() -> None:
    readme = users_from_readme()
    assert set(readme) == {"parwatch_writer", "parwatch_analyst", "parwatch_grafana"}
    assert readme == users_from_xml()


def test_writer_writes_and_readers_only_select() -> None:
    users = users_from_xml()
    assert users["parwatch_writer"] == {
        "profile": "parwatch_writer",
        "readonly": "0",
        "grants": "GRANT SELECT, INSERT, CREATE, ALTER, TRUNCATE ON parwatch.*",
    }
    for reader in ("parwatch_analyst", "parwatch_grafana"):
        assert users[reader] == {
            "profile": "parwatch_readonly",
            "readonly": "1",
            "grants": "GRANT SELECT ON parwatch.*",
        }


def test_readonly_profile_lets_clients_set_only_what_they_must() -> None:
    root = _parse(USERS_XML).getroot()
    constraints = root.find("profiles/parwatch_readonly/constraints")
    assert constraints is not None
    changeable = {c.tag for c in constraints if c.find("changeable_in_readonly") is not None}
    assert changeable == {"max_execution_time", "group_by_use_nulls"}
    config = _parse(DEPLOY / "clickhouse/config.d/parwatch.xml").getroot()
    replace = config.findtext("access_control_improvements/settings_constraints_replace_previous")
    assert replace == "true"  # changeable_in_readonly is ignored without it


def test_passwords_come_from_the_environment_only(compose: dict[str, Any]) -> None:
    root = _parse(USERS_XML).getroot()
    env = compose["services"]["clickhouse"]["environment"]
    for user in root.findall("users/*"):
        passwords = [e for e in user if "password" in e.tag]
        assert len(passwords) == 1, user.tag
        (password,) = passwords
        assert (password.text or "").strip() == "", user.tag
        var = password.get("from_env")
        assert var, user.tag
        m = INTERPOLATION.fullmatch(str(env[var]))
        assert m and m.group(1) == var and m.group(2) == ":?", var  # required, no default


def test_grafana_datasource_reads_only_what_compose_gives_it(compose: dict[str, Any]) -> None:
    env = compose["services"]["grafana"]["environment"]
    path = DEPLOY / "grafana/provisioning/datasources/clickhouse.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    used = {m.group(1) for m in INTERPOLATION.finditer(text)}
    assert used and sorted(used - set(env)) == []
    assert env["CLICKHOUSE_GRAFANA_USER"] == "parwatch_grafana"
    mounts = [v.split(":")[1] for v in compose["services"]["grafana"]["volumes"]]
    provider = load_yaml(DEPLOY / "grafana/provisioning/dashboards/parwatch.yaml")
    assert provider["providers"][0]["options"]["path"] in mounts
