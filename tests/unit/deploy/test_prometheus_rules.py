"""Tests of the Prometheus config, rules, rule tests, dashboard and live check.

promtool runs when installed (Debian: ``apt-get install -y prometheus``).
The name checks need no tool: every PromQL expression in the rules and the
dashboard may read only series that ``dataflows.metrics`` exports or that a
recording rule defines, so neither can drift from the code.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from dataflows.metrics import series_names
from deploy.prometheus import check
from deploy.prometheus.check import (
    Expression,
    dashboard_expressions,
    metric_names,
    probes,
    recorded_names,
    rule_expressions,
    selectors,
)

PROMETHEUS = Path(check.__file__).parent
GRAFANA = PROMETHEUS.parent / "grafana"
EXPRESSIONS = rule_expressions() + dashboard_expressions()
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, *args], cwd=PROMETHEUS, capture_output=True, text=True, check=False
    )


@needs_promtool
def test_promtool_accepts_the_local_config_and_its_rule_files():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout


@needs_promtool
def test_promtool_accepts_the_kubernetes_config():
    result = promtool("check", "config", "prometheus-kubernetes.yml")
    if "kubernetes_sd_configs not found" in result.stdout + result.stderr:
        pytest.skip("this promtool build has no Kubernetes discovery (Debian's)")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", "rules/recording.yml", "rules/alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_tests_pass():
    tests = sorted(
        str(p.relative_to(PROMETHEUS)) for p in PROMETHEUS.glob("rules/tests/*.yml")
    )
    result = promtool("test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(tests)


def test_every_alert_has_a_rule_test_firing_it_and_one_keeping_it_quiet():
    alerts = {e.source.split(": ")[1] for e in EXPRESSIONS if e.kind == "alert"}
    firing, quiet = set(), set()
    for path in PROMETHEUS.glob("rules/tests/*.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for test in case.get("alert_rule_test", []):
                (firing if test["exp_alerts"] else quiet).add(test["alertname"])
    assert alerts - firing == set()
    assert alerts - quiet == set()


@pytest.mark.parametrize("expression", EXPRESSIONS, ids=lambda e: e.source)
def test_expressions_read_only_series_the_code_or_the_rules_define(expression):
    known = series_names() | recorded_names()
    assert metric_names(expression.promql) - known == set()
    assert metric_names(expression.promql)


def test_recording_rules_follow_the_level_metric_operation_convention():
    for name in recorded_names():
        assert re.fullmatch(r"fraudflow:[a-z0-9_]+:[a-z0-9_]+", name), name


@pytest.mark.parametrize(
    ("promql", "names"),
    [
        ('sum by (le) (rate(a_bucket{le="0.05"}[5m])) > 0.2', {"a_bucket"}),
        ("x:y:z > 1 and on (job) absent(up offset 1h)", {"x:y:z", "up"}),
        ('label_replace(m, "dst", "$1", "src", "(.*)")', {"m"}),
        ("rate(m_total[$__rate_interval]) > bool 1e3", {"m_total"}),
        ("sum without (instance) (typo_totl)", {"typo_totl"}),
    ],
)
def test_metric_names_finds_names_and_nothing_else(promql, names):
    assert metric_names(promql) == names


def test_alerts_are_probed_by_their_selectors_and_panels_whole():
    alert = Expression("alert", "a", 'max(p{f="x"}) > 0.2 and rate(c_total[5m]) > 0')
    panel = Expression("panel", "p", "rate(c_total[$__rate_interval])")
    assert probes(alert) == ['p{f="x"}', "c_total"]
    assert probes(panel) == ["rate(c_total[1m])"]
    assert selectors('m{a="}"} or m') == ['m{a="}"}', "m"]


def test_dashboard_panels_name_the_provisioned_datasource_and_the_objective():
    dashboard = json.loads((GRAFANA / "dashboards" / "fraudflow.json").read_text())
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "fraudflow.yml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    assert {p["datasource"]["uid"] for p in dashboard["panels"]} == {uid}
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])

    latency = next(p for p in dashboard["panels"] if "latency" in p["title"].lower())
    steps = latency["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert 0.05 in [step["value"] for step in steps]


def relabel(rules: list[dict], labels: dict[str, str]) -> dict[str, str] | None:
    """Apply Prometheus ``keep``/``replace`` relabel rules (enough for ours)."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(
            labels.get(name, "") for name in rule["source_labels"]
        )
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if rule.get("action", "replace") == "keep":
            if match is None:
                return None
            continue
        if match is not None:
            replacement = re.sub(r"\$(\d+)", r"\\\1", rule.get("replacement", "$1"))
            labels[rule["target_label"]] = match.expand(replacement)
    return labels


def scrape_config(name: str) -> dict:
    return yaml.safe_load((PROMETHEUS / name).read_text())["scrape_configs"][0]


def test_kubernetes_relabeling_keeps_scoring_pods_and_takes_the_ordinal():
    rules = scrape_config("prometheus-kubernetes.yml")["relabel_configs"]
    pod = {
        "__address__": "10.1.2.3:2101",
        "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
        "__meta_kubernetes_pod_annotation_prometheus_io_port": "3030",
        "__meta_kubernetes_pod_annotation_prometheus_io_path": "/metrics",
        "__meta_kubernetes_pod_label_app_kubernetes_io_component": "scoring",
        "__meta_kubernetes_pod_name": "fraudflow-12",
        "__meta_kubernetes_namespace": "fraud",
    }
    labels = relabel(rules, pod)
    assert labels is not None
    assert labels["__address__"] == "10.1.2.3:3030"
    assert labels["process_id"] == "12"
    assert labels["__metrics_path__"] == "/metrics"

    other = {**pod, "__meta_kubernetes_pod_label_app_kubernetes_io_component": "db"}
    assert relabel(rules, other) is None


def test_local_relabeling_turns_the_api_port_into_the_process_id():
    config = scrape_config("prometheus.yml")
    targets = config["static_configs"][0]["targets"]
    ids = [relabel(config["relabel_configs"], {"__address__": t}) for t in targets]
    assert [labels["process_id"] for labels in ids] == ["0", "1", "2", "3"]


class FakePrometheus(BaseHTTPRequestHandler):
    """Answers instant queries: one series, or none if the query names psi."""

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        promql = query["query"][0]
        series = (
            [] if "fraudflow_psi" in promql else [{"metric": {}, "value": [0, "1"]}]
        )
        body = {"status": "success", "data": {"resultType": "vector", "result": series}}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_prometheus():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_live_check_fails_naming_every_expression_without_series(fake_prometheus):
    app = typer.Typer()
    app.command()(check.main)
    result = CliRunner().invoke(app, ["--url", fake_prometheus], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    assert "alerts.yml: FraudflowDrift" in result.output
    assert "fraudflow.json: Drift (population stability index) [A]" in result.output
    assert re.search(r"\d+ queries: \d+ ok, 0 quiet, 2 empty", result.output)
