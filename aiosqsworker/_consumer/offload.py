"""Handlers off the event loop: a plain ``def`` in a thread, ``run_in="process"`` in a child.

The event loop keeps every lease, poll and acknowledgement of the process going, so code that
blocks it (a synchronous SDK call, heavy CPU work) stalls all of them. These calls take the
handler elsewhere and leave the loop free; the slot awaits them like an ``async`` handler, so
middleware, typed bodies, outcomes and FIFO order are the same for every kind of handler.

- **thread**: a pool of the consumer's own threads, at most its `concurrency` alive at once
  (`threads.HandlerThreads`), rather than anyio's threads under the default limiter shared
  by the whole process. Cancelled (the consumer's `timeout=`, a lost lease, a forced stop), the call
  returns at once and the message takes its path; the thread itself cannot be stopped: it
  runs on, what it returns or raises is ignored, and it keeps its place until it returns.
- **process**: the app's `ProcessPool`. The body is decoded here, the handler and its
  arguments are pickled to a child (the handler by reference: a top-level function of an
  importable module), and the outcome comes back. The pool times `timeout=` itself, from
  the moment a child has the job; past it, or cancelled, the child is killed.
"""

from __future__ import annotations

import pickle
from collections.abc import Awaitable, Callable
from typing import Any

from .._bodies import Arguments
from .._errors import ConfigurationError
from .._registry import ConsumerSpec
from .procpool import ProcessPool
from .stats import Counters
from .threads import HandlerThreads

__all__ = ["check_picklable", "in_process", "in_thread", "invoker_for"]

Call = Callable[[Any], Awaitable[object]]


def invoker_for(
    spec: ConsumerSpec,
    processes: ProcessPool | None = None,
    counters: Counters | None = None,
    concurrency: Callable[[], int] | None = None,
) -> Call:
    """What the slots await for one run of `spec`: the body decoded, the handler called
    where it runs. A ``run_in="process"`` handler needs the app's pool, `processes`; a
    ``def`` handler has at most `concurrency()` threads (its setting unless given), the
    abandoned ones counted in the consumer's `counters`."""
    if spec.run_in == "loop":
        return spec.invoke
    if spec.run_in == "thread":
        threads = HandlerThreads(
            spec.handler,
            bound=concurrency or (lambda: spec.config.concurrency),
            label=spec.label,
            consumer=spec.name,
            counters=counters if counters is not None else Counters(),
            timeout=spec.config.timeout,
        )
        return in_thread(threads, spec.arguments)
    if processes is None:
        raise ConfigurationError(
            f"{spec.label} runs in a process (run_in='process'): it needs an app's process pool"
        )
    return in_process(
        spec.handler,
        spec.arguments,
        processes,
        keep_result=spec.config.batch,
        timeout=spec.config.timeout,
        label=spec.label,
    )


def in_thread(threads: HandlerThreads, arguments: Arguments | None) -> Call:
    """An awaitable call of a sync handler in one of its `threads`."""

    async def call(item: Any) -> object:
        args = (item,) if arguments is None else arguments(item)
        return await threads.run(*args)

    return call


def in_process(
    handler: Callable[..., object],
    arguments: Arguments | None,
    pool: ProcessPool,
    *,
    keep_result: bool,
    timeout: float | None,
    label: str,
) -> Call:
    """An awaitable call of `handler` in one of the pool's processes.

    `keep_result`: send the return value back (a batch handler's failed messages); a
    one-message handler's is ignored, so it need not be picklable. `timeout` is timed by
    the pool, from the moment a child has the job.
    """
    check_picklable(handler, label)

    async def call(item: Any) -> object:
        args = (item,) if arguments is None else arguments(item)
        return await pool.run(
            handler, args, keep_result=keep_result, time_limit=timeout, label=label
        )

    return call


def check_picklable(handler: Callable[..., object], label: str) -> None:
    """Refuse, at start, a handler that its module's name no longer leads to."""
    try:
        pickle.dumps(handler)
    except Exception as exc:  # noqa: BLE001 - pickle raises several kinds for this
        raise ConfigurationError(
            f"{label} cannot be sent to a process ({exc}): its module must reach it by "
            f"its name {handler.__module__}.{handler.__qualname__}. Is it wrapped by another "
            "decorator above @consumer? Put @consumer outermost"
        ) from None
