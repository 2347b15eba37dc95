"""yamllint on the deployment YAML and shellcheck on every shell script."""

from __future__ import annotations

import subprocess

import pytest
from deploy_checks import DEPLOY, REPO, run

YAML_PATHS = [
    DEPLOY / "compose.yaml",
    DEPLOY / "k8s",
    DEPLOY / "docker",
]


def shell_scripts() -> list[str]:
    """Every tracked or new shell script: *.sh files and the CI entry point."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.sh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    ci = REPO / ".ci" / "run"
    return sorted(listed + ([".ci/run"] if ci.exists() else []))


def test_deployment_yaml_passes_yamllint(tool):
    config = DEPLOY / ".yamllint"

    result = run(tool("yamllint"), "--strict", "-c", config, *YAML_PATHS)

    assert result.returncode == 0, result.stdout


def test_yamllint_config_rejects_a_long_line(tool, tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text(f"key: {'x' * 120}\n")

    result = run(tool("yamllint"), "-c", DEPLOY / ".yamllint", path)

    assert result.returncode != 0
    assert "line too long" in result.stdout


@pytest.mark.parametrize("script", shell_scripts())
def test_shell_script_passes_shellcheck(tool, script):
    result = run(tool("shellcheck"), "--severity=style", script)

    assert result.returncode == 0, result.stdout
