"""The page `docs/fifo.md`, scenario by scenario: the messages of a group handled one at a
time and in order, groups in parallel, through failures and jobs longer than the lease.

Every scenario runs a real worker against the test server over HTTP. Those marked
``also_in_memory`` run on the in-memory SQS too (see `conftest.py`).
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable

import anyio
import pytest

from aiosqsworker import App, Message

from .kit import SQSKit, eventually, stats_of
from .test_semantics import FAST_RETRIES

# FIFO: groups in order, in parallel, through failures and jobs longer than the lease.


GROUPS = [f"group-{g}" for g in range(5)]
PER_GROUP = 40


@pytest.mark.slow
@pytest.mark.also_in_memory
async def test_fifo_groups_finish_in_order_in_parallel_through_failures_and_long_jobs(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """200 messages in 5 groups, ~5 % failing once, a few jobs longer than the visibility.

    Every group's messages succeed in send order, each exactly once; after a failure the
    group's next start is the failed message again (its successors did not run first);
    groups run at the same time; the queue is empty at the end.
    """
    queue = await sqs.create_fifo_queue(visibility_timeout=2)
    rng = random.Random(20240611)
    plan = [(group, n) for n in range(PER_GROUP) for group in GROUPS]  # interleaved groups
    keys = [f"{group}/{n}" for group, n in plan]
    failing = set(rng.sample(keys, len(keys) // 20))
    long_jobs = {key: rng.uniform(3.0, 4.0) for key in rng.sample(sorted(set(keys) - failing), 4)}
    short_job = {key: rng.uniform(0.0, 0.02) for key in keys}
    await sqs.send_grouped(queue, ((g, json.dumps({"g": g, "n": n})) for g, n in plan))

    raised: set[str] = set()
    attempts: Counter[str] = Counter()
    starts: dict[str, list[tuple[int, str]]] = defaultdict(list)  # (n, how it ended)
    succeeded: dict[str, list[int]] = defaultdict(list)
    intervals: list[tuple[str, float, float]] = []
    running: Counter[str] = Counter()
    same_group_overlaps: list[str] = []
    app = make_app()

    @app.consumer(queue.name, concurrency=10, wait_time=1, visibility_timeout=2, **FAST_RETRIES)
    async def handle(message: Message) -> None:
        body = message.json()
        group, n = body["g"], body["n"]
        key = f"{group}/{n}"
        assert message.group_id == group
        attempts[key] += 1
        running[group] += 1
        if running[group] > 1:
            same_group_overlaps.append(key)
        started = anyio.current_time()
        ending = "failed"
        try:
            if key in failing and key not in raised:
                raised.add(key)
                raise RuntimeError(f"injected failure of {key}")
            await anyio.sleep(long_jobs.get(key, short_job[key]))
            ending = "ok"
            succeeded[group].append(n)
        finally:
            running[group] -= 1
            starts[group].append((n, ending))
            intervals.append((group, started, anyio.current_time()))

    async with app:
        await eventually(
            lambda: stats_of(app, "handle").deleted == len(plan),
            within=60,
            what="every message deleted",
        )
        stats = stats_of(app, "handle")
    assert raised == failing
    for group in GROUPS:
        assert starts[group][0][0] == 0, group
        assert succeeded[group] == list(range(PER_GROUP)), (group, starts[group])
        # After a failure, the next message started in the group is the failed one again.
        for (n, ending), (following, _) in zip(starts[group], starts[group][1:], strict=False):
            assert following == (n if ending == "failed" else n + 1), (group, starts[group])
    assert same_group_overlaps == []
    assert attempts == Counter({key: 2 if key in failing else 1 for key in keys})
    # Groups overlapped: some two handlers of different groups ran at the same moment.
    assert any(
        group_a != group_b and start_a < end_b and start_b < end_a
        for group_a, start_a, end_a in intervals
        for group_b, start_b, end_b in intervals
    )
    # A long job held its message by extending the lease, instead of losing it.
    assert stats.leases_extended > 0
    assert stats.leases_lost == 0
    assert stats.succeeded == len(plan)
    assert stats.failed == len(failing)
    assert await sqs.counts(queue) == (0, 0)
