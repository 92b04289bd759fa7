"""What a consumer knows of its queue, read once at start, and where its dead letters go.

`QueueInfo.fetch` reads the queue's attributes and resolves its dead-letter queue: the
consumer's own `dead_letter_queue=`, else the target of the queue's RedrivePolicy, and that
queue's MaximumMessageSize, which dead-letter copies must fit (the RedrivePolicy is read by
`_sqs/redrive.py`).
"""

from __future__ import annotations

import logging

from .._config import ConsumerConfig
from .._errors import SQSError
from .._sqs.base import MAX_MESSAGE_BYTES, SQSClient
from .._sqs.redrive import RedrivePolicy
from .._sqs.rules import queue_message_limit
from .deadletter import DeadLetterQueue

__all__ = ["QueueInfo"]

logger = logging.getLogger("aiosqsworker")


class QueueInfo:
    """What a pipeline needs to know of its queue, read once at start."""

    def __init__(
        self, url: str, attributes: dict[str, str], dead_letters: DeadLetterQueue | None
    ) -> None:
        self.url = url
        self.attributes = attributes
        self.dead_letters = dead_letters

    @property
    def visibility_timeout(self) -> int:
        return int(self.attributes.get("VisibilityTimeout", "30"))

    @property
    def fifo(self) -> bool:
        return self.attributes.get("FifoQueue") == "true" or self.url.endswith(".fifo")

    @classmethod
    async def fetch(cls, client: SQSClient, config: ConsumerConfig) -> QueueInfo:
        url = await client.resolve_queue_url(config.queue)
        attributes = await client.get_queue_attributes(url)
        policy = RedrivePolicy.of(attributes)
        max_receive_count = policy.max_receive_count if policy else None
        dead_letters: DeadLetterQueue | None = None
        if config.dead_letter_queue is not None:
            dlq_url = await client.resolve_queue_url(config.dead_letter_queue)
            dead_letters = DeadLetterQueue(
                dlq_url, max_receive_count, await _max_message_size(client, dlq_url)
            )
        elif policy is not None:
            try:
                dlq_url = await policy.dead_letter_url(client)
                dead_letters = DeadLetterQueue(
                    dlq_url, max_receive_count, await _max_message_size(client, dlq_url)
                )
            except SQSError as exc:
                logger.warning(
                    "queue %s: cannot reach its dead-letter queue %s (%s): failures are left "
                    "to SQS's redrive, without failure records",
                    url,
                    policy.dead_letter_arn,
                    exc,
                )
        return cls(url, attributes, dead_letters)


async def _max_message_size(client: SQSClient, queue_url: str) -> int:
    """A queue's MaximumMessageSize; SQS's own limit where it cannot be read."""
    try:
        limit = queue_message_limit(await client.get_queue_attributes(queue_url))
    except SQSError as exc:
        limit, why = None, str(exc)
    else:
        why = "its attributes hold no readable MaximumMessageSize"
    if limit is None:
        logger.warning(
            "cannot read the MaximumMessageSize of %s (%s): dead-letter copies are sized "
            "for %d bytes",
            queue_url,
            why,
            MAX_MESSAGE_BYTES,
        )
        return MAX_MESSAGE_BYTES
    return limit
