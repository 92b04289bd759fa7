"""taskiq with the taskiq-aio-sqs broker: a task, taskiq's `Receiver`, in-process (asyncio).

The broker asks for ten messages per poll (its default is one) and the receiver runs at most
N tasks at once. One task is kicked through taskiq's own API; the responder then hands out
its envelope for every message of the run (``replay``).
"""

from __future__ import annotations

import asyncio
import contextlib

from ..handlers import ASYNC_HANDLERS
from ._common import BODY, REGION, Run, load, start_run


async def consume(run: Run) -> None:
    broker_module = load("taskiq_aio_sqs")
    receiver_module = load("taskiq.receiver")
    handler = ASYNC_HANDLERS[run.options.handler]
    broker = broker_module.SQSBroker(
        run.options.queue,
        endpoint_url=run.options.endpoint,
        region_name=REGION,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        wait_time_seconds=20,
        max_number_of_messages=10,
    )

    async def handle(body: str) -> None:
        run.tally.begin()
        await handler(body)
        run.tally.done()

    task = broker.task(task_name="bench")(handle)
    broker.is_worker_process = True
    await broker.startup()
    await task.kiq(BODY)
    receiver = receiver_module.Receiver(
        broker, max_async_tasks=run.options.concurrency, run_startup=False
    )
    stop = asyncio.Event()
    listening = asyncio.create_task(receiver.listen(stop))
    await asyncio.sleep(0.3)  # let the receiver open its first poll
    run.start(replay=True)
    await asyncio.to_thread(run.wait)  # the tally is thread-safe, not loop-aware
    stop.set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(listening, 25)
    await broker.shutdown()


def main(argv: list[str] | None = None) -> None:
    run = start_run("taskiq-aio-sqs", "taskiq-aio-sqs", argv)
    asyncio.run(consume(run))
    run.emit()


if __name__ == "__main__":
    main()
