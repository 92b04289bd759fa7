"""The one owner of a message in flight, from its receipt until SQS has settled it.

A received message holds two things: room in the consumer's `Capacity` and a `Lease`. Every
way a message can leave (deleted after success or dead-lettering, made visible again for a
retry or a release, or lost with its lease) goes through `InFlight.settle`, and its room
comes back in exactly one place, `_settled`, once the acker's call for it has ended (or at
once when there is nothing to send). The counters of what happened are kept here too, so
that they say what SQS confirmed rather than what was intended.

The receiver admits messages (`admit`), the handler slots settle them, the acker sends and
reports back (`handing_over`, `delivered`, `given_up`); none of them releases room, finishes
a lease or counts an outcome by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .._message import Message
from .buffer import Capacity
from .leases import Lease, LeaseKeeper
from .outcomes import Outcome
from .stats import Counters

__all__ = ["InFlight", "Settling"]

logger = logging.getLogger("aiosqsworker.acker")


@dataclass(eq=False, slots=True)
class Settling:
    """A message on its way out: the call the acker makes for it.

    ACK and DEAD_LETTER are deletes; RETRY (after `timeout` seconds) and RELEASE (at once)
    are visibility changes. `unconfirmed` is set once a call carrying it failed in a way
    that leaves its outcome unknown (the request may have reached SQS).
    """

    lease: Lease
    outcome: Outcome
    timeout: int = 0
    unconfirmed: bool = False

    @property
    def is_delete(self) -> bool:
        return self.outcome is Outcome.ACK or self.outcome is Outcome.DEAD_LETTER

    @property
    def urgent(self) -> bool:
        """A release is for another worker to take at once: no linger."""
        return self.outcome is Outcome.RELEASE


class Sender(Protocol):
    """What `InFlight` needs of the acker: somewhere to queue a settling message."""

    def send(self, settling: Settling) -> None: ...


class InFlight:
    """Messages of one consumer between receipt and settlement."""

    def __init__(
        self,
        capacity: Capacity,
        leases: LeaseKeeper,
        counters: Counters,
        *,
        consumer: str,
        on_acked: Callable[[list[Message]], None] | None = None,
        on_lost: Callable[[Message], None] | None = None,
    ) -> None:
        self._capacity = capacity
        self._leases = leases
        self._counters = counters
        self._consumer = consumer
        self._sender: Sender | None = None
        #: Told of the messages whose handler succeeded, once SQS confirmed their delete
        #: (a dead letter's original is not one: its copy lives on).
        self._on_acked = on_acked
        #: Told of a message whose lease was found lost when its delete or visibility
        #: change was sent (an idempotency record of it is removed).
        self._on_lost = on_lost

    def connect(self, sender: Sender) -> None:
        """Where settling messages go (the acker, which reports back here)."""
        self._sender = sender

    def admit(
        self, message: Message, received_at: float, visibility_timeout: int | None = None
    ) -> Lease:
        """A message received (in room already reserved): its lease starts now, for the
        `visibility_timeout` its poll asked for (by default the consumer's)."""
        return self.admit_all((message,), received_at, visibility_timeout)[0]

    def admit_all(
        self, messages: Sequence[Message], received_at: float, visibility_timeout: int | None = None
    ) -> list[Lease]:
        """`admit` for every message of one poll, their leases started together."""
        self._counters.received += len(messages)
        return self._leases.lease_all(messages, received_at, visibility_timeout)

    def settle(self, lease: Lease, outcome: Outcome, delay: int = 0) -> None:
        """The one way out: queue the message's delete or visibility change, or, for a
        lost lease, finish it here (nothing is sent for a message that is not ours)."""
        if outcome is not Outcome.ACK:  # (the usual way out, a delete, counts nothing here)
            counters = self._counters
            if outcome is Outcome.RETRY or outcome is Outcome.DEAD_LETTER:
                counters.failed += 1
            if outcome is Outcome.DEAD_LETTER:
                counters.dead_lettered += 1  # the copy is in the dead-letter queue already
            if outcome is Outcome.LOST:
                self._settled(lease)
                return
        assert self._sender is not None, "InFlight.connect() first"
        self._sender.send(Settling(lease, outcome, delay))

    async def handing_over(self, settlings: Sequence[Settling]) -> list[Lease]:
        """The acker is about to send these: stop extending, and let an extension in flight
        end first (a delete never races an extension of the same handle). Returns their
        leases, in order."""
        leases = [settling.lease for settling in settlings]
        self._leases.finish_all(leases)
        await self._leases.settled_all(leases)
        return leases

    def delivered(self, settlings: Sequence[Settling]) -> None:
        """SQS confirmed the call for these."""
        counters = self._counters
        acked: list[Message] = []
        for settling in settlings:
            if not settling.lease.finished:  # handed over first, as a rule: finished there
                self._leases.finish(settling.lease)
            outcome = settling.outcome
            if outcome is Outcome.ACK:
                counters.deleted += 1
                counters.succeeded += 1
                acked.append(settling.lease.message)
            elif outcome is Outcome.DEAD_LETTER:
                counters.deleted += 1
            elif outcome is Outcome.RETRY:
                counters.retried += 1
            else:
                counters.released += 1
        self._capacity.release(len(settlings))  # one wake-up for the batch
        if acked and self._on_acked is not None:
            self._on_acked(acked)

    def given_up(self, settling: Settling, why: str, *, receipt_invalid: bool) -> None:
        """The call for it failed for good: say what is known of the message's fate."""
        counters = self._counters
        message_id = settling.lease.message.message_id
        if settling.is_delete and settling.unconfirmed and receipt_invalid:
            # An earlier attempt's answer was lost; the handle being gone now most likely
            # means that attempt deleted it.
            counters.deletes_unconfirmed += 1
            logger.info(
                "[%s] delete of message %s: outcome unknown (an earlier attempt's answer was "
                "lost, and now %s); most likely it is deleted, a redelivery is possible",
                self._consumer,
                message_id,
                why,
            )
        elif settling.is_delete and settling.unconfirmed:
            counters.deletes_unconfirmed += 1
            logger.warning(
                "[%s] delete of message %s: outcome unknown (%s): it may be deleted, or SQS "
                "delivers it again once its visibility timeout runs out",
                self._consumer,
                message_id,
                why,
            )
        elif receipt_invalid:
            if self._on_lost is not None:
                self._on_lost(settling.lease.message)
            counters.leases_lost += 1
            logger.warning(
                "[%s] lost the lease of message %s before its %s was sent (%s): SQS delivers "
                "it again",
                self._consumer,
                message_id,
                "delete" if settling.is_delete else settling.outcome.value,
                why,
            )
        elif settling.is_delete:
            counters.delete_failures += 1
            logger.warning(
                "[%s] could not delete message %s (%s): SQS will deliver it again",
                self._consumer,
                message_id,
                why,
            )
        else:
            counters.visibility_failures += 1
            logger.warning(
                "[%s] could not set the visibility of message %s for a %s (%s): it becomes "
                "visible when its current timeout runs out",
                self._consumer,
                message_id,
                settling.outcome.value,
                why,
            )
        self._settled(settling.lease)

    def _settled(self, lease: Lease) -> None:
        """The end of a message's time in flight: its lease and its room, exactly once."""
        self._leases.finish(lease)
        self._capacity.release(1)
