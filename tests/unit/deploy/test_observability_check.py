"""Tests of the live check's parts that need no running pipeline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from dataflows.errors import ConfigurationError
from deploy.observability import (
    PrometheusServer,
    prometheus_config,
    promtool_steps,
    require_tool,
    run_promtool,
)
from deploy.prometheus import check

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")


def test_a_missing_tool_is_a_configuration_error_with_an_install_hint(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigurationError, match=r"'prometheus' on PATH.*apt-get"):
        require_tool("prometheus")


def test_the_generated_config_scrapes_the_flow_as_process_zero_with_the_rules():
    config = prometheus_config(9123, list(check.RULE_FILES))
    (target,) = config["scrape_configs"][0]["static_configs"]
    assert target == {"targets": ["127.0.0.1:9123"], "labels": {"process_id": "0"}}
    assert config["rule_files"] == [str(path) for path in check.RULE_FILES]
    assert all(Path(path).is_absolute() for path in config["rule_files"])


@needs_promtool
def test_promtool_accepts_the_generated_config_and_all_rule_steps_pass(tmp_path):
    config = prometheus_config(9123, list(check.RULE_FILES))
    server = PrometheusServer("prometheus", tmp_path, config)
    steps = promtool_steps(PROMTOOL, server.write_config())
    assert [name for name, _argv in steps] == [
        "promtool check config",
        "promtool check rules",
        "promtool test rules",
    ]
    console = Console(record=True, width=200)
    assert run_promtool(steps, console), console.export_text()


@needs_promtool
def test_a_failing_promtool_step_fails_the_check_and_shows_why(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump({"rule_files": ["does-not-exist.yml"]}))
    console = Console(record=True, width=200)
    steps = promtool_steps(PROMTOOL, broken)[:1]
    assert not run_promtool(steps, console)
    assert "failed promtool check config" in console.export_text()
    assert subprocess.run(steps[0][1], capture_output=True).returncode != 0
