"""sqs-workers: a `RawQueue` with a raw processor, processed by `process_queue`.

sqs-workers handles a queue in one thread (one process per queue), receiving ten at a time
and deleting in batches: it has no concurrency setting.
"""

from __future__ import annotations

from typing import Any

from ._common import load, start_run


def main(argv: list[str] | None = None) -> None:
    boto3 = load("boto3")
    sqs_workers = load("sqs_workers")
    run = start_run("sqs-workers", "sqs-workers", argv)
    env = sqs_workers.SQSEnv(session=boto3.session.Session())
    queue = env.queue(run.options.queue, sqs_workers.RawQueue)

    @queue.raw_processor()  # type: ignore[untyped-decorator]
    def process(message: Any) -> None:
        run.handle(message.body)

    class UntilDone:
        def update_state(self, batch_processing_result: Any) -> None:
            pass

        def need_shutdown(self) -> bool:
            return run.over

    queue.get_queue()  # resolve the queue URL before the window opens
    run.start()
    queue.process_queue(shutdown_policy=UntilDone(), wait_second=20)
    run.emit()


if __name__ == "__main__":
    main()
