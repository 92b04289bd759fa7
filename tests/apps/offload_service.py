"""A user's module of blocking and CPU-bound handlers: ``python -m aiosqsworker
tests.apps.offload_service:app``.

Each consumer is registered only when its queue is named in the environment, so that a
scenario runs just the ones it needs:

- OFFLOAD_SLEEPY_THREAD: a plain ``def`` that blocks in ``time.sleep`` (a thread);
- OFFLOAD_FLOWING: an ``async def`` that awaits 50 ms per message (the loop);
- OFFLOAD_CPU_THREAD, OFFLOAD_CPU_PROCESS: the same CPU-bound work in a thread and in a
  process;
- OFFLOAD_SLEEPY_LOOP: an ``async def`` that calls ``time.sleep`` (it blocks the loop);
- OFFLOAD_COMMANDS_THREAD, OFFLOAD_COMMANDS_PROCESS, OFFLOAD_COMMANDS_LOOP: handlers that
  do what the body says (the last one an ``async def``, which ``"hang"``s by awaiting).

A body is JSON: ``{"n": 1, "seconds": 0.3}`` (how long to sleep, or how much CPU time to
burn), or for the command handlers ``{"n": 1, "do": "retry"}``. OFFLOAD_VISIBILITY (default
2), OFFLOAD_CONCURRENCY (default 2) and OFFLOAD_TIMEOUT (default none) configure the
consumers; the app's pool has OFFLOAD_PROCESSES processes (default 2). Events go to the
ledger (`tests.apps._ledger`): ``start`` and ``done`` with the label ``<n>@<unix time>``
(``"do": "fork-then-crash"`` forks a process that sleeps a minute, records a ``forked``
event whose n is that process's pid, and dies).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable

import anyio

from aiosqsworker import App, Message, Reject, Retry

from ._ledger import record

VISIBILITY = int(os.environ.get("OFFLOAD_VISIBILITY", "2"))
CONCURRENCY = int(os.environ.get("OFFLOAD_CONCURRENCY", "2"))
TIMEOUT = float(os.environ["OFFLOAD_TIMEOUT"]) if os.environ.get("OFFLOAD_TIMEOUT") else None

app = App(processes=int(os.environ.get("OFFLOAD_PROCESSES", "2")), shutdown_timeout=10)


def _event(kind: str, message: Message, n: object) -> None:
    record(kind, message, f"{n}@{time.time():.3f}")


def burn_cpu(seconds: float) -> int:
    """Pure Python arithmetic until this thread has used `seconds` of CPU time."""
    end = time.thread_time() + seconds
    n = 1
    while time.thread_time() < end:
        for _ in range(5000):
            n = (n * 31 + 7) % 1_000_003
    return n


def sleepy_in_thread(message: Message) -> None:
    body = json.loads(message.body)
    _event("start", message, body["n"])
    time.sleep(body["seconds"])
    _event("done", message, body["n"])


async def flowing(message: Message) -> None:
    body = json.loads(message.body)
    await anyio.sleep(0.05)
    _event("done", message, body["n"])


def crunch_in_thread(message: Message) -> None:
    body = json.loads(message.body)
    _event("start", message, body["n"])
    burn_cpu(body["seconds"])
    _event("done", message, body["n"])


def crunch_in_process(message: Message) -> None:
    body = json.loads(message.body)
    _event("start", message, body["n"])
    burn_cpu(body["seconds"])
    _event("done", message, body["n"])


async def sleepy_on_the_loop(message: Message) -> None:
    body = json.loads(message.body)
    _event("start", message, body["n"])
    time.sleep(body["seconds"])  # noqa: ASYNC251 - blocks the loop on purpose: the watchdog
    _event("done", message, body["n"])


class HandlerFailure(Exception):
    """What the command handlers raise for ``"do": "fail"``."""


def _obey(message: Message) -> None:
    body = json.loads(message.body)
    n, do = body["n"], body["do"]
    _event("start", message, n)
    if do == "retry" and message.receive_count == 1:
        raise Retry(delay=1)
    if do == "reject":
        raise Reject(f"message {n} cannot be handled")
    if do == "fail":
        raise HandlerFailure(f"message {n} failed")
    if do == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if do == "fork-then-crash":  # the forked process keeps every descriptor, pipes included
        grandchild = os.fork()
        if grandchild == 0:
            time.sleep(60)
            os._exit(0)
        _event("forked", message, grandchild)
        os.kill(os.getpid(), signal.SIGKILL)
    if do == "hang":
        time.sleep(body.get("seconds", 6))
    _event("done", message, n)


def commands_in_thread(message: Message) -> None:
    _obey(message)


def commands_in_process(message: Message) -> None:
    _obey(message)


async def commands_on_the_loop(message: Message) -> None:
    body = json.loads(message.body)
    if body["do"] != "hang":
        _obey(message)
        return
    _event("start", message, body["n"])
    await anyio.sleep(body.get("seconds", 6))
    _event("done", message, body["n"])


_CONSUMERS: dict[str, tuple[Callable[..., object], dict[str, object]]] = {
    "OFFLOAD_SLEEPY_THREAD": (sleepy_in_thread, {}),
    "OFFLOAD_FLOWING": (flowing, {"concurrency": 1, "visibility_timeout": 30}),
    "OFFLOAD_CPU_THREAD": (crunch_in_thread, {}),
    "OFFLOAD_CPU_PROCESS": (crunch_in_process, {"run_in": "process"}),
    "OFFLOAD_SLEEPY_LOOP": (sleepy_on_the_loop, {"visibility_timeout": 30}),
    "OFFLOAD_COMMANDS_THREAD": (commands_in_thread, {"timeout": TIMEOUT}),
    "OFFLOAD_COMMANDS_PROCESS": (commands_in_process, {"run_in": "process", "timeout": TIMEOUT}),
    "OFFLOAD_COMMANDS_LOOP": (commands_on_the_loop, {"timeout": TIMEOUT}),
}

for variable, (handler, settings) in _CONSUMERS.items():
    queue = os.environ.get(variable)
    if queue:
        options: dict[str, object] = {
            "concurrency": CONCURRENCY,
            "prefetch": 0,
            "wait_time": 1,
            "visibility_timeout": VISIBILITY,
            "retry_base_delay": 0.5,
            **settings,
        }
        app.consumer(queue, **options)(handler)  # type: ignore[arg-type]
