"""The queue tools' batch calls (`dlq redrive`'s deletes, the dlq commands' release at exit)
read their answers the one way (`_sqs/batches.py`): an entry the answer leaves out is not
taken as done.

In memory: `MemorySQS` plays SQS, with answers cut short on purpose; the tools' inner steps
are called directly.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from aiosqsworker._cli.tools._common import Progress
from aiosqsworker._cli.tools.dlq import _release
from aiosqsworker._cli.tools.redrive import _move, _Redrive
from aiosqsworker._producer import BatchingSender
from aiosqsworker._sqs.base import BatchResult
from aiosqsworker.testing import MemorySQS


class SilentAnswers(MemorySQS):
    """SQS whose delete and visibility answers mention no entry (cut short, still parsed):
    nothing is deleted or changed, and nothing is said of it."""

    async def delete_message_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str]]
    ) -> BatchResult:
        return BatchResult()

    async def change_visibility_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str, int]]
    ) -> BatchResult:
        return BatchResult()


async def test_a_redriven_message_whose_delete_the_answer_leaves_out_is_not_counted_moved() -> None:
    """The copy reached the source queue; the delete's answer does not mention the dead
    letter, which is still in the dead-letter queue. The redrive reports it as in both
    queues and keeps it among the messages seen, so its reappearance is not moved again.

    Naive change it catches: reading every delete not under ``Failed`` as done (the old
    reading): the message counts as moved, is forgotten, and is sent to the source queue a
    second time when its hold runs out during the same redrive.
    """
    sqs = SilentAnswers()
    source = sqs.create_queue("orders")
    dead_letters = sqs.create_queue("orders-dlq")
    await sqs.send_message_batch(dead_letters, [{"Id": "0", "MessageBody": "poison"}])
    received: list[Mapping[str, Any]] = []
    received += await sqs.receive_messages(
        dead_letters, max_messages=1, wait_time=0, visibility_timeout=120
    )
    message_id = received[0]["MessageId"]
    state = _Redrive(
        dead_letter_url=dead_letters,
        destination_url=source,
        text_filter=None,
        origin="orders",
        budget=None,
        dry_run=False,
        token="t",
        progress=Progress("moved", stream=io.StringIO()),
        payloads=None,  # type: ignore[arg-type]  # not read without --filter
        seen={message_id},
    )
    await _move(sqs, BatchingSender(sqs), state, received)
    assert [held.body for held in sqs.messages("orders")] == ["poison"]
    assert [held.body for held in sqs.messages("orders-dlq")] == ["poison"]
    assert state.moved == 0
    assert state.undeleted == [message_id]
    assert message_id in state.seen


async def test_a_release_the_answer_leaves_out_is_counted_as_not_released() -> None:
    """At exit, the dlq commands make what they hold visible again; an answer that mentions
    none of the handles released none of them, and says so (the warning names them).

    Naive change it catches: counting only the entries under ``Failed`` as not released:
    the warning that messages stay hidden for their visibility timeout is never shown.
    """
    sqs = SilentAnswers()
    dead_letters = sqs.create_queue("orders-dlq")
    assert await _release(sqs, dead_letters, ["handle-1", "handle-2"]) == 2
