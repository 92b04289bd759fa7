"""Logging for the command line: readable lines for people, JSON lines for machines.

The library itself only logs through the standard `logging` module (loggers under
``aiosqsworker``) and never configures it; `configure_logging` is what the CLI calls. Log
records about a message carry ``consumer``, ``message_id`` and ``attempt`` as extra fields,
which the JSON format puts on every line. Message bodies, receipt handles and credentials are
never logged. Under ``--workers N`` every line names its worker and process id.

`log_to` is for services that configure logging their own way (uvicorn's): it sends the
library's records to another logger's handlers.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

__all__ = ["JsonFormatter", "configure_logging", "log_to", "message_context"]

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
        worker = getattr(record, "worker", None)
        if worker is not None:
            entry["worker"] = worker
            entry["pid"] = record.process
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _WorkerLabel(logging.Filter):
    """Marks every record with the worker index (the process id is on every record)."""

    def __init__(self, worker: int) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.worker
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
WORKER_TEXT_FORMAT = (
    "%(asctime)s %(levelname)-7s [worker %(worker)d pid %(process)d] %(name)s: %(message)s"
)


def configure_logging(
    level: str = "INFO", fmt: LogFormat = "text", *, worker: int | None = None
) -> None:
    """Send the root logger's records to stderr, as text or JSON lines.

    With `worker` (a worker of ``--workers N``), each line names the worker and its pid.
    """
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(TEXT_FORMAT if worker is None else WORKER_TEXT_FORMAT)
        )
    if worker is not None:
        handler.addFilter(_WorkerLabel(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    # botocore's INFO lines (credential discovery) are noise at the worker's INFO level.
    for noisy in ("botocore", "aiobotocore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, numeric))
    # A failed refresh of temporary credentials is logged there with a traceback each time;
    # the worker says it in one line of its own (and stops if it lasts).
    for refresh in ("botocore.credentials", "aiobotocore.credentials"):
        logging.getLogger(refresh).setLevel(max(logging.ERROR, numeric))


class _Forward(logging.Handler):
    """Hands each record to another logger's handlers, looked up when the record comes."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


def log_to(target: str | logging.Logger = "uvicorn.error", level: int | str = "INFO") -> None:
    """Send the library's log records (``aiosqsworker.*``) to `target`'s handlers, from `level` up.

    Under uvicorn the root logger has no handler and stays at WARNING, so without this none
    of the library's INFO lines (a consumer starting, a shutdown waiting for handlers) is
    shown. The records go to `target` (uvicorn's own ``uvicorn.error`` by default) when they
    are logged, so calling this before uvicorn configured its handlers works, and they no
    longer also reach the root logger. Calling it again replaces the earlier target.

    ```python
    import aiosqsworker

    aiosqsworker.log_to("uvicorn.error")  # in the lifespan, or at import
    ```
    """
    logger = logging.getLogger("aiosqsworker")
    target_logger = logging.getLogger(target) if isinstance(target, str) else target
    for handler in [h for h in logger.handlers if isinstance(h, _Forward)]:
        logger.removeHandler(handler)
    logger.addHandler(_Forward(target_logger))
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    logger.propagate = False
