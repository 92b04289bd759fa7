"""Logging for the command line: readable lines for people, JSON lines for machines.

The library itself only logs through the standard `logging` module (loggers under
``aiosqsworker``) and never configures it; `configure_logging` is what the CLI calls. Log
records about a message carry ``consumer``, ``message_id`` and ``attempt`` as extra fields,
which the JSON format puts on every line. Message bodies, receipt handles and credentials are
never logged.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

__all__ = ["JsonFormatter", "configure_logging", "message_context"]

LogFormat = Literal["text", "json"]

#: Extra fields a record may carry, copied onto JSON lines.
CONTEXT_FIELDS = ("consumer", "queue", "message_id", "attempt")


def message_context(consumer: str, message_id: str, attempt: int) -> dict[str, object]:
    """The `extra=` of a log record about one message."""
    return {"consumer": consumer, "message_id": message_id, "attempt": attempt}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", fmt: LogFormat = "text") -> None:
    """Send the root logger's records to stderr, as text or JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    # botocore's INFO lines (credential discovery) are noise at the worker's INFO level.
    for noisy in ("botocore", "aiobotocore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))
