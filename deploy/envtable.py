"""The environment-variable table of docs/deployment.md, generated from Settings.

Every field of :class:`dataflows.config.Settings` becomes one row: the variable
that sets it, its default and its description. The documentation embeds the
table between two marker comments, so it can be regenerated whenever Settings
grows instead of being edited by hand::

    python -m deploy.envtable                          # print the table
    python -m deploy.envtable --write docs/deployment.md  # refresh the doc
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from dataflows.config import Settings

START_MARKER = "<!-- envtable:start -->"
END_MARKER = "<!-- envtable:end -->"
UNSET = "(unset)"


def env_name(settings_type: type[BaseSettings], field_name: str) -> str:
    """Return the environment variable that sets one field.

    A field with a validation alias is read under that bare name (for example
    ``DATABASE_URL``); every other field under the class's prefix.
    """
    field = settings_type.model_fields[field_name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    prefix = settings_type.model_config.get("env_prefix", "")
    return f"{prefix}{field_name}".upper()


def default_text(field: FieldInfo) -> str:
    """Return a field's default as it would be written in the environment."""
    default = field.get_default(call_default_factory=True)
    if default is None:
        return UNSET
    if isinstance(default, bool):
        return "true" if default else "false"
    return str(default)


def rows(settings_type: type[BaseSettings] = Settings) -> list[tuple[str, str, str]]:
    """Return ``(variable, default, meaning)`` for every settings field."""
    table = []
    for name, field in settings_type.model_fields.items():
        meaning = " ".join((field.description or "").split())
        table.append((env_name(settings_type, name), default_text(field), meaning))
    return table


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(settings_type: type[BaseSettings] = Settings) -> str:
    """Render the Markdown table, one row per field, in declaration order."""
    lines = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
    for variable, default, meaning in rows(settings_type):
        lines.append(f"| `{variable}` | `{_cell(default)}` | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def replace_table(document: str, table: str) -> str:
    """Return ``document`` with the text between the markers set to ``table``.

    Raises:
        ValueError: The document lacks a marker, or has them out of order.
    """
    start = document.find(START_MARKER)
    end = document.find(END_MARKER)
    if start < 0 or end < start:
        message = (
            f"expected {START_MARKER!r} before {END_MARKER!r} in the document, "
            f"got start at {start} and end at {end}"
        )
        raise ValueError(message)
    head = document[: start + len(START_MARKER)]
    return f"{head}\n{table}{document[end:]}"


def main(argv: list[str]) -> int:
    """Print the table, or rewrite it in place with ``--write PATH``."""
    table = render()
    if argv[:1] != ["--write"] or len(argv) != 2:
        sys.stdout.write(table)
        return 0
    path = Path(argv[1])
    path.write_text(replace_table(path.read_text(), table))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
