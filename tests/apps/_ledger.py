"""The ledger the CLI scenarios' user modules keep: one line per handler event.

Each line is ``<pid> <event> <message id> <label>``, appended with one ``write()`` to a file
opened for appending (ORDERS_LEDGER), so the lines of concurrent handlers and processes never
interleave. Without ORDERS_LEDGER nothing is written.
"""

from __future__ import annotations

import os

from aiosqsworker import Message

_PATH = os.environ.get("ORDERS_LEDGER")
_FILE = os.open(_PATH, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if _PATH else None
_PID = os.getpid()


def record(event: str, message: Message, label: object) -> None:
    if _FILE is not None:
        os.write(_FILE, f"{_PID} {event} {message.message_id} {label}\n".encode())
