"""Fair queues: a standard queue's MessageGroupId is its tenant, and `max_per_tenant` keeps one
noisy tenant from taking every handler.

The scenarios run a real worker against the test server over HTTP (and, where marked, the
in-memory SQS) and record the order in which handlers finish.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from aiosqsworker import App, ConfigurationError, Message, Producer
from aiosqsworker._cli.main import main as cli_main
from aiosqsworker._run.metrics import metric_families

from .kit import Queue, SQSKit, eventually

NOISY = "noisy"
QUIET = [f"quiet-{n}" for n in range(5)]


async def send_tenants(sqs: SQSKit, queue: Queue, messages: list[tuple[str, str]]) -> list[str]:
    """Send (tenant, body) pairs to a standard queue, ten a call, each with its group id."""
    ids: list[str] = []
    for start in range(0, len(messages), 10):
        entries = [
            {"Id": str(i), "MessageBody": body, "MessageGroupId": tenant}
            for i, (tenant, body) in enumerate(messages[start : start + 10])
        ]
        result = await sqs.sqs.send_message_batch(queue.url, entries)
        assert not result.failed, result.failed
        ids.extend(result.sent[entry["Id"]][0] for entry in entries)
    return ids


def burst_with_quiet_tenants() -> list[tuple[str, str]]:
    """500 messages of the noisy tenant; the five quiet tenants' 5 each are sent during its
    burst, among its first 150 messages (every sixth message from the fifth on)."""
    noisy = [(NOISY, f"noisy-{n}") for n in range(500)]
    quiet = [(tenant, f"{tenant}-{n}") for n in range(5) for tenant in QUIET]
    messages: list[tuple[str, str]] = []
    for position in range(len(noisy) + len(quiet)):
        use_quiet = quiet and position >= 5 and position % 6 == 5
        messages.append(quiet.pop(0) if use_quiet else noisy.pop(0))
    assert not quiet
    assert not noisy
    return messages


@pytest.mark.also_in_memory
async def test_quiet_tenants_finish_before_the_noisy_tenants_hundredth_message(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """A noisy tenant's 500 messages and five quiet tenants' 5 each, sent during its burst:
    with max_per_tenant=2, every quiet message finishes before the noisy tenant's 100th, no
    tenant ever runs more than 2 at once, and nothing is lost.

    Catches a buffer that starts messages in arrival order (in send order the last quiet
    message finishes after about 125 noisy ones), a cap without round-robin, and a capped
    tenant whose waiting messages fill the buffer so that polling stops and the quiet
    messages are never received: the noisy tenant's surplus must be handed back.

    moto and the in-memory SQS deliver a standard queue in send order; SQS's fair queues
    also reorder deliveries, so a quiet message sent after the whole burst would not wait
    for it there. Here the worker's rule alone is at work.
    """
    queue = await sqs.create_queue()
    ids = await send_tenants(sqs, queue, burst_with_quiet_tenants())
    app = make_app()
    finished: list[str] = []
    handled: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    running: Counter[str] = Counter()

    # A prefetch of about a second's worth: a tenant keeps up to half of it waiting.
    @app.consumer(queue.name, concurrency=12, prefetch=20, max_per_tenant=2, wait_time=1)
    async def handle(message: Message) -> None:
        tenant = message.tenant
        assert tenant is not None
        assert tenant == message.group_id
        running[tenant] += 1
        peak[tenant] = max(peak[tenant], running[tenant])
        try:  # the noisy tenant's work is the heavier (and leaves time to receive 150)
            await anyio.sleep(0.5 if tenant == NOISY else 0.05)
        finally:
            running[tenant] -= 1
        handled[message.message_id] += 1
        finished.append(tenant)

    async with app:
        await eventually(lambda: finished.count(NOISY) >= 100, within=60, what="noisy 100")
        stats = app.statistics()["handle"]
    noisy_hundredth = [i for i, tenant in enumerate(finished) if tenant == NOISY][99]
    quiet_finished = [i for i, tenant in enumerate(finished) if tenant != NOISY]
    assert len(quiet_finished) == 25
    assert max(quiet_finished) < noisy_hundredth, (max(quiet_finished), noisy_hundredth)
    assert set(handled.values()) == {1}, "each message handled once"
    assert max(peak.values()) <= 2, peak
    by_tenant = {row.tenant: row for row in stats.tenants}
    assert stats.tenants[0].tenant == NOISY, "the busiest tenant first"
    assert by_tenant[NOISY].running <= 2
    assert all(by_tenant[tenant].handled == 5 for tenant in QUIET)
    await sqs.assert_holds(queue, len(ids) - len(handled))  # nothing lost: the rest is queued


async def test_per_tenant_metrics_name_the_busiest_tenants_and_sum_the_rest(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """Fifteen tenants: /metrics names the ten busiest and sums the other five as "other".

    Catches per-tenant metrics labelled by every tenant seen (a label set that grows with
    the number of tenants, without bound).
    """
    queue = await sqs.create_queue()
    messages = [(f"t{n:02}", f"{n}-{k}") for n in range(15) for k in range(15 - n)]
    await send_tenants(sqs, queue, messages)
    app = make_app()

    @app.consumer(queue.name, max_per_tenant=3, wait_time=1)
    async def handle(message: Message) -> None:
        pass

    async with app:
        await eventually(lambda: app.statistics()["handle"].succeeded == len(messages))
        families = {name: samples for name, _, _, samples in metric_families(app.statistics())}
    handled = {
        labels["tenant"]: value for labels, value in families["aiosqsworker_tenant_handled_total"]
    }
    assert len(handled) == 11
    assert handled["t00"] == 15
    assert handled["other"] == sum(range(1, 6)), "t10 to t14 summed"
    assert sum(handled.values()) == len(messages)


@pytest.mark.also_in_memory
async def test_a_group_id_on_a_standard_queue_is_a_tenant_not_a_fifo_group(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """Messages of one tenant on a standard queue run in parallel, and a failure holds back
    none of the tenant's other messages: FIFO is the queue's type, not the group id's.

    Catches code that treats a message with a MessageGroupId as a FIFO one (one at a time,
    successors released after a failure).
    """
    queue = await sqs.create_queue()
    ids = await send_tenants(sqs, queue, [("acme", str(n)) for n in range(6)])
    app = make_app()
    running = 0
    peak = 0
    attempts: Counter[str] = Counter()

    @app.consumer(queue.name, concurrency=6, wait_time=1, retry_base_delay=0.5, retry_max_delay=1)
    async def handle(message: Message) -> None:
        nonlocal running, peak
        attempts[message.message_id] += 1
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.3)
        running -= 1
        if message.body == "0" and attempts[message.message_id] == 1:
            raise RuntimeError("first try of the first message fails")

    async with app:
        await eventually(lambda: app.statistics()["handle"].succeeded == 6, within=20)
    assert peak > 1, "one tenant's messages ran in parallel"
    assert sum(attempts.values()) == 7, attempts
    assert set(attempts) == set(ids)


async def test_the_producer_sends_a_tenant_to_a_standard_queue(
    sqs: SQSKit, sqs_server: Any
) -> None:
    """`Producer.send(..., group_id=...)` to a standard queue: received with its tenant.

    Catches a producer that refuses a group id on a standard queue (FIFO-only), or drops it.
    """
    queue = await sqs.create_queue()
    async with Producer(region="us-east-1", endpoint_url=sqs_server.endpoint_url) as producer:
        await producer.send(queue.url, {"n": 1}, group_id="acme")
    received = await sqs.receive(queue, wait_time=1)
    assert received[0]["Attributes"]["MessageGroupId"] == "acme"


def test_max_per_tenant_is_checked_and_a_typo_gets_did_you_mean() -> None:
    app = App()
    with pytest.raises(ConfigurationError, match="max_per_tenant=0 is invalid"):
        app.consumer("q", max_per_tenant=0)
    with pytest.raises(ConfigurationError, match="did you mean 'max_per_tenant'"):
        app.consumer("q", max_per_tennant=2)  # type: ignore[call-arg]


async def test_max_per_tenant_on_a_fifo_queue_says_why_not(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_fifo_queue()
    app = make_app()

    @app.consumer(queue.name, max_per_tenant=2)
    async def handle(message: Message) -> None:
        pass

    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="max_per_tenant is for standard"):
        async with app:
            pass
    assert time.monotonic() - started < 10


async def test_the_send_command_sends_a_tenant_to_a_standard_queue(
    sqs: SQSKit, sqs_server: Any
) -> None:
    """``send QUEUE BODY --group-id acme`` on a standard queue: received with its tenant.

    Catches a send command that takes --group-id only for FIFO queues.
    """
    queue = await sqs.create_queue()
    argv = ["send", queue.name, "hello", "--group-id", "acme"]
    argv += ["--endpoint-url", sqs_server.endpoint_url, "--region", "us-east-1"]
    assert await anyio.to_thread.run_sync(cli_main, argv) == 0
    received = await sqs.receive(queue, wait_time=1)
    assert received[0]["Body"] == "hello"
    assert received[0]["Attributes"]["MessageGroupId"] == "acme"
