"""`SQSClient` over aiobotocore: every call, with botocore's retries and credential chain.

The fast path (`fast.py`) takes the hot calls over aiohttp and delegates the rest here.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from .._errors import (
    CredentialsError,
    TransientSQSError,
)
from .base import BatchResult, SendBatchResult, parse_queue_arn
from .credentials import CredentialSource
from .errors import Endpoint, map_sqs_errors
from .sigv4 import FrozenCredentials

__all__ = ["AioBotocoreSQSClient"]


def _reject_cut_short_receive(response_dict: Mapping[str, Any], **_: Any) -> None:
    """botocore hook: a ReceiveMessage answer whose body does not parse is an error.

    botocore's JSON parser turns a body it cannot read into an empty result, so a response
    cut short (the server handed messages out, we never saw them) would pass for an empty
    queue. The fast path raises the same error.
    """
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not body:
        return
    try:
        json.loads(body)
    except ValueError:
        raise TransientSQSError(
            f"ReceiveMessage: SQS answered 200 with a body that is not JSON ({len(body)} "
            "bytes, cut short?)",
            operation="ReceiveMessage",
        ) from None


class AioBotocoreSQSClient:
    """`SQSClient` (and `QueueAdmin`) over aiobotocore: the usual credential chain, region and
    endpoint rules."""

    #: SQS hands messages to a long poll whose client has gone away.
    cancelled_polls_take_messages = True

    def __init__(
        self, client: Any, endpoint: Endpoint, credentials: CredentialSource | None = None
    ) -> None:
        """`credentials`: the source of the credentials `client` signs with; when given, each
        call gets them (refreshed if due) from there first, so that a credentials outage is
        one shared, bounded error (see `credentials`) rather than one inside botocore."""
        self._client = client
        self._endpoint = endpoint
        self._credentials = credentials
        client.meta.events.register("before-parse.sqs.ReceiveMessage", _reject_cut_short_receive)

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    async def signing_credentials(self) -> FrozenCredentials:
        """The credentials this client signs with now (refreshed ones once refreshed)."""
        if self._credentials is None:
            raise CredentialsError(
                f"no AWS credentials known for SQS at {self._endpoint.url}: set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile with "
                "AWS_PROFILE, or run with an IAM role"
            )
        return await self._credentials.frozen()

    @contextlib.asynccontextmanager
    async def _errors(self, operation: str, queue: str | None) -> AsyncIterator[None]:
        if self._credentials is not None:
            await self._credentials.frozen(operation)
        with map_sqs_errors(operation, self._endpoint, queue):
            yield

    async def resolve_queue_url(self, queue: str) -> str:
        if queue.startswith(("https://", "http://")):
            return queue
        async with self._errors("GetQueueUrl", queue):
            response = await self._client.get_queue_url(QueueName=queue)
        return str(response["QueueUrl"])

    async def get_queue_attributes(self, queue_url: str) -> dict[str, str]:
        async with self._errors("GetQueueAttributes", queue_url):
            response = await self._client.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["All"]
            )
        return dict(response.get("Attributes", {}))

    async def receive_messages(
        self, queue_url: str, *, max_messages: int, wait_time: int, visibility_timeout: int
    ) -> list[dict[str, Any]]:
        async with self._errors("ReceiveMessage", queue_url):
            response = await self._client.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_time,
                VisibilityTimeout=visibility_timeout,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        return list(response.get("Messages", ()))

    async def delete_message_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str]]
    ) -> BatchResult:
        async with self._errors("DeleteMessageBatch", queue_url):
            response = await self._client.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": id_, "ReceiptHandle": handle} for id_, handle in entries],
            )
        return BatchResult.from_response(response)

    async def change_visibility_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str, int]]
    ) -> BatchResult:
        async with self._errors("ChangeMessageVisibilityBatch", queue_url):
            response = await self._client.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": id_, "ReceiptHandle": handle, "VisibilityTimeout": timeout}
                    for id_, handle, timeout in entries
                ],
            )
        return BatchResult.from_response(response)

    async def queue_url_from_arn(self, arn: str) -> str:
        account, name = parse_queue_arn(arn)
        async with self._errors("GetQueueUrl", name):
            response = await self._client.get_queue_url(
                QueueName=name, QueueOwnerAWSAccountId=account
            )
        return str(response["QueueUrl"])

    async def list_dead_letter_source_queues(self, queue_url: str) -> list[str]:
        """URLs of the queues whose RedrivePolicy names `queue_url` as dead-letter queue."""
        urls: list[str] = []
        request: dict[str, Any] = {"QueueUrl": queue_url, "MaxResults": 1000}
        while True:
            async with self._errors("ListDeadLetterSourceQueues", queue_url):
                response = await self._client.list_dead_letter_source_queues(**request)
            urls.extend(str(url) for url in response.get("queueUrls", ()))
            token = response.get("NextToken")
            if not token:
                return urls
            request["NextToken"] = token

    async def send_message_batch(
        self, queue_url: str, entries: Sequence[Mapping[str, Any]]
    ) -> SendBatchResult:
        async with self._errors("SendMessageBatch", queue_url):
            response = await self._client.send_message_batch(
                QueueUrl=queue_url, Entries=[dict(entry) for entry in entries]
            )
        return SendBatchResult.from_response(response)

    async def create_queue(self, name: str, attributes: Mapping[str, str]) -> str:
        async with self._errors("CreateQueue", name):
            response = await self._client.create_queue(QueueName=name, Attributes=dict(attributes))
        return str(response["QueueUrl"])

    async def purge_queue(self, queue_url: str) -> None:
        async with self._errors("PurgeQueue", queue_url):
            await self._client.purge_queue(QueueUrl=queue_url)

    async def delete_queue(self, queue_url: str) -> None:
        async with self._errors("DeleteQueue", queue_url):
            await self._client.delete_queue(QueueUrl=queue_url)
