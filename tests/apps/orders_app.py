"""A user's module with an explicit App: ``python -m aiosqsworker tests.apps.orders_app:app``.

It registers nothing with `@consumer`, so ``python -m aiosqsworker tests.apps.orders_app``
(without ``:app``) has no consumers to run. Configured through ORDERS_QUEUE and
ORDERS_LEDGER (see `tests.apps._ledger`); each handled message is recorded as ``done``.
"""

from __future__ import annotations

import os

from aiosqsworker import App, Message

from ._ledger import record

app = App(shutdown_timeout=5)


@app.consumer(os.environ.get("ORDERS_QUEUE", "orders"), wait_time=1, name="orders-app")
async def handle(message: Message) -> None:
    record("done", message, message.body)
