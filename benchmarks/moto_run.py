"""End to end against moto's SQS server: real queue semantics, a small refilled backlog.

moto scans the whole queue on every call, so the backlog is kept in the hundreds: a refill
thread in the parent tops the queue up with SendMessageBatch whenever it falls below two
thirds of `backlog`, until the run's messages have all been sent. Each run gets a fresh queue.
The contender's window opens once its consumer is set up (the backlog is already there).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from typing import Any

from aiosqsworker.testing import LocalSQSServer

from .harness import Contender, Outcome, run_contender

__all__ = ["Refill", "run_moto"]

REGION = "us-east-1"


def _client(endpoint: str) -> Any:
    boto3: Any = importlib.import_module("boto3")  # a dependency of moto; untyped
    return boto3.client(
        "sqs",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


class Refill(threading.Thread):
    """Keeps about `backlog` messages visible until `total` have been sent."""

    def __init__(self, endpoint: str, queue_url: str, total: int, backlog: int) -> None:
        super().__init__(name="moto-refill", daemon=True)
        self._sqs = _client(endpoint)
        self._url = queue_url
        self._total = total
        self._backlog = backlog
        self.sent = 0
        self.stopping = threading.Event()

    def fill(self) -> None:
        visible = int(
            self._sqs.get_queue_attributes(
                QueueUrl=self._url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
        )
        if visible >= self._backlog * 2 // 3:
            return
        wanted = min(self._backlog - visible, self._total - self.sent)
        while wanted > 0:
            batch = min(10, wanted)
            entries = [
                {"Id": str(i), "MessageBody": f'{{"n": {self.sent + i}, "pad": "{"x" * 120}"}}'}
                for i in range(batch)
            ]
            self._sqs.send_message_batch(QueueUrl=self._url, Entries=entries)
            self.sent += batch
            wanted -= batch

    def run(self) -> None:
        while self.sent < self._total and not self.stopping.is_set():
            self.fill()
            self.stopping.wait(0.05)  # a bounded refill loop, stopped by the harness


def run_moto(
    contenders: Sequence[Contender],
    *,
    messages: int,
    backlog: int,
    repetitions: int,
    concurrency: int,
    loop: str,
    progress: Any,
) -> dict[str, list[Outcome]]:
    """Each contender `repetitions` times against a fresh moto queue; noop handler."""
    results: dict[str, list[Outcome]] = {c.name: [] for c in contenders}
    with LocalSQSServer() as server:
        sqs = _client(server.endpoint_url)
        for rep in range(repetitions):
            for contender in contenders:
                server.reset()
                url = sqs.create_queue(QueueName="bench", Attributes={"VisibilityTimeout": "60"})[
                    "QueueUrl"
                ]
                refill = Refill(server.endpoint_url, url, messages, backlog)
                refill.fill()
                refill.start()
                try:
                    outcome = run_contender(
                        contender,
                        endpoint=server.endpoint_url,
                        handler="noop",
                        concurrency=concurrency,
                        messages=messages,
                        deadline=max(60.0, messages / 20),
                        loop=loop,
                    )
                finally:
                    refill.stopping.set()
                    refill.join(timeout=30)
                results[contender.name].append(outcome)
                progress("moto", contender, rep, outcome)
    return results
