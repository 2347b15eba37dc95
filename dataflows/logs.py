"""Log output of fraudflow's entry points: key=value or JSON lines, PII masked.

Library modules only ever call ``logging.getLogger(__name__)``; a command
(the flow's launcher, the simulator, a job) calls :func:`configure_logging`
once, which puts one handler on the root logger. That handler carries
:class:`PiiFilter`, a last line of defence that masks anything looking like a
card number, email or IP address in every record that reaches it, from
fraudflow's loggers or any library's. Code must still never log such values:
the filter cannot recognise a device id, and masking costs a regex pass.

``kv`` reads well in a terminal and greps well; ``json`` suits a log shipper
that indexes fields. Extra fields passed as ``logger.info(..., extra={...})``
appear as fields in both.

Example:
    >>> import io
    >>> stream = io.StringIO()
    >>> handler = configure_logging("kv", "INFO", stream=stream)
    >>> logging.getLogger("demo").info("card %s declined", "4111111111111111")
    >>> "card [masked-number] declined" in stream.getvalue()
    True
    >>> logging.getLogger().removeHandler(handler)
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

import orjson

from dataflows.errors import ConfigurationError
from dataflows.masking import scrub_digits

LogFormat = Literal["kv", "json"]
FORMATS: Final = ("kv", "json")

#: Attributes every ``LogRecord`` has; anything else came in through ``extra``.
_RECORD_ATTRIBUTES: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None))
) | {"message", "asctime"}
_PLAIN_TYPES: Final = (int, float, bool, type(None))


def mask_pii(text: str) -> str:
    """Mask card-like numbers, emails and IP addresses in ``text``.

    The same rules as dead-letter payloads (:func:`dataflows.masking.
    scrub_digits`): digit runs of 12 or more become ``[masked-number]``,
    emails keep their first character and domain, IPs become their /24 or
    /48 network.

    Example:
        >>> mask_pii("from jane@example.com at 203.0.113.7")
        'from j***@example.com at 203.0.113.0/24'
    """
    raw = text.encode("utf-8", "surrogateescape")
    return scrub_digits(raw).decode("utf-8", "surrogateescape")


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Return the fields a record got through ``extra=``."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }


class PiiFilter(logging.Filter):
    """Masks personal data in a record's message, extras and traceback.

    The message is rendered with its arguments and masked, so the arguments
    are dropped. Extras that are not plain numbers become masked strings.
    Never rejects a record and never raises.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask ``record`` in place; always keep it."""
        record.msg = mask_pii(_message(record))
        record.args = None
        for key, value in extra_fields(record).items():
            if not isinstance(value, _PLAIN_TYPES):
                setattr(record, key, mask_pii(str(value)))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_pii(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_pii(record.stack_info)
        return True


def _message(record: logging.LogRecord) -> str:
    """Render the message; a bad format string must not break the caller."""
    try:
        return record.getMessage()
    except (TypeError, ValueError):
        return f"{record.msg!s} (log arguments did not fit the format)"


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fields(record: logging.LogRecord, formatter: logging.Formatter) -> dict:
    """The fields of one line, in a stable order."""
    fields: dict[str, Any] = {
        "ts": _timestamp(record),
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    fields.update(extra_fields(record))
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    if record.exc_text:
        fields["exc"] = record.exc_text
    if record.stack_info:
        fields["stack"] = record.stack_info
    return fields


class _LineFormatter(logging.Formatter):
    """Renders a record's fields (see :func:`_fields`) as one line."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as one line."""
        return self.render(_fields(record, self))

    def render(self, fields: dict[str, Any]) -> str:
        """Join the fields into a line."""
        raise NotImplementedError


class KeyValueFormatter(_LineFormatter):
    """``key=value`` lines; values with spaces, quotes or ``=`` are quoted.

    Example:
        >>> KeyValueFormatter().render({"msg": "flush failed", "batch": 3})
        'msg="flush failed" batch=3'
    """

    def render(self, fields: dict[str, Any]) -> str:
        """Join the fields as ``key=value`` pairs."""
        return " ".join(f"{key}={_kv_value(value)}" for key, value in fields.items())


def _kv_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if text and not any(char in text for char in ' "=\n\t\\'):
        return text
    return orjson.dumps(text).decode()


class JsonFormatter(_LineFormatter):
    """One JSON object per line; values JSON cannot hold become text.

    Example:
        >>> JsonFormatter().render({"msg": "started", "workers": 2})
        '{"msg":"started","workers":2}'
    """

    def render(self, fields: dict[str, Any]) -> str:
        """Encode the fields as a JSON object."""
        return orjson.dumps(fields, default=str).decode()


def configure_logging(
    format: LogFormat = "kv",
    level: str | int = "INFO",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to ``stream`` as masked ``kv`` or ``json`` lines.

    For entry points only. Calling it again replaces the handler it
    installed before; handlers installed by others are left alone.

    Args:
        format: ``"kv"`` or ``"json"``.
        level: A level name (``"DEBUG"``, ``"INFO"``, ...) or number.
        stream: Where lines go; standard error by default.

    Returns:
        The installed handler.

    Raises:
        ConfigurationError: Unknown format or level.
    """
    formatter = _formatter(format)
    numeric_level = _level(level)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(PiiFilter())
    handler._fraudflow = True  # type: ignore[attr-defined]

    root = logging.getLogger()
    for previous in [h for h in root.handlers if getattr(h, "_fraudflow", False)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(numeric_level)
    return handler


def _formatter(format: str) -> logging.Formatter:
    if format == "kv":
        return KeyValueFormatter()
    if format == "json":
        return JsonFormatter()
    raise ConfigurationError(f"log format: expected one of {FORMATS!r}, got {format!r}")


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ConfigurationError(
            f"log level: expected DEBUG, INFO, WARNING or ERROR, got {level!r}"
        )
    return numeric
