"""Dead-lettering with forensics: why a message failed travels with it to the DLQ.

SQS's own redrive moves a message that keeps failing, but drops everything about why. When a
message fails on its last allowed receive (the RedrivePolicy's maxReceiveCount), or a handler
raises `Reject`, the framework sends it to the dead-letter queue itself, with one extra
message attribute, ``aiosqsworker.failure``: a JSON record of the exception type and text, a
traceback digest and its innermost frame, the attempts, the consumer, the source queue and
timestamps. Only after SQS confirmed the send is the original deleted. A copy refused for
now, or left out of SQS's answer (whether it arrived is unknown: `_sqs.batches`), is sent
again, a few times; if the send still fails, the message takes the ordinary retry path and
SQS's redrive remains the safety net.

The copy keeps what the message carries beyond its body: an S3 payload's pointer (the
object stays where it is, for a redrive), the message group of a FIFO or fair queue, the
X-Ray trace header. A copy that would not fit the dead-letter queue's MaximumMessageSize
keeps its record by moving its body to S3 (with a payload bucket), else by a record cut to
fit, which says so; only a message that fills the limit by itself goes without one (the
record is logged).

The record, the attributes and the entry are built by pure functions (`failure_record`,
`dead_letter_attributes`, `dead_letter_entry`, `trimmed_record`); where a queue's dead
letters go is `queue.RedrivePolicy`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio

from .._backoff import backoff
from .._errors import MessageDecodeError, PayloadError, SQSError
from .._message import Message, from_epoch_millis
from .._sqs.base import MAX_MESSAGE_BYTES, SQSClient, message_size
from .._sqs.batches import read_answer
from .._sqs.limits import MAX_ATTRIBUTES
from .._sqs.payloads import (
    RESERVED_ATTRIBUTES,
    PayloadStore,
    has_pointer,
    pointer_attributes,
    pointer_body,
)
from .._sqs.redrive import FAILURE_ATTRIBUTE
from .._text import plural, public_name
from .procpool import RemoteTraceback
from .receivecount import has_receive_count
from .timeouts import StuckAt

__all__ = [
    "DeadLetterQueue",
    "dead_letter_attributes",
    "dead_letter_entry",
    "failure_record",
    "trimmed_record",
]

logger = logging.getLogger("aiosqsworker.deadletter")

MAX_ERROR_TEXT = 1000
#: Calls a copy gets while SQS's answers refuse it for now or leave it out.
SEND_ATTEMPTS = 3


def _iso(milliseconds: str | None) -> str | None:
    moment = from_epoch_millis(milliseconds)
    return moment.isoformat() if moment else None


def _error_text(error: BaseException) -> str:
    """``str(error)``, or a stand-in when the exception's own ``__str__`` fails."""
    try:
        return str(error)[:MAX_ERROR_TEXT]
    except Exception:  # noqa: BLE001 - a handler's broken exception must not stop the worker
        return "<exception str() failed>"


def _frames(error: BaseException) -> list[traceback.FrameSummary]:
    """Where `error` was raised: in the handler's process, for one that ran in a child;
    where the handler was, for a timeout (its innermost frame in the user's code last)."""
    cause = error.__cause__
    if isinstance(cause, RemoteTraceback):
        return cause.frames
    if isinstance(cause, StuckAt):
        site = cause.site
        return cause.frames[: cause.frames.index(site) + 1] if site is not None else []
    return traceback.extract_tb(error.__traceback__)


def failure_record(
    message: Message,
    error: BaseException,
    *,
    consumer: str,
    reason: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """What the DLQ reader needs to know about why `message` ended there."""
    frames = _frames(error)
    shape = "|".join(f"{frame.filename}:{frame.name}" for frame in frames)
    kind = type(error)
    innermost = frames[-1] if frames else None
    where = f"{innermost.filename}:{innermost.lineno} in {innermost.name}" if innermost else None
    if isinstance(error, MessageDecodeError) and error.handler_site:
        where = error.handler_site  # not the framework's decoding code: the handler's
    return {
        "reason": reason,
        "exception": public_name(kind),
        "error": _error_text(error),
        "traceback_digest": hashlib.sha256(f"{kind.__qualname__}|{shape}".encode()).hexdigest()[
            :16
        ],
        "where": where,
        "attempts": message.receive_count if has_receive_count(message) else None,
        "consumer": consumer,
        "source_queue": message.queue,
        "message_id": message.message_id,
        "sent_at": _iso(message.attributes.get("SentTimestamp")),
        "first_received_at": _iso(message.attributes.get("ApproximateFirstReceiveTimestamp")),
        "failed_at": (now or datetime.now(tz=UTC)).isoformat(),
    }


def dead_letter_attributes(
    message: Message, record: Mapping[str, Any] | None
) -> dict[str, Mapping[str, Any]]:
    """The message's own attributes (as many as fit, an S3 pointer's first) plus the record."""
    own = message.message_attributes
    names = [name for name in RESERVED_ATTRIBUTES if name in own]
    names += [name for name in own if name not in RESERVED_ATTRIBUTES]
    kept: dict[str, Mapping[str, Any]] = {}
    for name in names:
        if len(kept) == MAX_ATTRIBUTES - 1:  # the failure record takes the last one
            break
        if name != FAILURE_ATTRIBUTE:
            kept[name] = {k: v for k, v in own[name].items() if k != "StringListValues" and v}
    if record is not None:
        kept[FAILURE_ATTRIBUTE] = {"DataType": "String", "StringValue": json.dumps(record)}
    return kept


def dead_letter_entry(
    message: Message, record: Mapping[str, Any] | None, *, fifo: bool
) -> dict[str, Any]:
    """The SendMessageBatch entry of a dead-letter copy (``Id`` "0").

    A FIFO copy keeps its group (SQS requires one) and is deduplicated by the original
    MessageId; a fair queue's copy keeps its group too; the X-Ray header goes along.
    """
    entry: dict[str, Any] = {
        "Id": "0",
        "MessageBody": message.body,
        "MessageAttributes": dead_letter_attributes(message, record),
    }
    if fifo:
        entry["MessageGroupId"] = message.group_id or "dead-letters"
        entry["MessageDeduplicationId"] = message.message_id
    elif message.group_id:
        entry["MessageGroupId"] = message.group_id
    trace_header = message.attributes.get("AWSTraceHeader")
    if trace_header:
        entry["MessageSystemAttributes"] = {
            "AWSTraceHeader": {"DataType": "String", "StringValue": trace_header}
        }
    return entry


def entry_size(entry: Mapping[str, Any]) -> int:
    """What SQS counts of an entry (system attributes do not count)."""
    return message_size(entry["MessageBody"], entry["MessageAttributes"])


#: The fields a cut record keeps, beside as much of its reason and error text as fits.
_ESSENTIAL = ("exception", "attempts", "consumer", "message_id", "failed_at")


def _fit(text: str, budget: int) -> str:
    """The longest start of `text` whose JSON string takes at most `budget` bytes (quotes
    left out)."""
    fitted = text[: max(0, budget)]
    while fitted and len(json.dumps(fitted).encode()) - 2 > budget:
        fitted = fitted[: len(fitted) * 9 // 10]
    return fitted


def trimmed_record(record: Mapping[str, Any], room: int, *, limit: int) -> dict[str, Any] | None:
    """`record` cut to at most `room` bytes of JSON, saying so; None if even its essentials
    do not fit. The reason may take half of what is left, the error the rest."""
    cut: dict[str, Any] = {key: record.get(key) for key in _ESSENTIAL}
    cut["trimmed"] = f"cut to fit the dead-letter queue's MaximumMessageSize of {limit} bytes"
    cut["reason"] = cut["error"] = ""
    spare = room - len(json.dumps(cut).encode())
    if spare < 0:
        return None
    cut["reason"] = _fit(str(record.get("reason") or ""), spare // 2)
    spare -= len(json.dumps(cut["reason"]).encode()) - 2
    cut["error"] = _fit(str(record.get("error") or ""), spare)
    return cut


@dataclass(frozen=True, slots=True)
class DeadLetterQueue:
    """Where a consumer's dead letters go, and after how many receives."""

    url: str
    max_receive_count: int | None  # None: only `Reject` sends here
    max_message_size: int = MAX_MESSAGE_BYTES
    #: Where a copy too large for the queue puts its body (both None: nowhere).
    payloads: PayloadStore | None = None
    payload_bucket: str | None = None

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
        try:
            entry = await self._fitting_entry(message, record, consumer=consumer)
        except PayloadError as exc:
            logger.error(
                "[%s] could not move message %s to the dead-letter queue: its copy is too "
                "large for it and storing its body in S3 failed (%s): it will be retried",
                consumer,
                message.message_id,
                exc,
            )
            return False
        try:
            await self._send_copy(client, entry)
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

    async def _send_copy(self, client: SQSClient, entry: Mapping[str, Any]) -> None:
        """Send the copy until SQS confirms it. One refused for good raises at once; one
        refused for now, or left out of the answer (unknown: SQS may have it), is sent again,
        up to SEND_ATTEMPTS, then raises: the message is retried, never deleted on a copy
        SQS did not confirm."""
        for attempt in range(SEND_ATTEMPTS):
            answer = read_answer((entry,), await client.send_message_batch(self.url, [entry]))
            if answer.done:
                return
            _, failure = (*answer.give_up, *answer.retry)[0]
            if answer.give_up or attempt + 1 == SEND_ATTEMPTS:
                unknown = ": whether it reached the queue is unknown" if answer.unknown else ""
                raise SQSError(
                    f"SendMessageBatch did not confirm it after {plural(attempt + 1, 'attempt')} "
                    f"({failure.code}: {failure.message}{unknown})",
                    code=failure.code,
                    operation="SendMessageBatch",
                )
            await anyio.sleep(backoff(attempt, base=0.1, cap=1.0))

    async def _fitting_entry(
        self, message: Message, record: dict[str, Any], *, consumer: str
    ) -> dict[str, Any]:
        """The copy's entry, made to fit the dead-letter queue's MaximumMessageSize."""
        fifo = self.url.endswith(".fifo")
        entry = dead_letter_entry(message, record, fifo=fifo)
        limit = self.max_message_size
        if entry_size(entry) <= limit:
            return entry
        if (
            self.payloads is not None
            and self.payload_bucket is not None
            and not has_pointer(message.message_attributes)
        ):
            pointer = await self.payloads.store(self.payload_bucket, message.body)
            stored = dataclasses.replace(
                message,
                body=pointer_body(pointer),
                message_attributes={
                    **message.message_attributes,
                    **pointer_attributes(len(message.body.encode())),
                },
            )
            logger.info(
                "[%s] the dead-letter copy of message %s is over %d bytes: its body went to %s",
                consumer,
                message.message_id,
                limit,
                pointer,
            )
            return dead_letter_entry(stored, record, fifo=fifo)
        bare = dead_letter_entry(message, None, fifo=fifo)
        room = limit - entry_size(bare) - len(FAILURE_ATTRIBUTE) - len("String")
        cut = trimmed_record(record, room, limit=limit)
        if cut is not None:
            logger.warning(
                "[%s] the failure record of message %s was cut to fit the dead-letter "
                "queue's MaximumMessageSize of %d bytes",
                consumer,
                message.message_id,
                limit,
            )
            return dead_letter_entry(message, cut, fifo=fifo)
        logger.error(
            "[%s] message %s fills the dead-letter queue's MaximumMessageSize of %d bytes by "
            "itself: its copy goes without a failure record, which is %s. Give the app "
            "payload_bucket=... or raise the dead-letter queue's MaximumMessageSize",
            consumer,
            message.message_id,
            limit,
            json.dumps(record),
        )
        return bare
