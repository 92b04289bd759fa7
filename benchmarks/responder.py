"""A local SQS responder for client-cost runs: answers at once, counts every request.

An aiohttp server, in its own process, on 127.0.0.1. It speaks SQS's JSON protocol (POST,
``X-Amz-Target: AmazonSQS.<Action>``, ``application/x-amz-json-1.0``), which botocore uses for
SQS, and does not verify signatures. It holds one queue-like budget of messages:

- ``ReceiveMessage`` returns ``min(MaxNumberOfMessages, remaining)`` messages, each with a
  valid ``MD5OfBody``, a unique ``MessageId`` and ``ReceiptHandle``, and the system attributes
  (``ApproximateReceiveCount``, ``SentTimestamp``, ...). With the budget spent it holds the long
  poll for ``WaitTimeSeconds`` and answers empty, unless a budget arrives first (then it
  answers at once, as SQS does for a waiting poll). Messages are never delivered twice.
- ``DeleteMessageBatch`` and ``ChangeMessageVisibilityBatch`` report every entry Successful;
  ``SendMessage(Batch)``, ``GetQueueUrl``, ``GetQueueAttributes``, ``CreateQueue`` and a few
  other control calls answer plausibly.

Control endpoints (plain HTTP, for the harness):

- ``GET /_counts``: requests by action, messages received and deleted, when the last
  delete came (wall clock), budget left, and the responder's own CPU seconds (to tell when
  the responder, not the client, is the limit);
- ``GET /_receives``: when each ReceiveMessage arrived (wall clock), by queue name: the
  idle figure counts a consumer's polls over a window of its own;
- ``POST /_reset?messages=N``: zero every count and set a new budget;
- ``POST /_release?messages=N``: add N to the budget and wake the waiting polls (the
  contender calls it when it opens its measuring window). With ``&replay=1`` the messages
  carry the body and message attributes of the last SendMessage(Batch) entry instead of the
  usual JSON bodies: a task-queue peer enqueues one task with its own API, and its own
  envelope then comes back N times.

Run it alone with ``python -m benchmarks.responder --port 9324 --messages 1000``; the harness
starts it with `ResponderProcess`. A poll whose client has gone away is cancelled, and a poll
opened before the last reset never takes messages of the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import resource
import signal
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from aiosqsworker._localsqs import stop_process
from aiosqsworker._sqs.urls import queue_name

__all__ = ["Responder", "ResponderProcess", "main"]

ACCOUNT = "123456789012"
CONTENT_TYPE = "application/x-amz-json-1.0"
PROJECT_ROOT = Path(__file__).resolve().parents[1]

try:
    import orjson

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

    def _loads(raw: bytes) -> Any:
        return orjson.loads(raw)

except ImportError:  # pragma: no cover - depends on the environment

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def _loads(raw: bytes) -> Any:
        return json.loads(raw)


def _bodies(count: int = 64) -> list[tuple[str, str]]:
    """Typical small JSON bodies (~200 bytes) with their MD5s."""
    bodies = []
    for n in range(count):
        body = json.dumps(
            {
                "order_id": f"ord-{n:06d}",
                "customer": {"id": 1000 + n, "tier": "gold" if n % 3 else "silver"},
                "items": [{"sku": f"SKU-{n * 7 % 997:04d}", "quantity": 1 + n % 4}],
                "total_cents": 1999 + 37 * n,
                "currency": "EUR",
            }
        )
        bodies.append((body, hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()))
    return bodies


class Responder:
    """The state and request handlers of the responder (one event loop, no locking)."""

    def __init__(self, host: str, port: int, messages: int = 0) -> None:
        self.base_url = f"http://{host}:{port}"
        self._bodies = _bodies()
        # Receipt handles of real SQS are ~180 characters of base64: keep the size realistic.
        self._handle_prefix = (uuid.uuid4().hex * 5)[:160]
        self._more = asyncio.Event()
        self._last_sent: tuple[str, dict[str, Any] | None] | None = None
        self.reset(messages)

    # --- control -------------------------------------------------------------------------
    def reset(self, messages: int) -> None:
        self.generation = getattr(self, "generation", 0) + 1
        self.requests: Counter[str] = Counter()
        self.receive_times: dict[str, list[float]] = {}
        self.remaining = messages
        self.received = 0
        self.deleted = 0
        self.duplicate_deletes = 0
        self.visibility_changes = 0
        self.sent = 0
        self.last_delete_at: float | None = None  # wall clock of the last new delete
        self._deleted_handles: set[str] = set()
        self._replay: tuple[str, str, dict[str, Any] | None] | None = None
        self._wake()

    def release(self, messages: int, *, replay: bool = False) -> None:
        if replay:
            if self._last_sent is None:
                raise ValueError("replay asked for, but nothing was sent yet")
            body, attributes = self._last_sent
            md5 = hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()
            self._replay = (body, md5, attributes)
        self.remaining += messages
        self._wake()

    def _wake(self) -> None:
        self._more.set()
        self._more = asyncio.Event()

    def counts(self) -> dict[str, Any]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "requests": dict(self.requests),
            "received": self.received,
            "deleted": self.deleted,
            "duplicate_deletes": self.duplicate_deletes,
            "visibility_changes": self.visibility_changes,
            "sent": self.sent,
            "remaining": self.remaining,
            "last_delete_at": self.last_delete_at,
            "generation": self.generation,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
        }

    async def handle_counts(self, request: web.Request) -> web.Response:
        return web.json_response(self.counts())

    async def handle_receives(self, request: web.Request) -> web.Response:
        return web.json_response(self.receive_times)

    async def handle_reset(self, request: web.Request) -> web.Response:
        self.reset(int(request.query.get("messages", "0")))
        return web.json_response(self.counts())

    async def handle_release(self, request: web.Request) -> web.Response:
        try:
            self.release(
                int(request.query.get("messages", "0")),
                replay=request.query.get("replay") == "1",
            )
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"remaining": self.remaining})

    # --- SQS -----------------------------------------------------------------------------
    async def handle_sqs(self, request: web.Request) -> web.StreamResponse:
        target = request.headers.get("X-Amz-Target", "")
        action = target.rpartition(".")[2]
        raw = await request.read()
        try:
            payload = _loads(raw) if raw else {}
        except ValueError:
            return self._error(400, "SerializationException", "the body is not JSON")
        self.requests[action or "(none)"] += 1
        answer = getattr(self, f"_{action}", None)
        if answer is None:
            return self._error(400, "UnsupportedOperation", f"{action or target!r} not supported")
        result: dict[str, Any] = await answer(payload)
        return web.Response(
            body=_dumps(result),
            headers={"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())},
        )

    def _error(self, status: int, code: str, message: str) -> web.Response:
        return web.Response(
            status=status,
            body=_dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}),
            headers={
                "Content-Type": CONTENT_TYPE,
                "x-amzn-query-error": f"AWS.SimpleQueueService.{code};Sender",
            },
        )

    def _queue_url(self, name: str) -> str:
        return f"{self.base_url}/{ACCOUNT}/{name}"

    async def _GetQueueUrl(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"QueueUrl": self._queue_url(str(payload.get("QueueName", "bench")))}

    async def _CreateQueue(self, payload: dict[str, Any]) -> dict[str, Any]:
        return await self._GetQueueUrl(payload)

    async def _ListQueues(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"QueueUrls": [self._queue_url("bench")]}

    async def _GetQueueAttributes(self, payload: dict[str, Any]) -> dict[str, Any]:
        name = queue_name(str(payload.get("QueueUrl", "bench")))
        now = str(int(time.time()))
        return {
            "Attributes": {
                "QueueArn": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}",
                "ApproximateNumberOfMessages": str(self.remaining),
                "ApproximateNumberOfMessagesNotVisible": "0",
                "ApproximateNumberOfMessagesDelayed": "0",
                "CreatedTimestamp": now,
                "LastModifiedTimestamp": now,
                "VisibilityTimeout": "30",
                "MaximumMessageSize": "262144",
                "MessageRetentionPeriod": "345600",
                "DelaySeconds": "0",
                "ReceiveMessageWaitTimeSeconds": "0",
                "SqsManagedSseEnabled": "true",
            }
        }

    async def _SetQueueAttributes(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def _PurgeQueue(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {}

    async def _ReceiveMessage(self, payload: dict[str, Any]) -> dict[str, Any]:
        queue = queue_name(str(payload.get("QueueUrl", "")))
        self.receive_times.setdefault(queue, []).append(time.time())
        wanted = int(payload.get("MaxNumberOfMessages", 1))
        wait = float(payload.get("WaitTimeSeconds", 0))
        generation = self.generation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            if generation != self.generation:
                return {}  # a poll from before the last reset: it takes nothing of this run
            count = min(wanted, self.remaining)
            if count > 0:
                break
            left = deadline - loop.time()
            if left <= 0:
                return {}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._more.wait(), left)
        self.remaining -= count
        first = self.received
        self.received += count
        now = str(int(time.time() * 1000))
        messages = []
        bodies = self._bodies
        replay = self._replay
        for n in range(first, first + count):
            body, md5 = bodies[n % len(bodies)] if replay is None else replay[:2]
            message = {
                "MessageId": f"{self.generation:08x}-0000-4000-8000-{n:012x}",
                "ReceiptHandle": f"{self._handle_prefix}{self.generation}/{n}",
                "MD5OfBody": md5,
                "Body": body,
                "Attributes": {
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": now,
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                },
            }
            if replay is not None and replay[2]:
                message["MessageAttributes"] = replay[2]
            messages.append(message)
        return {"Messages": messages}

    def _delete(self, handle: str) -> None:
        if handle in self._deleted_handles:
            self.duplicate_deletes += 1
        else:
            self._deleted_handles.add(handle)
            self.deleted += 1
            self.last_delete_at = time.time()

    async def _DeleteMessage(self, payload: dict[str, Any]) -> dict[str, Any]:
        self._delete(str(payload.get("ReceiptHandle", "")))
        return {}

    async def _DeleteMessageBatch(self, payload: dict[str, Any]) -> dict[str, Any]:
        entries = payload.get("Entries", [])
        for entry in entries:
            self._delete(str(entry.get("ReceiptHandle", "")))
        return {"Successful": [{"Id": entry["Id"]} for entry in entries], "Failed": []}

    async def _ChangeMessageVisibility(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.visibility_changes += 1
        return {}

    async def _ChangeMessageVisibilityBatch(self, payload: dict[str, Any]) -> dict[str, Any]:
        entries = payload.get("Entries", [])
        self.visibility_changes += len(entries)
        return {"Successful": [{"Id": entry["Id"]} for entry in entries], "Failed": []}

    def _sent(self, body: str, attributes: dict[str, Any] | None = None) -> dict[str, str]:
        self.sent += 1
        self._last_sent = (body, attributes)
        return {
            "MessageId": str(uuid.uuid4()),
            "MD5OfMessageBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        }

    async def _SendMessage(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self._sent(str(payload.get("MessageBody", "")), payload.get("MessageAttributes"))

    async def _SendMessageBatch(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "Successful": [
                {
                    "Id": entry["Id"],
                    **self._sent(str(entry.get("MessageBody", "")), entry.get("MessageAttributes")),
                }
                for entry in payload.get("Entries", [])
            ],
            "Failed": [],
        }


def build_app(responder: Responder) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/_counts", responder.handle_counts)
    app.router.add_get("/_receives", responder.handle_receives)
    app.router.add_post("/_reset", responder.handle_reset)
    app.router.add_post("/_release", responder.handle_release)
    app.router.add_post("/{tail:.*}", responder.handle_sqs)
    return app


async def serve(host: str, port: int, messages: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    responder = Responder(host, port, messages)
    runner = web.AppRunner(build_app(responder), access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"responder listening on {responder.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.responder", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--messages", type=int, default=0, help="initial message budget")
    args = parser.parse_args(argv)
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:  # pragma: no cover - depends on the environment
        pass
    else:
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(args.host, args.port, args.messages))


class ResponderProcess:
    """The responder in a subprocess on a free loopback port, for the harness."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        from aiosqsworker.testing import free_port

        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def release_url(self) -> str:
        return f"{self.endpoint_url}/_release"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self, timeout: float = 30.0) -> str:
        command = [sys.executable, "-m", "benchmarks.responder"]
        command += ["--host", self.host, "--port", str(self.port)]
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=PROJECT_ROOT
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.counts()
                return self.endpoint_url
            except (urllib.error.URLError, OSError):
                pass
            if self._process.poll() is not None:
                raise RuntimeError(f"the responder exited with code {self._process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the responder did not answer within {timeout} s")
            time.sleep(0.05)  # start-up only: a bounded wait for a subprocess to listen

    def _call(self, method: str, path: str) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.endpoint_url}{path}", method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
        return result

    def counts(self) -> dict[str, Any]:
        return self._call("GET", "/_counts")

    def receive_times(self) -> dict[str, list[float]]:
        """When each ReceiveMessage arrived (wall clock), by queue name, since the reset."""
        return self._call("GET", "/_receives")

    def reset(self, messages: int = 0) -> dict[str, Any]:
        return self._call("POST", f"/_reset?messages={messages}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)

    def __enter__(self) -> ResponderProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self.stop()


if __name__ == "__main__":
    main()
