"""The test server keeps SQS's delivery guarantees, so tests that count deliveries can trust it.

moto alone breaks two of them when requests arrive together (see `aiosqsworker.testing.motoserver`);
these scenarios fail against plain ``python -m moto.server``. The in-memory SQS keeps them too.
"""

from __future__ import annotations

from collections import Counter
from importlib.metadata import version
from typing import Any

import anyio
import pytest

from aiosqsworker.testing.motoserver import check_moto

from .kit import Queue, SQSKit


async def test_simultaneous_polls_never_share_a_message(sqs: SQSKit) -> None:
    """Eight pollers drain 150 messages at once, four times over: each message comes out once.

    Against plain moto about one receive in 250 hands out a message another poll also got.
    """
    for _ in range(4):
        queue = await sqs.create_queue(visibility_timeout=60)
        await sqs.send(queue, (f"m{n}" for n in range(150)))
        received: Counter[str] = Counter()

        async def poll(queue: Queue = queue, received: Counter[str] = received) -> None:
            while True:
                messages = await sqs.receive(queue, wait_time=1, visibility_timeout=60)
                if not messages:
                    return
                received.update(message["Body"] for message in messages)

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(poll)
        assert set(received) == {f"m{n}" for n in range(150)}
        assert [body for body, count in received.items() if count > 1] == []


@pytest.mark.also_in_memory
async def test_a_waiting_fifo_poll_keeps_each_group_in_order(sqs: SQSKit) -> None:
    """Z0 Z1 Y0 Z2 sent; Z0 and Y0 (1 s visibility) taken; a long poll waits; Z0 is deleted.

    What the long poll returns of group Z starts at Z1: Z2 never comes out while Z1 waits.
    Plain moto decides at the start of a long poll which groups are busy and hands out Y0
    and Z2.
    """
    queue = await sqs.create_fifo_queue(visibility_timeout=30)
    await sqs.send_grouped(queue, [("Z", "Z0"), ("Z", "Z1"), ("Y", "Y0"), ("Z", "Z2")])

    async def receive(wait: int, visibility: int = 30) -> list[dict[str, Any]]:
        return await sqs.receive(
            queue,
            max_messages=10 if wait else 1,
            wait_time=wait,
            visibility_timeout=visibility,
        )

    [z0] = await receive(0)
    [y0] = await receive(0, visibility=1)
    assert (z0["Body"], y0["Body"]) == ("Z0", "Y0")
    long_poll: list[dict[str, Any]] = []

    async def wait_for_messages() -> None:
        long_poll.extend(await receive(5))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_messages)
        await anyio.sleep(0.3)
        await sqs.delete(queue, z0["ReceiptHandle"])
    group_z = [message["Body"] for message in long_poll if message["Body"].startswith("Z")]
    assert group_z in (["Z1"], ["Z1", "Z2"]), [message["Body"] for message in long_poll]


def test_the_moto_patch_runs_only_on_the_moto_releases_it_was_written_for() -> None:
    """The patch replaces moto's private functions: an unknown release is refused, loudly.

    Naive code it catches: patching whatever moto is installed, so that an upgrade that
    renames a parameter or a lock breaks the server's guarantees without a word.
    """
    check_moto(version("moto"))  # the installed one, pinned in pyproject.toml
    for unknown in ("5.3.0", "6.0.1", "4.2.14", "dev"):
        with pytest.raises(RuntimeError, match=r"pip install 'moto\[server\]>=5\.2,<5\.3'"):
            check_moto(unknown)
