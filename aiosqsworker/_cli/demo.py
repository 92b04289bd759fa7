"""`python -m aiosqsworker demo`: the framework at work against a local SQS server.

It starts moto's SQS server on 127.0.0.1, creates two queues (one with a dead-letter queue),
sends messages (a few slow jobs that outlive their visibility timeout, a few poison
messages that are not JSON) and consumes them with a progress line per second. It stops by
itself once every good message is done and every poison one is in the dead-letter queue.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from typing import Any

import anyio

from .._app import App
from .._config import EnvironmentSettings
from .._localsqs import LOCAL_CREDENTIALS, LocalSQSServer
from .._message import Message
from .._run.signals import capture_signals
from .._sqs.redrive import RedrivePolicy
from .._text import plural
from .command import Invocation, Subparsers, add_logging_options

__all__ = ["add_parser", "run"]

REGION = "us-east-1"
VISIBILITY = 4  # short, so that the slow jobs show the lease keeper at work
SLOW_JOB = 10.0
MAX_RECEIVES = 3


def _plan(messages: int) -> tuple[list[str], list[str], int]:
    """Bodies for the orders and emails queues, and how many orders are poison."""
    rng = random.Random(7)
    orders: list[str] = []
    poison = 0
    for n in range(messages):
        if n % 40 == 17:
            orders.append(f"not json #{n}")
            poison += 1
        else:
            work = SLOW_JOB if n % 50 == 3 else rng.uniform(0.05, 0.4)
            orders.append(json.dumps({"order": n, "work": work}))
    emails = [json.dumps({"to": f"user{n}@example.com"}) for n in range(messages // 2)]
    return orders, emails, poison


async def _create_queues(client: Any) -> dict[str, str]:
    dlq = await client.create_queue(QueueName="demo-orders-dlq")
    dlq_arn = (
        await client.get_queue_attributes(QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"])
    )["Attributes"]["QueueArn"]
    policy = RedrivePolicy(dlq_arn, MAX_RECEIVES).attribute()
    orders = await client.create_queue(
        QueueName="demo-orders",
        Attributes={"VisibilityTimeout": str(VISIBILITY), "RedrivePolicy": policy},
    )
    emails = await client.create_queue(QueueName="demo-emails")
    return {"orders": orders["QueueUrl"], "emails": emails["QueueUrl"], "dlq": dlq["QueueUrl"]}


async def _send(client: Any, url: str, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        await client.send_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
        )


async def _depth(client: Any, url: str) -> int:
    attributes = await client.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def _build_app(endpoint_url: str) -> App:
    app = App(region=REGION, endpoint_url=endpoint_url, shutdown_timeout=15)
    # Short long polls: the demo stops once everything is done, and a graceful stop lets
    # the polls still open finish (what they bring is released), which takes up to this.
    wait_time = 2

    @app.consumer(
        "demo-orders",
        concurrency=20,
        retry_base_delay=1,
        retry_max_delay=4,
        wait_time=wait_time,
    )
    async def handle_order(message: Message) -> None:
        order = message.json()  # a poison message fails here, and is retried, then dead-lettered
        await anyio.sleep(order["work"])

    @app.consumer("demo-emails", concurrency=10, wait_time=wait_time)
    async def send_email(message: Message) -> None:
        await anyio.sleep(0.02)

    return app


async def _demo(endpoint_url: str, messages: int, keep_running: bool) -> int:
    from aiobotocore.session import get_session  # imported by the command, not by --help

    orders, emails, poison = _plan(messages)
    session = get_session()
    async with session.create_client(
        "sqs", region_name=REGION, endpoint_url=endpoint_url
    ) as client:
        urls = await _create_queues(client)
        await _send(client, urls["orders"], orders)
        await _send(client, urls["emails"], emails)
        print(
            f"demo: sent {len(orders)} orders ({poison} poison, a few slow jobs of "
            f"{SLOW_JOB:g} s with a {VISIBILITY} s visibility timeout) and {len(emails)} emails",
            flush=True,
        )
        app = _build_app(endpoint_url)
        good_orders = len(orders) - poison
        started = time.monotonic()
        with capture_signals(app.stop):
            async with app:
                while True:
                    await anyio.sleep(1)
                    stats = app.statistics()
                    dead = await _depth(client, urls["dlq"])
                    o, e = stats["handle_order"], stats["send_email"]
                    print(
                        f"[{time.monotonic() - started:5.1f}s] orders {o.succeeded}/{good_orders} "
                        f"done, {o.running} running, {o.failed} failures, {dead}/{poison} "
                        f"dead-lettered, {o.leases_extended} leases extended | emails "
                        f"{e.succeeded}/{len(emails)}",
                        flush=True,
                    )
                    finished = (
                        o.succeeded >= good_orders and dead >= poison and e.succeeded >= len(emails)
                    )
                    if app.state.value != "running" or (finished and not keep_running):
                        break
        left = await _depth(client, urls["orders"]) + await _depth(client, urls["emails"])
    print(
        f"demo: done in {time.monotonic() - started:.1f} s: {o.succeeded} orders and "
        f"{e.succeeded} emails handled, {dead} poison orders in demo-orders-dlq, "
        f"{plural(left, 'message')} left in the queues",
        flush=True,
    )
    return 0 if left == 0 or keep_running else 1


def add_parser(sub: Subparsers, env: EnvironmentSettings) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "demo",
        help="run demo consumers against a local SQS server started for the occasion",
        description="Start a local SQS server (moto's) on 127.0.0.1, create demo queues, "
        "send messages (some slow, some poisonous) and consume them with visible progress.",
    )
    parser.add_argument("--messages", type=int, default=200, help="(default: %(default)s)")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="keep consuming after the demo messages are done, until Ctrl-C",
    )
    add_logging_options(parser, env)
    return parser


def run(call: Invocation) -> int:
    """Run the demo; returns the process exit code."""
    messages, keep_running = call.args.messages, call.args.keep_running
    for name, value in LOCAL_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    print("demo: starting a local SQS server (moto) on 127.0.0.1 ...", flush=True)
    with LocalSQSServer() as server:
        print(f"demo: SQS server listening at {server.endpoint_url}", flush=True)
        try:
            return anyio.run(
                _demo,
                server.endpoint_url,
                messages,
                keep_running,
                backend="asyncio",
                backend_options={"use_uvloop": call.use_uvloop},
            )
        except KeyboardInterrupt:  # pragma: no cover - interactive
            print("demo: interrupted", file=sys.stderr)
            return 130
