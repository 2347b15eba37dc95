"""checkov over the Dockerfile, the rendered Kubernetes overlays and Terraform.

Every skipped check carries its reason where it is skipped (a
``checkov.io/skip`` annotation or a ``#checkov:skip`` comment), so a clean run
means no failed check.
"""

from __future__ import annotations

import json
import os

import pytest
from deploy_checks import DEPLOY, render_overlay, run


def checkov(tool, *args) -> dict:
    """Run checkov offline and return its JSON report (one framework)."""
    env_args = ("env", "BC_SKIP_MAPPING=TRUE", f"PATH={os.environ['PATH']}")
    result = run(
        *env_args, tool("checkov"), *args, "--skip-download", "--compact", "-o", "json"
    )
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def failures(report: dict) -> list[tuple[str, str]]:
    return [
        (check["check_id"], check["resource"])
        for check in report["results"]["failed_checks"]
    ]


def test_dockerfile_has_no_failed_checkov_check(tool):
    report = checkov(
        tool, "-f", DEPLOY / "docker" / "Dockerfile", "--framework", "dockerfile"
    )

    assert report["summary"]["passed"] > 0
    assert failures(report) == []


def test_terraform_has_no_failed_checkov_check(tool):
    report = checkov(tool, "-d", DEPLOY / "terraform", "--framework", "terraform")

    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 0
    assert failures(report) == []


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_rendered_overlay_has_no_failed_checkov_check(tool, tmp_path, overlay):
    manifests = tmp_path / f"{overlay}.yaml"
    manifests.write_text(render_overlay(tmp_path, overlay))

    report = checkov(tool, "-f", manifests, "--framework", "kubernetes")

    assert report["summary"]["passed"] > 0
    assert failures(report) == []
