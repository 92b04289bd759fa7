"""The SQS boundary's vocabulary: the `SQSClient` protocol and the results of batch calls
(`MAX_MESSAGE_BYTES` and `message_size` are re-exported from `limits` and `rules`).

Everything outside `_sqs/` depends on this protocol, never on aiobotocore or aiohttp; its
implementations are `lean.LeanSQSClient`, `botocore.AioBotocoreSQSClient` and
`fast.FastSQSClient` (`open` picks one), as httpx's transports sit behind one interface.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .._errors import (
    ReceiptHandleInvalidError,
    SQSError,
    TransientSQSError,
)
from .errors import Endpoint, classify_error_code
from .limits import MAX_MESSAGE_BYTES
from .rules import message_size
from .sigv4 import FrozenCredentials

__all__ = [
    "MAX_MESSAGE_BYTES",
    "BatchEntryFailure",
    "BatchResult",
    "QueueAdmin",
    "SQSClient",
    "SendBatchResult",
    "SignedClient",
    "message_size",
    "missing_client_members",
    "parse_queue_arn",
]


def parse_queue_arn(arn: str) -> tuple[str, str]:
    """(account, queue name) of an SQS queue ARN."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", parts[1], "sqs"]:
        raise SQSError(f"{arn!r} is not an SQS queue ARN", operation="GetQueueUrl")
    return parts[4], parts[5]


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
    """The SQS calls the framework makes; everything else depends on this, not on botocore.

    `App(client=...)` and `Producer(client=...)` take any object with these members, such as
    the in-memory `aiosqsworker.testing.MemorySQS`. Errors are the framework's own
    (`SQSError` and its subclasses), and a batch call reports each entry that failed in its
    result rather than raising.
    """

    @property
    def endpoint(self) -> Endpoint: ...

    @property
    def cancelled_polls_take_messages(self) -> bool:
        """Whether a long poll given up while open can still take messages, which then stay
        invisible for their visibility timeout: true over HTTP (SQS does not see the client
        go), so a graceful stop lets open polls finish instead."""
        ...

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


@runtime_checkable
class SignedClient(Protocol):
    """A client that signs its own requests (both of the framework's): what a call made
    outside the event loop, on a connection of its own, needs to be signed the same way."""

    @property
    def endpoint(self) -> Endpoint: ...

    async def signing_credentials(self) -> FrozenCredentials: ...


class QueueAdmin(SQSClient, Protocol):
    """The SQS calls that make and remove queues: the `queue` commands', never a worker's."""

    async def create_queue(self, name: str, attributes: Mapping[str, str]) -> str: ...

    async def purge_queue(self, queue_url: str) -> None: ...

    async def delete_queue(self, queue_url: str) -> None: ...


def missing_client_members(candidate: object) -> list[str]:
    """The members of `SQSClient` that `candidate` lacks, or has as plain (not async) methods."""
    missing: list[str] = []
    for name, member in vars(SQSClient).items():
        if name.startswith("_"):
            continue
        if not hasattr(candidate, name):
            missing.append(name)
        elif inspect.iscoroutinefunction(member) and not inspect.iscoroutinefunction(
            getattr(candidate, name)
        ):
            missing.append(f"{name} (must be async)")
    return missing
