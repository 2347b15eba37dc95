"""Kubernetes overlays: they render, match the API schema and form one cluster."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from deploy_checks import DEPLOY, render_overlay

KUBERNETES_VERSION = "1.32.0"
OVERLAYS = ("dev", "prod")
# Custom resources whose schema ships with their operator, not with Kubernetes.
CUSTOM_KINDS = {"ExternalSecret"}


def render(tool, tmp_path: Path, overlay: str) -> list[dict]:
    """Render an overlay and parse its manifests."""
    rendered = render_overlay(tmp_path, overlay)
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def one(manifests: list[dict], kind: str) -> dict:
    (found,) = [doc for doc in manifests if doc["kind"] == kind]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_matches_the_kubernetes_api_schema(tool, tmp_path, overlay):
    manifests = render(tool, tmp_path, overlay)

    validated = []
    for manifest in manifests:
        if manifest["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        validated.append(manifest["kind"])

    assert {"StatefulSet", "Service", "PodDisruptionBudget"} <= set(validated)


def test_schema_validation_rejects_a_misspelled_field(tool, tmp_path):
    statefulset = one(render(tool, tmp_path, "dev"), "StatefulSet")
    statefulset["spec"]["replica"] = 2

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_host_file_lists_one_address_per_replica(tool, tmp_path, overlay):
    manifests = render(tool, tmp_path, overlay)
    statefulset = one(manifests, "StatefulSet")
    (cluster,) = [
        doc
        for doc in manifests
        if doc["kind"] == "ConfigMap" and "hostfile.txt" in doc.get("data", {})
    ]

    hosts = cluster["data"]["hostfile.txt"].split()
    replicas = statefulset["spec"]["replicas"]
    service = statefulset["spec"]["serviceName"]
    name = statefulset["metadata"]["name"]

    assert hosts == [f"{name}-{i}.{service}:2101" for i in range(replicas)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_recovery_partitions_fit_within_the_replicas(tool, tmp_path, overlay):
    manifests = render(tool, tmp_path, overlay)
    replicas = one(manifests, "StatefulSet")["spec"]["replicas"]
    (config,) = [
        doc
        for doc in manifests
        if doc["kind"] == "ConfigMap" and "KAFKA_BOOTSTRAP_SERVERS" in doc["data"]
    ]

    partitions = int(config["data"]["FRAUDFLOW_RECOVERY_PARTITIONS"])

    assert 1 <= partitions <= replicas
    assert replicas <= int(config["data"]["FRAUDFLOW_PARTITIONS"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_are_non_root_read_only_and_without_capabilities(tool, tmp_path, overlay):
    statefulset = one(render(tool, tmp_path, overlay), "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"limits", "requests"} <= set(container["resources"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    claims = statefulset["spec"]["volumeClaimTemplates"]
    assert [claim["metadata"]["name"] for claim in claims] == ["recovery"]


def test_production_render_holds_no_secret_value(tool, tmp_path):
    manifests = render(tool, tmp_path, "prod")

    assert [doc for doc in manifests if doc["kind"] == "Secret"] == []
    assert one(manifests, "ExternalSecret")["spec"]["target"]["name"] == (
        "fraudflow-secrets"
    )


def test_dev_secret_file_is_ignored_by_git():
    ignored = (DEPLOY / "k8s" / ".gitignore").read_text().splitlines()

    assert "overlays/*/secrets.env" in ignored
