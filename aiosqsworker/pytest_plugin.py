"""pytest fixtures for projects that use aiosqsworker (loaded automatically by pytest).

Install the ``testing`` extra (``pip install 'aiosqsworker[testing]'``: the local server,
pytest, pytest-asyncio). Tests that use these fixtures are ``async def``: mark them with
``@pytest.mark.asyncio``, or set ``asyncio_mode = "auto"`` under ``[tool.pytest.ini_options]``.

- ``local_sqs_server``: a moto SQS server on a free 127.0.0.1 port for the whole session.
- ``sqs_endpoint``: the server's URL, with this test's environment pointed at it
  (``AWS_ENDPOINT_URL_SQS``, ``AWS_REGION``, test credentials), so that an `App()` without
  arguments talks to it.
- ``sqs_queue``: a factory of fresh queues, ``sqs_queue(fifo=False, max_receive_count=None,
  visibility_timeout=30)``, returning a `TestQueue`: ``fifo`` makes a FIFO queue with
  content-based deduplication; ``max_receive_count`` adds a dead-letter queue and a
  RedrivePolicy to it; ``visibility_timeout`` is the queue's, in seconds.

```python
@pytest.mark.asyncio
async def test_orders(sqs_queue):
    queue = sqs_queue(max_receive_count=3)
    app = App()

    @app.consumer(queue.name)
    async def handle(message: Message) -> None: ...

    async with Producer() as producer:
        await producer.send(queue.name, {"id": 1})
    await run_until_empty(app)
```
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ._localsqs import LOCAL_CREDENTIALS, LocalSQSServer
from ._sqs.redrive import RedrivePolicy

__all__ = ["TestQueue", "local_sqs_server", "sqs_endpoint", "sqs_queue"]

REGION = "us-east-1"
_counter = itertools.count()


@dataclass(frozen=True)
class TestQueue:
    """A queue created for one test.

    Attributes:
        name: the queue's name, what `@app.consumer` and `Producer.send` take.
        url: its URL.
        dead_letter_name: its dead-letter queue's name (``NAME-dlq``), with
            ``max_receive_count``; else None.
        dead_letter_url: that queue's URL; else None.
    """

    __test__ = False  # not a test class, whatever pytest thinks of its name

    name: str
    url: str
    dead_letter_name: str | None = None
    dead_letter_url: str | None = None


@pytest.fixture(scope="session")
def local_sqs_server() -> Iterator[LocalSQSServer]:
    """A moto SQS server on 127.0.0.1 for the whole test session."""
    with LocalSQSServer() as server:
        yield server


@pytest.fixture
def sqs_endpoint(local_sqs_server: LocalSQSServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The local server's URL; this test's AWS environment points at it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", local_sqs_server.endpoint_url)
    monkeypatch.setenv("AWS_REGION", REGION)
    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return local_sqs_server.endpoint_url


@pytest.fixture
def sqs_queue(
    sqs_endpoint: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., TestQueue]]:
    """A factory of fresh queues on the local server."""
    import botocore.session

    client: Any = botocore.session.get_session().create_client(
        "sqs",
        region_name=REGION,
        endpoint_url=sqs_endpoint,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    prefix = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")

    def create(
        *, fifo: bool = False, max_receive_count: int | None = None, visibility_timeout: int = 30
    ) -> TestQueue:
        suffix = ".fifo" if fifo else ""
        name = f"{prefix}-{next(_counter)}"
        attributes = {"VisibilityTimeout": str(visibility_timeout)}
        if fifo:
            attributes |= {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        dead_letter_name = dead_letter_url = None
        if max_receive_count is not None:
            dead_letter_name = f"{name}-dlq{suffix}"
            dlq_attributes = {"FifoQueue": "true"} if fifo else {}
            dead_letter_url = client.create_queue(
                QueueName=dead_letter_name, Attributes=dlq_attributes
            )["QueueUrl"]
            arn = client.get_queue_attributes(
                QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"]
            attributes["RedrivePolicy"] = RedrivePolicy(arn, max_receive_count).attribute()
        url = client.create_queue(QueueName=f"{name}{suffix}", Attributes=attributes)["QueueUrl"]
        return TestQueue(f"{name}{suffix}", url, dead_letter_name, dead_letter_url)

    yield create
    client.close()
