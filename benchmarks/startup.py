"""Start-up: how long `import aiosqsworker` takes, and launch to the first handled message.

``python -m benchmarks.startup [--runs N] [--client fast|aiohttp|botocore]`` prints medians
(and the spread) over N fresh interpreters:

- import: wall time of ``python -c 'import aiosqsworker'``, minus that of a bare
  ``python -c pass`` measured alike (the interpreter's own start is not the framework's);
  ``python -X importtime -c 'import aiosqsworker'`` shows where the time goes;
- launch to first message: from spawning a worker process (a one-consumer app, credentials
  and region in the environment) to its handler running on the message already waiting in a
  queue of moto's server (`aiosqsworker.testing.LocalSQSServer`), as a deploy sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time

from aiosqsworker.testing import LOCAL_CREDENTIALS, LocalSQSServer

__all__ = ["main"]

REGION = "us-east-1"
WORKER = """
import asyncio, sys
from aiosqsworker import App, Message

async def main():
    app = App(endpoint_url=sys.argv[1], client=sys.argv[3])
    done = asyncio.Event()

    @app.consumer(sys.argv[2], concurrency=1, wait_time=1)
    async def handle(message: Message) -> None:
        print("handled", flush=True)
        done.set()

    async with app:
        await done.wait()

asyncio.run(main())
"""


def _environment() -> dict[str, str]:
    environ = {**os.environ, **LOCAL_CREDENTIALS, "AWS_REGION": REGION}
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        environ.pop(name, None)
    return environ


def _wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=_environment(), stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def import_seconds(runs: int) -> list[float]:
    """`import aiosqsworker` per fresh interpreter, the interpreter's own start taken off."""
    bare = statistics.median(_wall([sys.executable, "-c", "pass"]) for _ in range(runs))
    return [_wall([sys.executable, "-c", "import aiosqsworker"]) - bare for _ in range(runs)]


async def _queue_with_a_message(endpoint: str, name: str) -> None:
    from aiosqsworker._sqs.errors import Endpoint
    from aiosqsworker._sqs.lean import LeanSQSClient, StaticCredentials
    from aiosqsworker._sqs.sigv4 import FrozenCredentials

    client = LeanSQSClient(
        Endpoint(REGION, endpoint),
        StaticCredentials(FrozenCredentials("bench", "bench-secret")),
        max_connections=1,
        read_timeout=10,
    )
    try:
        url = (await client._call("CreateQueue", {"QueueName": name}, name))["QueueUrl"]
        await client.send_message_batch(url, [{"Id": "0", "MessageBody": "start"}])
    finally:
        await client.close()


def launch_seconds(endpoint: str, runs: int, client: str) -> list[float]:
    """Spawn-to-first-handled-message of a worker process, once per fresh queue."""
    results: list[float] = []
    for run in range(runs):
        queue = f"startup-{os.getpid()}-{run}"
        asyncio.run(_queue_with_a_message(endpoint, queue))
        start = time.perf_counter()
        with subprocess.Popen(
            [sys.executable, "-c", WORKER, endpoint, queue, client],
            env=_environment(),
            stdout=subprocess.PIPE,
            text=True,
        ) as worker:
            assert worker.stdout is not None
            line = worker.stdout.readline()
            results.append(time.perf_counter() - start)
            worker.wait(timeout=30)
        if line.strip() != "handled":
            raise RuntimeError(f"the worker exited without handling the message ({line!r})")
    return results


def _line(label: str, seconds: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(seconds) * 1000:.0f} ms "
        f"(min {min(seconds) * 1000:.0f}, max {max(seconds) * 1000:.0f}, {len(seconds)} runs)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--client", choices=["fast", "aiohttp", "botocore"], default="fast")
    args = parser.parse_args(argv)
    print(_line("import aiosqsworker", import_seconds(args.runs)))
    with LocalSQSServer() as server:
        seconds = launch_seconds(server.endpoint_url, args.runs, args.client)
    print(_line(f"launch to first message (client={args.client})", seconds))


if __name__ == "__main__":
    main()
