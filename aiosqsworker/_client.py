"""The only module that talks to SQS.

The rest of the framework depends on the small `SQSClient` protocol below, never on
aiobotocore; botocore's and aiohttp's exceptions are mapped to the framework's own tree here,
at the boundary (`map_sqs_errors`), by a pure classification (`classify_error_code`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from ._config import AppConfig
from ._errors import (
    AccessDeniedError,
    ConfigurationError,
    CredentialsError,
    QueueNotFoundError,
    ReceiptHandleInvalidError,
    SQSError,
    TransientSQSError,
)

__all__ = [
    "AioBotocoreSQSClient",
    "BatchEntryFailure",
    "BatchResult",
    "SQSClient",
    "SendBatchResult",
    "classify_error_code",
    "map_sqs_errors",
    "open_sqs_client",
]

_QUEUE_MISSING = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_CREDENTIALS_REFUSED = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "InvalidSecurity",
    "AuthFailure",
}
# Expired temporary credentials are refreshed by botocore's chain: worth another try.
_CREDENTIALS_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "KMS.AccessDeniedException"}
_RECEIPT_INVALID = {
    "ReceiptHandleIsInvalid",
    "InvalidReceiptHandle",
    "AWS.SimpleQueueService.MessageNotInflight",
    "MessageNotInflight",
}
# Both spellings SQS uses: the JSON protocol's and the query protocol's.
_TRANSIENT = {
    "ThrottlingException",
    "Throttling",
    "RequestThrottled",
    "RequestThrottledException",
    "AWS.SimpleQueueService.RequestThrottled",
    "KMS.ThrottlingException",
    "OverLimit",
    "ServiceUnavailable",
    "AWS.SimpleQueueService.ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
    "SlowDown",
    "KmsThrottled",
    "KMS.KMSInternalException",
}


def classify_error_code(code: str | None, status: int | None = None) -> type[SQSError]:
    """Which error of the framework's tree an AWS error code (or HTTP status) stands for."""
    if code in _QUEUE_MISSING:
        return QueueNotFoundError
    if code in _CREDENTIALS_REFUSED:
        return CredentialsError
    if code in _ACCESS_DENIED:
        return AccessDeniedError
    if code in _RECEIPT_INVALID:
        return ReceiptHandleInvalidError
    if code in _TRANSIENT or code in _CREDENTIALS_EXPIRED:
        return TransientSQSError
    if status is not None and (status >= 500 or status == 429):
        return TransientSQSError
    return SQSError


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where requests go, for error messages."""

    region: str
    url: str


def sqs_error(
    code: str | None,
    status: int | None,
    detail: str,
    *,
    operation: str,
    endpoint: Endpoint,
    queue: str | None,
) -> SQSError:
    """The framework's error for an error response of SQS, worded for a person."""
    where = f"region {endpoint.region}, endpoint {endpoint.url}"
    kind = classify_error_code(code, status)
    if kind is QueueNotFoundError:
        message = (
            f"queue {queue!r} does not exist in {where}. Check the queue's name and the "
            "region (AWS_REGION) and endpoint (AWS_ENDPOINT_URL_SQS) in use"
        )
    elif kind is CredentialsError:
        message = (
            f"SQS refused the AWS credentials in use ({code}: {detail}) at {where}. "
            "Check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        )
    elif kind is AccessDeniedError:
        message = (
            f"{operation} on queue {queue!r} is not allowed for these credentials "
            f"({code}: {detail}). Grant the IAM permission sqs:{operation}"
        )
    else:
        message = f"{operation} failed ({code}: {detail}) at {where}"
    return kind(message, code=code, operation=operation)


@contextlib.contextmanager
def map_sqs_errors(operation: str, endpoint: Endpoint, queue: str | None = None) -> Iterator[None]:
    """Turn botocore's and aiohttp's exceptions into the framework's tree."""
    where = f"region {endpoint.region}, endpoint {endpoint.url}"
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise sqs_error(
            error.get("Code"),
            exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
            error.get("Message") or str(exc),
            operation=operation,
            endpoint=endpoint,
            queue=queue,
        ) from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise CredentialsError(
            f"no usable AWS credentials found for {where} ({exc}). Set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, choose a profile with AWS_PROFILE, or run with an IAM role",
            operation=operation,
        ) from exc
    except (
        BotoConnectionError,
        HTTPClientError,
        aiohttp.ClientError,
        TimeoutError,
        ConnectionError,
    ) as exc:
        raise TransientSQSError(
            f"{operation} could not reach SQS at {where}: {exc}", operation=operation
        ) from exc
    except BotoCoreError as exc:
        raise SQSError(f"{operation} failed at {where}: {exc}", operation=operation) from exc


@dataclass(frozen=True, slots=True)
class BatchEntryFailure:
    """One entry a batch call reported under ``Failed``."""

    id: str
    code: str
    message: str
    sender_fault: bool

    @property
    def retryable(self) -> bool:
        """Whether sending the entry again may succeed."""
        return not self.sender_fault or classify_error_code(self.code) is TransientSQSError

    @property
    def receipt_invalid(self) -> bool:
        """Whether the entry failed because the receipt handle is no longer ours."""
        if classify_error_code(self.code) is ReceiptHandleInvalidError:
            return True
        # Real SQS answers a stale handle with InvalidParameterValue and says so in words:
        # "Value ... for parameter ReceiptHandle is invalid. Reason: The receipt handle has
        # expired." or "... Reason: Message does not exist or is not available for visibility
        # timeout change." (no "receipt handle" with a space in the second one).
        words = self.message.lower()
        return self.code == "InvalidParameterValue" and (
            "receipt handle" in words or "parameter receipthandle is invalid" in words
        )


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a batch call did: ids that succeeded and entries that failed."""

    successful: Sequence[str] = ()
    failed: Sequence[BatchEntryFailure] = field(default_factory=tuple)

    @classmethod
    def from_response(cls, response: Mapping[str, Any]) -> BatchResult:
        return cls(
            successful=tuple(entry["Id"] for entry in response.get("Successful", ())),
            failed=tuple(
                BatchEntryFailure(
                    id=entry["Id"],
                    code=entry.get("Code", ""),
                    message=entry.get("Message", ""),
                    sender_fault=bool(entry.get("SenderFault", False)),
                )
                for entry in response.get("Failed", ())
            ),
        )


@dataclass(frozen=True, slots=True)
class SendBatchResult:
    """What a SendMessageBatch did: per entry id, the MessageId and body MD5, or the failure."""

    sent: Mapping[str, tuple[str, str | None]]  # id -> (MessageId, MD5OfMessageBody)
    failed: Sequence[BatchEntryFailure] = ()

    @classmethod
    def from_response(cls, response: Mapping[str, Any]) -> SendBatchResult:
        return cls(
            sent={
                entry["Id"]: (entry["MessageId"], entry.get("MD5OfMessageBody"))
                for entry in response.get("Successful", ())
            },
            failed=BatchResult.from_response(response).failed,
        )


class SQSClient(Protocol):
    """The SQS calls the framework makes; everything else depends on this, not on botocore."""

    @property
    def endpoint(self) -> Endpoint: ...

    async def resolve_queue_url(self, queue: str) -> str: ...

    async def get_queue_attributes(self, queue_url: str) -> dict[str, str]: ...

    async def receive_messages(
        self, queue_url: str, *, max_messages: int, wait_time: int, visibility_timeout: int
    ) -> list[dict[str, Any]]: ...

    async def delete_message_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str]]
    ) -> BatchResult: ...

    async def change_visibility_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str, int]]
    ) -> BatchResult: ...

    async def queue_url_from_arn(self, arn: str) -> str: ...

    async def list_dead_letter_source_queues(self, queue_url: str) -> list[str]: ...

    async def send_message_batch(
        self, queue_url: str, entries: Sequence[Mapping[str, Any]]
    ) -> SendBatchResult: ...


def _resolve_region(session: AioSession, config: AppConfig) -> str:
    region = config.region or os.environ.get("AWS_REGION") or session.get_config_variable("region")
    if not region:
        raise ConfigurationError(
            "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION), add a region to "
            "your AWS profile, or pass region=... to App / --region to the CLI"
        )
    return str(region)


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
    """`SQSClient` over aiobotocore: the usual credential chain, region and endpoint rules."""

    def __init__(self, client: Any, endpoint: Endpoint) -> None:
        self._client = client
        self._endpoint = endpoint
        client.meta.events.register("before-parse.sqs.ReceiveMessage", _reject_cut_short_receive)

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    def _errors(self, operation: str, queue: str | None) -> contextlib.AbstractContextManager[None]:
        return map_sqs_errors(operation, self._endpoint, queue)

    async def resolve_queue_url(self, queue: str) -> str:
        if queue.startswith(("https://", "http://")):
            return queue
        with self._errors("GetQueueUrl", queue):
            response = await self._client.get_queue_url(QueueName=queue)
        return str(response["QueueUrl"])

    async def get_queue_attributes(self, queue_url: str) -> dict[str, str]:
        with self._errors("GetQueueAttributes", queue_url):
            response = await self._client.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["All"]
            )
        return dict(response.get("Attributes", {}))

    async def receive_messages(
        self, queue_url: str, *, max_messages: int, wait_time: int, visibility_timeout: int
    ) -> list[dict[str, Any]]:
        with self._errors("ReceiveMessage", queue_url):
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
        with self._errors("DeleteMessageBatch", queue_url):
            response = await self._client.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": id_, "ReceiptHandle": handle} for id_, handle in entries],
            )
        return BatchResult.from_response(response)

    async def change_visibility_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str, int]]
    ) -> BatchResult:
        with self._errors("ChangeMessageVisibilityBatch", queue_url):
            response = await self._client.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": id_, "ReceiptHandle": handle, "VisibilityTimeout": timeout}
                    for id_, handle, timeout in entries
                ],
            )
        return BatchResult.from_response(response)

    async def queue_url_from_arn(self, arn: str) -> str:
        parts = arn.split(":")
        if len(parts) != 6 or parts[:3] != ["arn", parts[1], "sqs"]:
            raise SQSError(f"{arn!r} is not an SQS queue ARN", operation="GetQueueUrl")
        account, name = parts[4], parts[5]
        with self._errors("GetQueueUrl", name):
            response = await self._client.get_queue_url(
                QueueName=name, QueueOwnerAWSAccountId=account
            )
        return str(response["QueueUrl"])

    async def list_dead_letter_source_queues(self, queue_url: str) -> list[str]:
        """URLs of the queues whose RedrivePolicy names `queue_url` as dead-letter queue."""
        urls: list[str] = []
        request: dict[str, Any] = {"QueueUrl": queue_url, "MaxResults": 1000}
        while True:
            with self._errors("ListDeadLetterSourceQueues", queue_url):
                response = await self._client.list_dead_letter_source_queues(**request)
            urls.extend(str(url) for url in response.get("queueUrls", ()))
            token = response.get("NextToken")
            if not token:
                return urls
            request["NextToken"] = token

    async def send_message_batch(
        self, queue_url: str, entries: Sequence[Mapping[str, Any]]
    ) -> SendBatchResult:
        with self._errors("SendMessageBatch", queue_url):
            response = await self._client.send_message_batch(
                QueueUrl=queue_url, Entries=[dict(entry) for entry in entries]
            )
        return SendBatchResult.from_response(response)


async def open_sqs_client(
    stack: AsyncExitStack,
    config: AppConfig,
    *,
    max_connections: int,
    longest_wait: int,
) -> SQSClient:
    """Create the client (closed by `stack`), failing early on missing region or credentials."""
    try:
        session = get_session()
        if config.profile:
            session.set_config_variable("profile", config.profile)
        region = _resolve_region(session, config)
        credentials = await session.get_credentials()
    except ProfileNotFound as exc:
        raise ConfigurationError(f"{exc}: check AWS_PROFILE or profile=") from exc
    except (PartialCredentialsError, CredentialRetrievalError) as exc:
        # botocore's own text says what is missing; its traceback would only hide it.
        raise CredentialsError(
            f"the AWS credentials in use are incomplete or could not be loaded ({exc}). Set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile with AWS_PROFILE, "
            "or run with an IAM role"
        ) from None
    client_config = AioConfig(
        # The read timeout must outlast the long poll, or every idle poll would fail.
        read_timeout=longest_wait + 15,
        connect_timeout=10,
        max_pool_connections=max_connections,
        retries={"mode": "standard", "total_max_attempts": 3},
        user_agent_extra="aiosqsworker",
    )
    client = await stack.enter_async_context(
        session.create_client(
            "sqs", region_name=region, endpoint_url=config.endpoint_url, config=client_config
        )
    )
    endpoint = Endpoint(region=region, url=client.meta.endpoint_url)
    if credentials is None:
        raise CredentialsError(
            f"no AWS credentials found for SQS at region {region}, endpoint {endpoint.url}. "
            "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile with "
            "AWS_PROFILE, or run with an IAM role"
        )
    botocore_path = AioBotocoreSQSClient(client, endpoint)
    if config.client == "botocore":
        return botocore_path
    from ._fastpath import FastSQSClient  # the fast path imports this module

    http = await stack.enter_async_context(
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=longest_wait + 15),
            skip_auto_headers=("User-Agent",),
        )
    )
    return FastSQSClient(botocore_path, client, http)
