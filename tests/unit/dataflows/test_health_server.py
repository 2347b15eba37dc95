"""Tests of the liveness and readiness server, over real HTTP on a free port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from dataflows.health import HealthServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def server(clock):
    with HealthServer(
        host="127.0.0.1", port=0, liveness_timeout_s=10, cache_s=2, clock=clock
    ) as running:
        yield running


def probe(server: HealthServer, path: str) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{server.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_livez_fails_once_progress_stops_and_recovers_on_a_beat(server, clock):
    assert probe(server, "/livez") == (
        200,
        {"status": "alive", "seconds_since_progress": 0.0, "timeout_s": 10},
    )
    clock.now += 11
    status, body = probe(server, "/livez")
    assert (status, body["status"]) == (503, "stuck")

    server.beat()
    assert probe(server, "/livez")[0] == 200


def test_readyz_reports_every_check_and_a_failing_one_flips_it(server, clock):
    broker_up = {"value": True}

    def broker() -> bool:
        return broker_up["value"]

    server.add_check("broker", broker)
    server.add_check("model", lambda: None)
    status, body = probe(server, "/readyz")
    assert status == 200
    assert body["status"] == "ready"
    assert body["checks"]["broker"]["ok"] is True

    broker_up["value"] = False
    clock.now += 2
    status, body = probe(server, "/readyz")
    assert (status, body["status"]) == (503, "not_ready")
    assert body["checks"]["broker"] == {
        "ok": False,
        "error": "check returned False",
        "ms": body["checks"]["broker"]["ms"],
    }
    assert body["checks"]["model"]["ok"] is True


def test_readiness_is_cached_between_probes(server, clock):
    calls = []
    server.add_check("redis", lambda: calls.append(1))
    for _ in range(3):
        probe(server, "/readyz")
    assert len(calls) == 1

    clock.now += 2.5
    probe(server, "/readyz")
    assert len(calls) == 2


def test_a_raising_check_fails_with_its_error_masked(server):
    def postgres() -> None:
        raise ConnectionError("refused for jane.doe@example.com at 203.0.113.9")

    server.add_check("postgres", postgres)
    status, body = probe(server, "/readyz")
    error = body["checks"]["postgres"]["error"]
    assert status == 503
    assert error.startswith("ConnectionError: refused for j***@example.com")
    assert "203.0.113.9" not in error


def test_an_unknown_path_is_not_found(server):
    assert probe(server, "/metrics") == (404, {"error": "no such endpoint"})


def test_no_checks_means_ready(server):
    assert probe(server, "/readyz") == (200, {"status": "ready", "checks": {}})
