"""The CPU-bound consumer of `python -m benchmarks.blocking`, in the mode BLOCKING_MODE says.

``loop``: an ``async def`` doing the work on the event loop (the naive handler); ``thread``:
the same work in a plain ``def`` (a worker thread); ``process``: a ``def`` with
``run_in="process"`` in a pool of BLOCKING_PROCESSES (default 2). Each body is JSON,
``{"seconds": 0.1}``: the CPU time of pure Python arithmetic the job takes. Each run appends
``<pid> start|done <message id> <unix time>`` to BLOCKING_LEDGER, with one ``write()``.
"""

from __future__ import annotations

import json
import os
import time

from aiosqsworker import App, Message

MODE = os.environ.get("BLOCKING_MODE", "loop")
QUEUE = os.environ.get("BLOCKING_QUEUE", "bench-blocking")
_LEDGER = os.open(os.environ["BLOCKING_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

app = App(processes=int(os.environ.get("BLOCKING_PROCESSES", "2")))


def _record(event: str, message: Message) -> None:
    os.write(_LEDGER, f"{os.getpid()} {event} {message.message_id} {time.time():.3f}\n".encode())


def work(message: Message) -> None:
    """Pure Python arithmetic until this thread has used the body's seconds of CPU time."""
    _record("start", message)
    end = time.thread_time() + float(json.loads(message.body)["seconds"])
    n = 1
    while time.thread_time() < end:
        for _ in range(5000):
            n = (n * 31 + 7) % 1_000_003
    _record("done", message)


async def crunch_on_the_loop(message: Message) -> None:
    work(message)


def crunch_in_a_thread(message: Message) -> None:
    work(message)


def crunch_in_a_process(message: Message) -> None:
    work(message)


_HANDLERS = {
    "loop": (crunch_on_the_loop, {}),
    "thread": (crunch_in_a_thread, {}),
    "process": (crunch_in_a_process, {"run_in": "process"}),
}
_handler, _settings = _HANDLERS[MODE]
app.consumer(
    QUEUE,
    concurrency=int(os.environ.get("BLOCKING_CONCURRENCY", "2")),
    prefetch=0,
    wait_time=1,
    visibility_timeout=int(os.environ.get("BLOCKING_VISIBILITY", "2")),
    **_settings,  # type: ignore[arg-type]
)(_handler)
