"""Sends whose answer leaves an entry out (`_producer.py`, `_consumer/deadletter.py`): the
entry's outcome is unknown, so it is sent again, never reported sent and never dropped.

In memory: `MemorySQS` plays SQS, with answers cut short on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import pytest

from aiosqsworker import SQSError
from aiosqsworker._consumer.deadletter import DeadLetterQueue
from aiosqsworker._producer import MAX_ATTEMPTS, BatchingSender
from aiosqsworker._sqs.base import SendBatchResult
from aiosqsworker._sqs.batches import LEFT_OUT
from aiosqsworker.testing import MemorySQS

from .factories import message
from .test_deadletter import caught


class CutShortAnswers(MemorySQS):
    """SQS whose SendMessageBatch answers leave out the entries whose body is `body`, for the
    first `times` calls carrying one. `stored`: whether SQS took such an entry all the same
    (only the answer lost it) or not at all."""

    def __init__(self, body: str, *, times: int, stored: bool) -> None:
        super().__init__()
        self.body = body
        self.times = times
        self.stored = stored
        self.calls: list[list[str]] = []

    async def send_message_batch(
        self, queue_url: str, entries: Sequence[Mapping[str, Any]]
    ) -> SendBatchResult:
        self.calls.append([entry["MessageBody"] for entry in entries])
        lost = {entry["Id"] for entry in entries if entry["MessageBody"] == self.body}
        if not lost or self.times == 0:
            return await super().send_message_batch(queue_url, entries)
        self.times -= 1
        kept = [entry for entry in entries if self.stored or entry["Id"] not in lost]
        if not kept:
            return SendBatchResult(sent={})
        result = await super().send_message_batch(queue_url, kept)
        sent = {entry_id: sent for entry_id, sent in result.sent.items() if entry_id not in lost}
        return SendBatchResult(sent=sent, failed=result.failed)

    def bodies(self, queue: str) -> list[str]:
        return sorted(held.body for held in self.messages(queue))


async def test_a_send_the_answer_leaves_out_is_sent_again_and_gets_its_message_id() -> None:
    """Two sends share a batch; SQS's first answer does not mention b (and never stored
    it). b is sent again and its sender gets b's MessageId; the queue holds each once.

    Naive change it catches: a sender that reads a left-out entry as refused (the sender's
    old reading: b's sender got an error for a message a second call would have sent), or
    as sent (a MessageId it never had, and b lost).
    """
    sqs = CutShortAnswers("b", times=1, stored=False)
    url = sqs.create_queue("orders")
    sender = BatchingSender(sqs, linger=0.05)
    ids: dict[str, str] = {}

    async def send(body: str) -> None:
        ids[body] = await sender.send(url, body)

    async with anyio.create_task_group() as tg:
        for body in ("a", "b"):
            tg.start_soon(send, body)
    assert sqs.bodies("orders") == ["a", "b"]
    assert {body: held.message_id for held in sqs.messages("orders") for body in [held.body]} == ids
    assert sum("b" in call for call in sqs.calls) == 2


async def test_a_send_left_out_of_every_answer_raises_that_its_outcome_is_unknown() -> None:
    """SQS stores the message but every answer leaves it out: it is sent MAX_ATTEMPTS
    times, and its sender gets an error saying its outcome is unknown, not a MessageId.

    Naive change it catches: giving up at the first left-out answer (what a refusal gets),
    or returning from the send as if the message had gone (no MessageId to return).
    """
    sqs = CutShortAnswers("b", times=MAX_ATTEMPTS, stored=True)
    url = sqs.create_queue("orders")
    sender = BatchingSender(sqs)
    with pytest.raises(SQSError) as raised:
        await sender.send(url, "b")
    assert raised.value.code == LEFT_OUT
    assert "unknown" in str(raised.value)
    assert sqs.calls == [["b"]] * MAX_ATTEMPTS
    assert sqs.bodies("orders") == ["b"] * MAX_ATTEMPTS  # at least once: never dropped


def poisoned() -> BaseException:
    return caught(ValueError("cannot handle order 42"))


async def test_a_dead_letter_copy_the_answer_leaves_out_is_sent_again() -> None:
    """The dead-letter send's first answer does not mention the copy (SQS never stored it):
    the copy is sent again, and the send reports it moved once SQS confirms it.

    Naive change it catches: a dead-letter send that takes a left-out copy as a failure (its
    old reading): the message goes back for another handler run, and on to SQS's redrive
    without its failure record, when sending the copy again would have moved it.
    """
    poison = message("poison", message_id="m-42")
    sqs = CutShortAnswers("poison", times=1, stored=False)
    dead_letters = DeadLetterQueue(url=sqs.create_queue("orders-dlq"), max_receive_count=3)
    moved = await dead_letters.send(
        sqs, poison, poisoned(), consumer="orders", reason="the last receive failed"
    )
    assert moved
    assert sqs.bodies("orders-dlq") == ["poison"]
    assert len(sqs.calls) == 2


async def test_a_dead_letter_copy_never_confirmed_is_not_taken_as_moved() -> None:
    """Every answer leaves the copy out: after its attempts the send says it did not move
    the message (which is then retried, never deleted on an unconfirmed copy).

    Naive change it catches: a send that returns "moved" unless SQS named the copy under
    ``Failed``: the original would be deleted with no copy confirmed anywhere.
    """
    poison = message("poison", message_id="m-42")
    sqs = CutShortAnswers("poison", times=100, stored=False)
    dead_letters = DeadLetterQueue(url=sqs.create_queue("orders-dlq"), max_receive_count=3)
    moved = await dead_letters.send(
        sqs, poison, poisoned(), consumer="orders", reason="the last receive failed"
    )
    assert not moved
    assert sqs.bodies("orders-dlq") == []
    assert len(sqs.calls) > 1  # sent again before giving up
