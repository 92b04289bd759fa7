"""The soak test: 10,000 messages through faults and a kill -9, then a ledger of every one.

Not part of the default run (marker ``soak``); ``make soak`` runs it against ministack (moto
scans its whole queue on every call: far too slow for 10,000 messages) and prints the table.

Two worker processes (`tests/apps/ledger_worker.py`) consume one queue through a
`FaultProxy` that injects a little of everything, now and then: connection resets, stalls,
cut-short responses, 500s, throttling in both styles, latency. One percent of handler calls
fail at random (retried), a few jobs outlast the visibility timeout (their leases are
extended), a few messages always fail (dead-lettered after the redrive policy's receives),
and one worker is killed with SIGKILL mid-run and started again.

At the end every message is either completed or in the dead-letter queue; none is lost.
A message completed more than once must be explained: the killed worker completed it and
died before its delete, or its lease was lost, or its delete was refused.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from aiosqsworker.testing import FaultProxy

from .kit import SQSKit, eventually_async, open_kit
from .servers import MinistackServer
from .test_faults import read_ledger, start_ledger_worker, stop_process

MESSAGES = int(os.environ.get("SOAK_MESSAGES", "10000"))
LONG_JOBS = 10  # 25 s jobs on a 10 s visibility timeout
POISON = 10  # always fail: dead-lettered after MAX_RECEIVES receives
MAX_RECEIVES = 4
VISIBILITY = 10
FAIL_RATE = 0.01
SEED = int(os.environ.get("SOAK_SEED", str(int(time.time()))))

ACTIONS = ("ReceiveMessage", "DeleteMessageBatch", "ChangeMessageVisibilityBatch")


async def inject_faults(proxy: FaultProxy, rng: random.Random, stop: anyio.Event) -> None:
    """One small fault every second or so, chosen at random, until `stop`."""
    while not stop.is_set():
        action = rng.choice(ACTIONS)
        kind = rng.choice(["reset", "stall", "truncate", "status", "throttle", "latency"])
        if kind == "reset":
            proxy.inject(action, "reset")
        elif kind == "truncate":
            proxy.inject(action, "truncate")
        elif kind == "stall":
            proxy.inject(action, "stall", seconds=rng.uniform(1, 4))
        elif kind == "status":
            proxy.inject(action, "status", status=rng.choice([500, 503]), times=2)
        elif kind == "throttle":
            proxy.inject(action, "throttle", style=rng.choice(["json", "query"]), times=2)
        elif kind == "latency":
            proxy.inject(action, "latency", seconds=rng.uniform(0.2, 2), times=3)
        with anyio.move_on_after(rng.uniform(0.5, 1.5)):
            await stop.wait()
    proxy.clear()


def logged_ids(log: Path, pattern: str) -> set[str]:
    """Message ids named in the workers' JSON log lines that match `pattern`."""
    found: set[str] = set()
    regex = re.compile(pattern)
    for line in log.read_text().splitlines():
        if not line.startswith("{"):
            continue
        match = regex.search(json.loads(line)["message"])
        if match:
            found.add(match.group(1))
    return found


async def drain_dead_letters(kit: SQSKit, url: str) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    while True:
        response = await kit.client.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        batch = response.get("Messages", [])
        if not batch:
            return received
        received.extend(batch)
        await kit.client.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ],
        )


def table(rows: Sequence[tuple[str, object]]) -> str:
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'what':<{width}} | {'count':>8} |", f"|{'-' * (width + 2)}|{'-' * 10}|"]
    lines += [f"| {name:<{width}} | {value!s:>8} |" for name, value in rows]
    return "\n".join(lines)


@pytest.mark.soak
@pytest.mark.timeout(1500)
async def test_soak_ledger(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    ledger = tmp_path / "ledger"
    log = tmp_path / "workers.log"
    started = time.monotonic()
    with MinistackServer() as server:
        async with open_kit(server.endpoint_url, "soak") as kit:
            queue = await kit.create_queue(
                visibility_timeout=VISIBILITY, max_receive_count=MAX_RECEIVES
            )
            dlq = await kit.dlq_of(queue)
            specials = rng.sample(range(MESSAGES), LONG_JOBS + POISON)
            long_jobs, poison = set(specials[:LONG_JOBS]), set(specials[LONG_JOBS:])
            payloads: list[str] = []
            for n in range(MESSAGES):
                body: dict[str, Any] = {"n": n}
                if n in long_jobs:
                    body["sleep"] = 25
                if n in poison:
                    body["poison"] = True
                payloads.append(json.dumps(body))
            ids = await kit.send(queue, payloads)
            id_of = dict(enumerate(ids))
            sent_after = time.monotonic() - started

            settings = {
                "LEDGER_FAIL_RATE": str(FAIL_RATE),
                "LEDGER_CONCURRENCY": "40",
                "LEDGER_VISIBILITY": str(VISIBILITY),
            }
            async with FaultProxy(server.endpoint_url) as proxy, anyio.create_task_group() as tg:
                stop_faults = anyio.Event()
                tg.start_soon(inject_faults, proxy, rng, stop_faults)
                workers = [
                    await start_ledger_worker(proxy.url, queue.name, ledger, log, **settings)
                    for _ in range(2)
                ]
                try:

                    def done_ids() -> set[str]:
                        return {row[2] for row in read_ledger(ledger) if row[1] == "done"}

                    async def enough_done() -> bool:
                        return len(done_ids()) >= MESSAGES // 3

                    await eventually_async(enough_done, within=600, every=0.5)
                    victim = workers[0]
                    victim.kill()  # SIGKILL mid-run
                    await victim.wait()
                    killed_at = time.time()
                    killed_pid = victim.pid
                    await stop_process(victim)
                    workers[0] = await start_ledger_worker(
                        proxy.url, queue.name, ledger, log, **settings
                    )

                    async def all_settled() -> bool:
                        visible, in_flight = await kit.counts(queue)
                        return visible == 0 and in_flight == 0

                    await eventually_async(all_settled, within=900, every=1.0)
                finally:
                    stop_faults.set()
                    for worker in workers:
                        await stop_process(worker)
                faults = dict(proxy.faults_applied)
            dead = await drain_dead_letters(kit, dlq.url)
    elapsed = time.monotonic() - started

    rows = read_ledger(ledger)
    done = Counter(row[2] for row in rows if row[1] == "done")
    failed_calls = sum(row[1] == "fail" for row in rows)
    dead_ids = Counter(id_of[json.loads(m["Body"])["n"]] for m in dead)
    # What the killed worker completed in its last visibility timeout may not have been
    # deleted yet; anything it completed earlier was deleted, or its lease ran out anyway.
    killed_done = {
        row[2]
        for row in rows
        if row[1] == "done" and row[0] == killed_pid and row[5] >= killed_at - VISIBILITY - 1
    }
    lost_leases = logged_ids(log, r"lost the lease of message (\S+)")
    refused_deletes = logged_ids(log, r"could not delete message (\S+)")

    lost = set(ids) - set(done) - set(dead_ids)
    causes: Counter[str] = Counter()
    for message_id in set(done) | set(dead_ids):
        extra = done[message_id] + dead_ids[message_id] - 1  # ends beyond the first
        if extra <= 0:
            continue
        if message_id in killed_done:
            causes["after the kill -9 (done, not yet deleted)"] += extra
        elif message_id in lost_leases:
            causes["after a lost lease"] += extra
        elif message_id in refused_deletes:
            causes["after a lost lease (found by its delete)"] += extra
        else:
            causes["unexplained"] += extra

    report = [
        ("messages", MESSAGES),
        ("completed", len(done)),
        ("dead-lettered", len(dead_ids)),
        ("lost (must be 0)", len(lost)),
        ("duplicates", sum(causes.values())),
        *((f"  {cause}", count) for cause, count in sorted(causes.items())),
        ("handler calls failed (1 % + poison)", failed_calls),
        ("leases lost (logged)", len(lost_leases)),
        ("deletes refused (logged)", len(refused_deletes)),
        ("faults injected", sum(faults.values())),
        ("seconds (sending)", round(sent_after)),
        ("seconds (total)", round(elapsed)),
    ]
    print(f"\nsoak ledger (seed {SEED}, ministack, 2 workers, one killed -9 and restarted)")
    print(f"ledger {ledger}, worker logs {log}")
    print(table(report))
    print("faults:", ", ".join(f"{name} {count}" for name, count in sorted(faults.items())))
    assert not lost, sorted(lost)[:10]
    assert {id_of[n] for n in poison} <= set(dead_ids)
    assert causes["unexplained"] == 0
