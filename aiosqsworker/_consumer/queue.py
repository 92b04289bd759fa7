"""One consumer's pipeline: receiver → buffer → handler slots → acker, with the lease keeper.

`Pipeline.run` owns every task of the consumer in its task groups and carries out the
shutdown in order:

1. stop polling (open polls finish; what they bring is released),
2. release the buffered messages that never started (visibility 0),
3. let running handlers finish within the shutdown timeout, then cancel them (released),
4. abandon the polls still open, stop the lease keeper,
5. flush the acker: every delete and visibility change queued is sent (time-boxed, and
   shielded from the caller's cancellation so that a cancelled host still flushes).
"""

from __future__ import annotations

import logging

from .._config import ConsumerConfig
from .._errors import SQSError
from .._sqs.base import SQSClient
from .deadletter import DeadLetterQueue, parse_redrive_policy

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
        policy = parse_redrive_policy(attributes.get("RedrivePolicy"))
        max_receive_count = policy[1] if policy else None
        dead_letters: DeadLetterQueue | None = None
        if config.dead_letter_queue is not None:
            dlq_url = await client.resolve_queue_url(config.dead_letter_queue)
            dead_letters = DeadLetterQueue(dlq_url, max_receive_count)
        elif policy is not None:
            try:
                dead_letters = DeadLetterQueue(
                    await client.queue_url_from_arn(policy[0]), max_receive_count
                )
            except SQSError as exc:
                logger.warning(
                    "queue %s: cannot reach its dead-letter queue %s (%s): failures are left "
                    "to SQS's redrive, without failure records",
                    url,
                    policy[0],
                    exc,
                )
        return cls(url, attributes, dead_letters)
