"""A tutorial-style boto3 worker: receive ten, handle each in turn, delete each.

What the getting-started guides show: one thread, ``receive_message(MaxNumberOfMessages=10,
WaitTimeSeconds=20)``, the handler, then ``delete_message`` per message. It has no
concurrency, whatever the run asks for.
"""

from __future__ import annotations

from typing import Any

from ._common import REGION, load, start_run


def main(argv: list[str] | None = None) -> None:
    boto3 = load("boto3")
    run = start_run("boto3-loop", "boto3", argv)
    sqs: Any = boto3.client("sqs", region_name=REGION)
    url = sqs.get_queue_url(QueueName=run.options.queue)["QueueUrl"]
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)  # warm-up
    run.start()
    while not run.over:
        response = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=20, AttributeNames=["All"]
        )
        for message in response.get("Messages", []):
            run.handle(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    run.emit()


if __name__ == "__main__":
    main()
