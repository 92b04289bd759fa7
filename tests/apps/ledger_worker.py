"""A worker that keeps a ledger: `python -m aiosqsworker tests.apps.ledger_worker`.

For the kill -9 scenario and the soak test. Each message's body is JSON: ``{"n": 7}``, plus
``"sleep": 5.0`` for a long job and ``"poison": true`` for a message that always fails.
Configured through the environment:

- LEDGER_QUEUE: the queue's name;
- LEDGER_FILE: the ledger, to which one line is appended per event:
  ``<pid> <event> <message id> <n> <receive count> <unix time>``, where event is ``start``,
  ``done`` (the handler returned), ``fail`` (it raised) or ``cancel`` (it was cancelled);
- LEDGER_JOB_SECONDS: how long an ordinary job sleeps (default 0);
- LEDGER_FAIL_RATE: the fraction of handler calls that fail at random (default 0);
- LEDGER_CONCURRENCY, LEDGER_VISIBILITY: the consumer's concurrency and visibility timeout.
"""

from __future__ import annotations

import os
import random
import time

import anyio

from aiosqsworker import Message, consumer

QUEUE = os.environ.get("LEDGER_QUEUE", "ledger")
JOB_SECONDS = float(os.environ.get("LEDGER_JOB_SECONDS", "0"))
FAIL_RATE = float(os.environ.get("LEDGER_FAIL_RATE", "0"))
CONCURRENCY = int(os.environ.get("LEDGER_CONCURRENCY", "10"))
VISIBILITY = int(os.environ.get("LEDGER_VISIBILITY", "30"))

# Opened once for appending: each event is one write() of one short line, so the lines of
# concurrent handlers and processes never interleave.
_LEDGER = os.open(os.environ["LEDGER_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
_PID = os.getpid()


class InjectedFailure(Exception):
    """A failure the ledger worker raises on purpose."""


def _record(event: str, message: Message, n: object) -> None:
    line = f"{_PID} {event} {message.message_id} {n} {message.receive_count} {time.time():.3f}\n"
    os.write(_LEDGER, line.encode())


@consumer(QUEUE, concurrency=CONCURRENCY, wait_time=1, visibility_timeout=VISIBILITY)
async def handle(message: Message) -> None:
    body = message.json()
    n = body.get("n")
    _record("start", message, n)
    try:
        await anyio.sleep(float(body.get("sleep", JOB_SECONDS)))
        if body.get("poison") or random.random() < FAIL_RATE:
            raise InjectedFailure(f"message {n}: injected failure")
    except InjectedFailure:
        _record("fail", message, n)
        raise
    except BaseException:
        _record("cancel", message, n)
        raise
    _record("done", message, n)
