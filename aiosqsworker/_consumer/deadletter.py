"""Dead-lettering with forensics: why a message failed travels with it to the DLQ.

SQS's own redrive moves a message that keeps failing, but drops everything about why. When a
message fails on its last allowed receive (the RedrivePolicy's maxReceiveCount), or a handler
raises `Reject`, the framework sends it to the dead-letter queue itself, with one extra
message attribute, ``aiosqsworker.failure``: a JSON record of the exception type and text, a
traceback digest and its innermost frame, the attempts, the consumer, the source queue and
timestamps. Only after SQS confirmed the send is the original deleted; if the send fails,
the message takes the ordinary retry path and SQS's redrive remains the safety net.

The record and the attributes are built by pure functions (`failure_record`,
`dead_letter_attributes`); where a queue's dead letters go is `queue.RedrivePolicy`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .._errors import SQSError
from .._message import Message, from_epoch_millis
from .._sqs.base import SQSClient
from .._text import plural, public_name
from .receivecount import has_receive_count

__all__ = [
    "FAILURE_ATTRIBUTE",
    "DeadLetterQueue",
    "dead_letter_attributes",
    "failure_record",
]

logger = logging.getLogger("aiosqsworker.deadletter")

FAILURE_ATTRIBUTE = "aiosqsworker.failure"
#: SQS allows ten message attributes; the failure record takes one of them.
MAX_MESSAGE_ATTRIBUTES = 10
MAX_ERROR_TEXT = 1000


def _iso(milliseconds: str | None) -> str | None:
    moment = from_epoch_millis(milliseconds)
    return moment.isoformat() if moment else None


def _error_text(error: BaseException) -> str:
    """``str(error)``, or a stand-in when the exception's own ``__str__`` fails."""
    try:
        return str(error)[:MAX_ERROR_TEXT]
    except Exception:  # noqa: BLE001 - a handler's broken exception must not stop the worker
        return "<exception str() failed>"


def failure_record(
    message: Message,
    error: BaseException,
    *,
    consumer: str,
    reason: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """What the DLQ reader needs to know about why `message` ended there."""
    frames = traceback.extract_tb(error.__traceback__)
    shape = "|".join(f"{frame.filename}:{frame.name}" for frame in frames)
    kind = type(error)
    innermost = frames[-1] if frames else None
    return {
        "reason": reason,
        "exception": public_name(kind),
        "error": _error_text(error),
        "traceback_digest": hashlib.sha256(f"{kind.__qualname__}|{shape}".encode()).hexdigest()[
            :16
        ],
        "where": (
            f"{innermost.filename}:{innermost.lineno} in {innermost.name}" if innermost else None
        ),
        "attempts": message.receive_count if has_receive_count(message) else None,
        "consumer": consumer,
        "source_queue": message.queue,
        "message_id": message.message_id,
        "sent_at": _iso(message.attributes.get("SentTimestamp")),
        "first_received_at": _iso(message.attributes.get("ApproximateFirstReceiveTimestamp")),
        "failed_at": (now or datetime.now(tz=UTC)).isoformat(),
    }


def dead_letter_attributes(
    message: Message, record: Mapping[str, Any]
) -> dict[str, Mapping[str, Any]]:
    """The message's own attributes (as many as fit) plus the failure record."""
    kept: dict[str, Mapping[str, Any]] = {}
    for name, value in message.message_attributes.items():
        if len(kept) == MAX_MESSAGE_ATTRIBUTES - 1:
            break
        if name != FAILURE_ATTRIBUTE:
            kept[name] = {k: v for k, v in value.items() if k != "StringListValues" and v}
    kept[FAILURE_ATTRIBUTE] = {"DataType": "String", "StringValue": json.dumps(record)}
    return kept


@dataclass(frozen=True, slots=True)
class DeadLetterQueue:
    """Where a consumer's dead letters go, and after how many receives."""

    url: str
    max_receive_count: int | None  # None: only `Reject` sends here

    def is_last_attempt(self, message: Message) -> bool:
        """Whether SQS's redrive would move `message` at its next receive.

        Without a receive count from the server only a maxReceiveCount of 1 tells: the
        redrive policy is left to move the others.
        """
        if self.max_receive_count is None:
            return False
        if not has_receive_count(message):
            return self.max_receive_count == 1
        return message.receive_count >= self.max_receive_count

    async def send(
        self,
        client: SQSClient,
        message: Message,
        error: BaseException,
        *,
        consumer: str,
        reason: str,
    ) -> bool:
        """Send a copy with its failure record; True once SQS has it."""
        record = failure_record(message, error, consumer=consumer, reason=reason)
        entry: dict[str, Any] = {
            "Id": "0",
            "MessageBody": message.body,
            "MessageAttributes": dead_letter_attributes(message, record),
        }
        if self.url.endswith(".fifo"):
            entry["MessageGroupId"] = message.group_id or "dead-letters"
            entry["MessageDeduplicationId"] = message.message_id
        try:
            result = await client.send_message_batch(self.url, [entry])
            if "0" not in result.sent:
                failure = result.failed[0] if result.failed else None
                raise SQSError(
                    f"SendMessageBatch refused it ({failure.code}: {failure.message})"
                    if failure
                    else "SendMessageBatch did not confirm it",
                    operation="SendMessageBatch",
                )
        except SQSError as exc:
            logger.error(
                "[%s] could not move message %s to the dead-letter queue (%s): it will be "
                "retried, and SQS's redrive policy remains the safety net",
                consumer,
                message.message_id,
                exc,
            )
            return False
        attempts = record["attempts"]
        logger.warning(
            "[%s] moved message %s to the dead-letter queue after %s (%s: %s)",
            consumer,
            message.message_id,
            "an unknown number of attempts" if attempts is None else plural(attempts, "attempt"),
            record["exception"],
            record["error"][:200],
        )
        return True
