"""celery with its SQS transport (kombu, pycurl): a task, a worker with the thread pool.

The worker runs in-process with N threads; at the end a SIGTERM asks it for its warm
shutdown. One task is sent through celery's own API; the responder then hands out its
envelope for every message of the run (``replay``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from typing import Any
from urllib.parse import urlsplit

from ._common import BODY, REGION, load, start_run


def main(argv: list[str] | None = None) -> None:
    celery = load("celery")
    signals = load("celery.signals")
    run = start_run("celery-sqs", "celery", argv)
    endpoint = urlsplit(run.options.endpoint)
    queue = run.options.queue
    queue_url = f"{run.options.endpoint}/123456789012/{queue}"
    app = celery.Celery("bench", broker=f"sqs://bench:bench@{endpoint.hostname}:{endpoint.port}")
    app.conf.update(
        broker_transport_options={
            "region": REGION,
            "is_secure": False,
            "wait_time_seconds": 20,
            "predefined_queues": {
                queue: {"url": queue_url, "access_key_id": "bench", "secret_access_key": "bench"}
            },
        },
        task_default_queue=queue,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )

    @app.task(name="bench.handle")  # type: ignore[untyped-decorator]
    def handle(body: str) -> None:
        run.handle(body)

    handle.delay(BODY)

    def on_ready(**kwargs: Any) -> None:
        run.start(replay=True)
        threading.Thread(target=stop_when_done, daemon=True).start()

    def stop_when_done() -> None:
        run.wait()
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's warm shutdown

    signals.worker_ready.connect(on_ready, weak=False)
    logging.getLogger("celery").setLevel(logging.WARNING)
    worker = app.Worker(
        pool="threads",
        concurrency=run.options.concurrency,
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        quiet=True,
    )
    with contextlib.suppress(SystemExit):  # how the worker leaves after its warm shutdown
        worker.start()
    run.emit()


if __name__ == "__main__":
    main()
