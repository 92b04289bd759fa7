"""What SQS's dead-letter queues are told by, in a queue's attributes and a message's.

`RedrivePolicy` is the one reading of a queue's ``RedrivePolicy`` attribute (where SQS moves
a message, after how many receives), shared by the consumer and the queue tools.
`FAILURE_ATTRIBUTE` is the message attribute in which a dead letter the framework sends
carries its failure record, which the ``dlq`` tools read and ``redrive`` drops.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from .base import SQSClient

__all__ = ["FAILURE_ATTRIBUTE", "RedrivePolicy", "parse_redrive_policy"]

logger = logging.getLogger("aiosqsworker")

#: The message attribute of a dead letter's failure record (JSON).
FAILURE_ATTRIBUTE = "aiosqsworker.failure"


def parse_redrive_policy(policy: str | None) -> tuple[str, int] | None:
    """(dead-letter queue ARN, maxReceiveCount) from a RedrivePolicy attribute, if any."""
    if not policy:
        return None
    try:
        parsed = json.loads(policy)
        return str(parsed["deadLetterTargetArn"]), int(parsed["maxReceiveCount"])
    except (ValueError, KeyError, TypeError):
        logger.warning("ignoring a RedrivePolicy that does not parse: %r", policy)
        return None


@dataclass(frozen=True, slots=True)
class RedrivePolicy:
    """A queue's RedrivePolicy: where SQS moves a message, after how many receives."""

    dead_letter_arn: str
    max_receive_count: int

    @classmethod
    def of(cls, attributes: Mapping[str, str]) -> RedrivePolicy | None:
        """The policy in a queue's attributes, or None without one (or an unreadable one)."""
        parsed = parse_redrive_policy(attributes.get("RedrivePolicy"))
        return cls(*parsed) if parsed else None

    def attribute(self) -> str:
        """The policy as the queue attribute ``RedrivePolicy`` takes it."""
        return json.dumps(
            {
                "deadLetterTargetArn": self.dead_letter_arn,
                "maxReceiveCount": str(self.max_receive_count),
            }
        )

    async def dead_letter_url(self, client: SQSClient) -> str:
        """The dead-letter queue's URL; `QueueNotFoundError` when it is gone."""
        return await client.queue_url_from_arn(self.dead_letter_arn)
