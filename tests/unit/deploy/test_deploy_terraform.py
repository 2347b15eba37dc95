"""Terraform for AWS: it parses, is canonically formatted and opens few ports."""

from __future__ import annotations

import hcl2
import pytest
from deploy_checks import DEPLOY, run

TERRAFORM = DEPLOY / "terraform"
TERRAFORM_FILES = sorted(TERRAFORM.glob("*.tf"))


def unquote(node):
    """Strip the quotes python-hcl2 keeps on string keys and literals."""
    if isinstance(node, dict):
        return {
            unquote(key): unquote(value)
            for key, value in node.items()
            if key != "__is_block__"
        }
    if isinstance(node, list):
        return [unquote(item) for item in node]
    if isinstance(node, str) and len(node) >= 2 and node[0] == node[-1] == '"':
        return node[1:-1]
    return node


def resources(kind: str) -> dict[str, dict]:
    """Return every resource of one type, by name, across the module."""
    found: dict[str, dict] = {}
    for path in TERRAFORM_FILES:
        for block in unquote(hcl2.loads(path.read_text())).get("resource", []):
            found.update(block.get(kind, {}))
    return found


@pytest.mark.parametrize("path", TERRAFORM_FILES, ids=lambda path: path.name)
def test_terraform_file_parses_as_hcl(path):
    parsed = hcl2.loads(path.read_text())

    assert parsed


def test_terraform_files_are_canonically_formatted(tool):
    result = run(tool("terraform"), "fmt", "-check", "-diff", TERRAFORM)

    assert result.returncode == 0, result.stdout


def test_database_redis_and_efs_accept_only_the_flow():
    ingress = resources("aws_vpc_security_group_ingress_rule")
    guarded = {
        "database_from_flow": ("database", 5432),
        "redis_from_flow": ("redis", 6379),
        "efs_from_flow": ("efs", 2049),
    }

    for rule_name, (group, port) in guarded.items():
        rule = ingress[rule_name]
        assert rule["security_group_id"] == f"${{aws_security_group.{group}.id}}"
        assert rule["referenced_security_group_id"] == ("${aws_security_group.flow.id}")
        assert rule["from_port"] == rule["to_port"] == port
    others = set(ingress) - set(guarded) - {"flow_cluster", "flow_metrics"}
    assert others == set()


def test_no_ingress_rule_is_open_to_the_internet():
    ingress = resources("aws_vpc_security_group_ingress_rule")

    open_rules = [
        name for name, rule in ingress.items() if rule.get("cidr_ipv4") == "0.0.0.0/0"
    ]

    assert open_rules == []


def test_database_password_is_managed_by_rds_not_terraform():
    (database,) = resources("aws_db_instance").values()

    assert database["manage_master_user_password"] is True
    assert "password" not in database
