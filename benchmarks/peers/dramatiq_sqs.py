"""dramatiq with the dramatiq-sqs broker: an actor, a `Worker` with N threads, in-process.

One task is enqueued through dramatiq's own API; the responder then hands out its envelope
for every message of the run (``replay``).
"""

from __future__ import annotations

import logging
import time

from ._common import BODY, REGION, load, start_run


def main(argv: list[str] | None = None) -> None:
    dramatiq = load("dramatiq")
    broker_module = load("dramatiq_sqs")
    logging.getLogger("dramatiq").setLevel(logging.WARNING)
    run = start_run("dramatiq-sqs", "dramatiq-sqs", argv)
    broker = broker_module.SQSBroker(endpoint_url=run.options.endpoint, region_name=REGION)
    dramatiq.set_broker(broker)

    def handle(body: str) -> None:
        run.handle(body)

    actor = dramatiq.actor(handle, broker=broker, queue_name=run.options.queue, max_retries=0)
    actor.send(BODY)
    worker = dramatiq.Worker(broker, worker_threads=run.options.concurrency)
    worker.start()
    time.sleep(0.3)  # let the consumer thread open its first poll
    run.start(replay=True)
    run.wait()
    worker.stop()
    run.emit()


if __name__ == "__main__":
    main()
