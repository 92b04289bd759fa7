"""aws-sqs-consumer: its `Consumer` with batches of ten, one thread (it has no concurrency)."""

from __future__ import annotations

import threading
from typing import Any

from ._common import REGION, load, start_run


def main(argv: list[str] | None = None) -> None:
    boto3 = load("boto3")
    Consumer: Any = load("aws_sqs_consumer").Consumer
    run = start_run("aws-sqs-consumer", "aws-sqs-consumer", argv)
    sqs: Any = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName=run.options.queue)["QueueUrl"]

    class Bench(Consumer):  # type: ignore[misc]
        def handle_message_batch(self, messages: list[Any]) -> None:
            for message in messages:
                run.handle(message.Body)
            if run.over:
                self.stop()

    consumer = Bench(queue_url=url, sqs_client=sqs, batch_size=10, wait_time_seconds=20)
    thread = threading.Thread(target=consumer.start, daemon=True)
    run.start()
    thread.start()
    run.wait()
    consumer.stop()
    thread.join(timeout=25)
    run.emit()


if __name__ == "__main__":
    main()
