"""Whether the server counts receives: without `ApproximateReceiveCount`, no last attempt.

SQS returns every message's ApproximateReceiveCount; some local servers never do. Then every
receive looks like the first: the framework cannot tell a message's last attempt, so it never
dead-letters a failing message with a failure record, and the retry back-off does not grow.
The first message received tells which kind of server this is: `ReceiveCountCheck` says so
once, and what keeps failing is left to the queue's redrive policy (SQS's own, which moves a
message without a record). `Reject` still dead-letters with a record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .._message import Message

__all__ = ["RECEIVE_COUNT", "ReceiveCountCheck", "has_receive_count"]

logger = logging.getLogger("aiosqsworker.receiver")

RECEIVE_COUNT = "ApproximateReceiveCount"


def has_receive_count(message: Message) -> bool:
    """Whether the server said how often `message` was received (else it reads as 1)."""
    return RECEIVE_COUNT in message.attributes


class ReceiveCountCheck:
    """Looks at the first message a consumer receives; warns once if it has no receive count."""

    def __init__(self, consumer: str, queue_url: str) -> None:
        self._consumer = consumer
        self._queue_url = queue_url
        self.counted: bool | None = None  # None until a message was received

    def observe(self, raw_messages: Sequence[Mapping[str, Any]]) -> None:
        if self.counted is not None or not raw_messages:
            return
        self.counted = RECEIVE_COUNT in (raw_messages[0].get("Attributes") or {})
        if not self.counted:
            logger.warning(
                "[%s] the server returns no %s for %s: every receive looks like the first, so "
                "no message is known to be on its last attempt. Failing messages are left to "
                "the queue's redrive policy, which moves them without a failure record (Reject "
                "still dead-letters with one), and the retry back-off stays at "
                "retry_base_delay",
                self._consumer,
                RECEIVE_COUNT,
                self._queue_url,
            )
