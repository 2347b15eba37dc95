"""The environment-variable table of docs/deployment.md follows Settings."""

from __future__ import annotations

import re

import pytest
from deploy_checks import REPO
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dataflows.config import Settings
from deploy import envtable

DOC = REPO / "docs" / "deployment.md"


def documented() -> dict[str, str]:
    """Return variable -> default from the generated section of the doc."""
    text = DOC.read_text()
    section = text.split(envtable.START_MARKER)[1].split(envtable.END_MARKER)[0]
    return dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]*)` \|", section, re.M))


def test_every_settings_field_is_documented_with_its_default():
    table = documented()

    for name in Settings.model_fields:
        variable = envtable.env_name(Settings, name)
        default = envtable.default_text(Settings.model_fields[name])
        assert table.get(variable) == default, (
            f"{variable} is missing or stale: run "
            "`python -m deploy.envtable --write docs/deployment.md`"
        )
    assert len(table) == len(Settings.model_fields)


class _Example(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXAMPLE_")

    url: str = Field("redis://x", validation_alias="REDIS_URL", description="A | B")
    batch: int = Field(10, description="Items per batch.")
    enabled: bool = Field(True, description="On or off.")
    secret: str | None = Field(None, description="Left unset.")


def test_table_uses_aliases_prefixes_and_environment_spelling():
    rows = envtable.rows(_Example)

    assert rows == [
        ("REDIS_URL", "redis://x", "A | B"),
        ("EXAMPLE_BATCH", "10", "Items per batch."),
        ("EXAMPLE_ENABLED", "true", "On or off."),
        ("EXAMPLE_SECRET", "(unset)", "Left unset."),
    ]
    assert "A \\| B" in envtable.render(_Example)


def test_replacing_the_table_keeps_the_text_around_it():
    document = f"intro\n{envtable.START_MARKER}\nold\n{envtable.END_MARKER}\nend\n"

    updated = envtable.replace_table(document, "| new |\n")

    assert updated == (
        f"intro\n{envtable.START_MARKER}\n| new |\n{envtable.END_MARKER}\nend\n"
    )


def test_replacing_without_markers_says_what_was_expected():
    with pytest.raises(ValueError, match="expected '<!-- envtable:start -->'"):
        envtable.replace_table("no markers here", "| new |\n")
