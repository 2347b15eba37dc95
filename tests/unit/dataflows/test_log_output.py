"""Tests of log formatting, configuration and the last-line PII filter."""

from __future__ import annotations

import io
import json
import logging

import pytest

from dataflows.errors import ConfigurationError
from dataflows.logs import (
    JsonFormatter,
    KeyValueFormatter,
    PiiFilter,
    configure_logging,
    mask_pii,
)

PAN = "4111111111111111"
EMAIL = "jane.doe@example.com"
IP = "203.0.113.77"


@pytest.fixture
def json_lines():
    """Configure JSON logging into a buffer; undo it afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging("json", "DEBUG", stream=stream)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


def record(msg: str, *args, **extra) -> logging.LogRecord:
    fields = {"msg": msg, "args": args, "levelname": "INFO", "name": "t"}
    return logging.makeLogRecord({**fields, "created": 0.0, **extra})


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        (f"card {PAN} declined", PAN),
        ("card 4111 1111 1111 1111 declined", "1111 1111"),
        ("card 5500-0000-0000-0004 declined", "0000-0004"),
        (f"mail to {EMAIL}", "jane.doe"),
        (f"from {IP}:443", IP),
        ("from 2001:db8:85a3::8a2e:370:7334", "8a2e:370:7334"),
    ],
)
def test_mask_pii_removes_what_looks_personal(text, leaked):
    assert leaked not in mask_pii(text)


def test_mask_pii_leaves_ordinary_text_alone():
    text = "batch=512 took 12.5 ms at 10:42:07 offset=1234567"
    assert mask_pii(text) == text


def test_filter_masks_arguments_extras_and_tracebacks(json_lines):
    log = logging.getLogger("tests.pii")
    log.info("scored card %s", PAN, extra={"contact": EMAIL, "count": 3})
    try:
        raise ValueError(f"bad ip {IP}")
    except ValueError:
        log.exception("failed for %s", EMAIL)

    text = json.dumps(json_lines())
    for secret in (PAN, EMAIL, IP):
        assert secret not in text
    first, second = json_lines()
    assert first["msg"] == "scored card [masked-number]"
    assert first["contact"] == "j***@example.com"
    assert first["count"] == 3
    assert "203.0.113.0/24" in second["exc"]


def test_filter_survives_arguments_that_do_not_fit_the_format():
    broken = record("two %s %s", "one")
    assert PiiFilter().filter(broken)
    assert "did not fit" in broken.getMessage()


def test_json_lines_carry_level_logger_and_extras(json_lines):
    logging.getLogger("tests.json").warning("late event", extra={"late_by_ms": 420})
    (line,) = json_lines()
    assert line["level"] == "warning"
    assert line["logger"] == "tests.json"
    assert line["late_by_ms"] == 420
    assert line["ts"].endswith("Z")


def test_key_value_lines_quote_values_with_spaces_and_quotes():
    line = KeyValueFormatter().format(record('said "hi"', step="decode"))
    assert line == (
        'ts=1970-01-01T00:00:00.000Z level=info logger=t msg="said \\"hi\\"" '
        "step=decode"
    )


def test_json_formatter_renders_objects_it_cannot_encode_as_text():
    line = JsonFormatter().format(record("x", where=object()))
    assert json.loads(line)["where"].startswith("<object object")


def test_configure_logging_replaces_its_own_handler_only():
    root = logging.getLogger()
    other = logging.NullHandler()
    root.addHandler(other)
    first = configure_logging("kv", "INFO", stream=io.StringIO())
    second = configure_logging("kv", "WARNING", stream=io.StringIO())
    try:
        assert first not in root.handlers
        assert second in root.handlers
        assert other in root.handlers
        assert root.level == logging.WARNING
    finally:
        for handler in (other, second):
            root.removeHandler(handler)


@pytest.mark.parametrize(
    ("log_format", "level", "message"),
    [("xml", "INFO", "log format"), ("kv", "LOUD", "log level")],
)
def test_configure_logging_refuses_unknown_settings(log_format, level, message):
    with pytest.raises(ConfigurationError, match=message):
        configure_logging(log_format, level)
