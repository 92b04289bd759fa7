"""The handler call: what a slot awaits for one message (or one batch), built in one place.

`handler_call` assembles it for the pipeline's slots and for `testing.call_consumer`, so
that a unit test runs the very call the worker runs. From the outside in:

1. the time limit of a handler on the loop (`timeout=`; a thread or process handler is
   timed where it runs, see `ConsumerSpec.slot_timeout`),
2. the outbox (``outbox=True``), sent once the handler returned,
3. the S3 payload fetched for a message that points to one (with a payload store),
4. the app's middleware, then the consumer's (the first one outermost),
5. the body decoded and the handler called where it runs (`offload.invoker_for`).

What needs a message in flight stays in the slot, around this call: the idempotency claim
(outside the time limit: a store call has its own), the lease a lost one cancels, the
circuit breaker's hold, the dead-letter send. How the call ended is read the same way by
both: whatever the handler raised is its message's failure, except a cancellation of the
framework's own (`slots.cancelled_by_framework`), and a batch handler's returned or named
failures are per message (`outcomes.batch_failures`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._config import Middleware
from .._errors import ConfigurationError
from .._registry import ConsumerSpec
from .._sqs.payloads import PayloadStore
from .offload import invoker_for
from .outbox import Send, with_outbox
from .procpool import ProcessPool
from .resolve import resolving_payloads
from .stats import Counters
from .timeouts import time_limit_of

__all__ = ["Call", "chain_middleware", "handler_call"]

#: What a slot awaits: a message (or a batch's list) in, the handler's return value out.
Call = Callable[[Any], Awaitable[object]]


def chain_middleware(middleware: Sequence[Middleware], call: Call) -> Call:
    """`call` wrapped in `middleware`, the first one outermost."""
    for layer in reversed(middleware):
        call = _wrap(layer, call)
    return call


def _wrap(layer: Middleware, call_next: Call) -> Call:
    async def wrapped(item: Any) -> object:
        return await layer(item, call_next)

    return wrapped


def handler_call(
    spec: ConsumerSpec,
    *,
    middleware: Sequence[Middleware] = (),
    processes: ProcessPool | None = None,
    counters: Counters | None = None,
    concurrency: Callable[[], int] | None = None,
    payloads: PayloadStore | None = None,
    send: Send | None = None,
) -> Call:
    """The call of `spec`'s handler on a message (a list of them for a batch consumer).

    `middleware` is the app's, run outside the consumer's own. `processes` is the pool a
    ``run_in="process"`` handler runs in; `counters` and `concurrency()` are the consumer's,
    for a ``def`` handler's threads. `payloads` fetches what a message points to in S3;
    `send` sends an ``outbox=True`` handler's outbox.
    """
    config = spec.config
    invoker = invoker_for(spec, processes, counters, concurrency)
    call = chain_middleware([*middleware, *config.middleware], invoker)
    if payloads is not None:
        call = resolving_payloads(payloads, call, batch=config.batch)
    if config.outbox:
        if send is None:
            raise ConfigurationError(f"consumer {spec.name!r}: outbox=True needs a sender")
        call = with_outbox(call, send)
    time_limit = time_limit_of(spec)
    # Without a limit the handler runs inside no `with` at all: one would hold a bound
    # method for as long as it runs.
    return call if time_limit is None else time_limit.around(call)
