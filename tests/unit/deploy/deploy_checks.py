"""Helpers of the deployment checks: where the repository and the checkers are."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
VENV_BIN = Path(sys.executable).parent

INSTALL_HINTS = {
    "hadolint": "it is in the dev group: run `deploy/bootstrap.sh` (uv sync)",
    "shellcheck": "it is in the dev group: run `deploy/bootstrap.sh` (uv sync)",
    "yamllint": "it is in the dev group: run `deploy/bootstrap.sh` (uv sync)",
    "check-jsonschema": "it is in the dev group: run `deploy/bootstrap.sh` (uv sync)",
    "checkov": "run `deploy/tools.sh`, which installs it into .fraudflow/checkov",
    "kubectl": "install kubectl 1.27 or newer (it bundles kustomize v5)",
    "terraform": "install terraform 1.6 or newer from HashiCorp's packages",
    "promtool": "install Debian's prometheus package (apt-get install prometheus)",
}


def find_tool(name: str) -> Path | None:
    """Return a checker's executable: project venv, checkov venv, then PATH."""
    for candidate in (
        VENV_BIN / name,
        REPO / ".fraudflow" / "checkov" / "bin" / name,
    ):
        if candidate.exists():
            return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a checker and return its result without raising on failure."""
    return subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def require(name: str) -> Path:
    """Return a checker's executable, or skip the test saying how to install it."""
    path = find_tool(name)
    if path is None:
        pytest.skip(f"{name} is not installed: {INSTALL_HINTS[name]}")
    return path


def render_overlay(tmp_path: Path, overlay: str) -> str:
    """Render a Kubernetes overlay with kustomize and return the manifests.

    Renders a copy of deploy/k8s in which every ``secrets.env.example`` stands
    in for the ignored ``secrets.env`` its overlay reads.
    """
    tree = tmp_path / "k8s"
    if not tree.exists():
        shutil.copytree(DEPLOY / "k8s", tree)
        for example in tree.glob("overlays/*/secrets.env.example"):
            shutil.copy(example, example.with_suffix(""))

    result = run(require("kubectl"), "kustomize", tree / "overlays" / overlay)

    assert result.returncode == 0, result.stderr
    return result.stdout
