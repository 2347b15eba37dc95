"""The Docker Compose file: schema, cluster wiring and secrets."""

from __future__ import annotations

import re
import shutil

import yaml
from deploy_checks import DEPLOY, run

COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification(tool):
    checker = tool("check-jsonschema")

    result = run(checker, "--builtin-schema", "vendor.compose-spec", COMPOSE)

    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_service_with_an_unknown_key(tool, tmp_path):
    broken = compose()
    broken["services"]["redis"]["restart_policy"] = "always"
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(broken))

    result = run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", path
    )

    assert result.returncode != 0
    assert "restart_policy" in result.stdout + result.stderr


def test_flow_processes_share_one_address_list_with_distinct_ids():
    services = compose()["services"]
    flows = {name: spec for name, spec in services.items() if name.startswith("flow-")}

    addresses = {spec["environment"]["BYTEWAX_ADDRESSES"] for spec in flows.values()}
    ids = sorted(
        int(spec["environment"]["BYTEWAX_PROCESS_ID"]) for spec in flows.values()
    )

    assert len(flows) == 2
    assert addresses == {";".join(f"{name}:2101" for name in sorted(flows))}
    assert ids == list(range(len(flows)))


def test_each_flow_process_keeps_recovery_on_its_own_volume():
    services = compose()["services"]
    recovery_volumes = [
        volume.split(":")[0]
        for name, spec in services.items()
        if name.startswith("flow-")
        for volume in spec["volumes"]
        if volume.endswith(":/var/lib/fraudflow/recovery")
    ]

    assert sorted(recovery_volumes) == ["recovery-0", "recovery-1"]


def test_flow_starts_only_after_the_setup_job_succeeds():
    services = compose()["services"]

    for name in ("flow-0", "flow-1", "simulator"):
        condition = services[name]["depends_on"]["setup"]["condition"]
        assert condition == "service_completed_successfully"


def test_every_secret_compose_needs_is_listed_in_the_env_example():
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    from_env = {spec["environment"] for spec in compose()["secrets"].values()}
    example = set(re.findall(r"^(\w+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))

    assert {"FRAUDFLOW_HMAC_KEY", "POSTGRES_PASSWORD"} <= required | from_env
    assert required | from_env <= example


def test_application_containers_run_read_only_without_capabilities():
    services = compose()["services"]

    for name in ("setup", "flow-0", "flow-1", "simulator"):
        assert services[name]["read_only"] is True
        assert services[name]["cap_drop"] == ["ALL"]
        assert "hmac_key" in services[name]["secrets"]


def test_every_file_compose_mounts_from_the_repository_exists():
    sources = [
        volume.split(":")[0]
        for spec in compose()["services"].values()
        for volume in spec.get("volumes", [])
        if volume.startswith("./")
    ]

    missing = [source for source in sources if not (DEPLOY / source).exists()]

    assert sources
    assert missing == []


def test_compose_prometheus_config_loads_the_project_rules(tool, tmp_path):
    shutil.copy(DEPLOY / "docker" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copytree(DEPLOY / "prometheus" / "rules", tmp_path / "rules")

    result = run(tool("promtool"), "check", "config", tmp_path / "prometheus.yml")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout + result.stderr
