"""A fault-injecting HTTP proxy between an SQS client and an SQS-protocol server.

For tests of what a consumer does when the network or SQS misbehaves. It listens on
127.0.0.1, forwards each request to the upstream server, and on command, per API action
(``ReceiveMessage``, ``DeleteMessageBatch``, ``ChangeMessageVisibilityBatch``, ... or ``*``):

- ``reset``: drop the connection without answering;
- ``stall``: hold the request `seconds` without answering, then drop it;
- ``truncate``: forward, then send only the first half of the response body and close;
- ``cut_short``: forward, then answer with the first half of the body framed as whole (a
  Content-Length that matches it), as a broken intermediary would: only the body's own
  syntax shows that it was cut;
- ``lose_answer``: forward, then drop the connection without answering (the call took
  effect, but the client never learns it did);
- ``status``: answer `status` (500, 503, ...) with an SQS-style JSON error;
- ``throttle``: answer a throttling error, in the JSON protocol's style
  (``ThrottlingException``) or the query protocol's (``AWS.SimpleQueueService.RequestThrottled``
  in ``x-amzn-query-error``), by `style`;
- ``latency``: forward after `seconds`.

Faults are queued per action and taken one per request (`times`), or applied to every
request while `always` holds. It counts requests per action. A test's own kind of fault
overrides `forward`, the public step that sends one request upstream: change the request
before calling ``super().forward(request)``, or the answer after.

```python
async with FaultProxy(server.endpoint_url) as proxy:
    proxy.inject("ReceiveMessage", "reset", times=3)
    app = App(endpoint_url=proxy.url, ...)
```
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Literal, Self

import aiohttp

__all__ = ["Answer", "Fault", "FaultProxy", "ProxiedRequest"]

FaultKind = Literal[
    "reset", "stall", "truncate", "cut_short", "lose_answer", "status", "throttle", "latency"
]

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    seconds: float = 0.0
    status: int = 500
    style: Literal["json", "query"] = "json"


@dataclass
class ProxiedRequest:
    """One request on its way upstream; `action` is its SQS action (``DeleteMessageBatch``)."""

    action: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    """What the upstream server answered (or what an override answers instead)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    payload: bytes

    def json(self) -> Any:
        return json.loads(self.payload)

    @classmethod
    def of_json(cls, value: object) -> Answer:
        """A 200 answer carrying `value` in SQS's JSON protocol."""
        headers = [("Content-Type", "application/x-amz-json-1.0")]
        return cls(200, "OK", headers, json.dumps(value).encode())


class FaultProxy:
    """See the module's documentation."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = port
        self.requests: Counter[str] = Counter()
        self.faults_applied: Counter[str] = Counter()
        self._queued: dict[str, deque[Fault]] = {}
        self._always: dict[str, Fault] = {}
        self._server: asyncio.Server | None = None
        self._session: aiohttp.ClientSession | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def inject(
        self,
        action: str,
        kind: FaultKind,
        *,
        times: int = 1,
        seconds: float = 0.0,
        status: int = 500,
        style: Literal["json", "query"] = "json",
    ) -> None:
        """Apply a fault to the next `times` requests of `action` (``"*"``: any action)."""
        self._queued.setdefault(action, deque()).extend(
            [Fault(kind, seconds, status, style)] * times
        )

    def always(
        self,
        action: str,
        kind: FaultKind,
        *,
        seconds: float = 0.0,
        status: int = 500,
        style: Literal["json", "query"] = "json",
    ) -> None:
        """Apply a fault to every request of `action` until `clear`."""
        self._always[action] = Fault(kind, seconds, status, style)

    def clear(self) -> None:
        """No more faults: every request is forwarded as it is."""
        self._queued.clear()
        self._always.clear()

    def _take(self, action: str) -> Fault | None:
        for key in (action, "*"):
            queue = self._queued.get(key)
            if queue:
                return queue.popleft()
        return self._always.get(action) or self._always.get("*")

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            # A fresh upstream connection per request: no stale keep-alive can add faults of
            # its own to the ones injected.
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=60),
            auto_decompress=False,
        )
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        if self._session is not None:
            await self._session.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while await self._one_request(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except aiohttp.ClientError:
            pass  # the upstream went away (a test stopping its server): drop the client too
        finally:
            self._connections.discard(writer)
            writer.transport.abort()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        action = headers.get("x-amz-target", "").rpartition(".")[2] or "Unknown"
        self.requests[action] += 1
        fault = self._take(action)
        if fault is not None:
            self.faults_applied[f"{action}:{fault.kind}"] += 1
        if fault is not None and fault.kind == "reset":
            return False
        if fault is not None and fault.kind == "stall":
            await asyncio.sleep(fault.seconds)
            return False
        if fault is not None and fault.kind == "status":
            await self._answer_error(writer, fault.status, "InternalError", "injected failure")
            return True
        if fault is not None and fault.kind == "throttle":
            await self._answer_throttle(writer, fault.style)
            return True
        if fault is not None and fault.kind == "latency":
            await asyncio.sleep(fault.seconds)
        answer = await self.forward(ProxiedRequest(action, method, path, headers, body))
        status, reason, response_headers, payload = (
            answer.status,
            answer.reason,
            answer.headers,
            answer.payload,
        )
        if fault is not None and fault.kind == "lose_answer":
            return False
        if fault is not None and fault.kind == "truncate":
            await self._write(writer, status, reason, response_headers, payload, len(payload) // 2)
            return False
        if fault is not None and fault.kind == "cut_short":
            short = payload[: len(payload) // 2]
            await self._write(writer, status, reason, response_headers, short, len(short))
            return False
        await self._write(writer, status, reason, response_headers, payload, len(payload))
        return True

    async def forward(self, request: ProxiedRequest) -> Answer:
        """Send `request` upstream and return its answer: the hook for a test's own faults."""
        assert self._session is not None
        forwarded = {k: v for k, v in request.headers.items() if k not in _HOP_BY_HOP}
        async with self._session.request(
            request.method, self.upstream + request.path, headers=forwarded, data=request.body
        ) as response:
            payload = await response.read()
            kept = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP]
            return Answer(response.status, response.reason or "", kept, payload)

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter,
        status: int,
        reason: str,
        headers: list[tuple[str, str]],
        payload: bytes,
        send: int,
    ) -> None:
        lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in headers)]
        lines += [f"Content-Length: {len(payload)}", "Connection: keep-alive", "", ""]
        writer.write("\r\n".join(lines).encode("latin-1") + payload[:send])
        await writer.drain()

    async def _answer_error(
        self, writer: asyncio.StreamWriter, status: int, code: str, message: str
    ) -> None:
        payload = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.0")]
        await self._write(writer, status, "Error", headers, payload, len(payload))

    async def _answer_throttle(self, writer: asyncio.StreamWriter, style: str) -> None:
        if style == "query":
            payload = json.dumps(
                {"__type": "com.amazonaws.sqs#RequestThrottled", "message": "Rate exceeded"}
            ).encode()
            headers = [
                ("Content-Type", "application/x-amz-json-1.0"),
                ("x-amzn-query-error", "AWS.SimpleQueueService.RequestThrottled;Sender"),
            ]
            await self._write(writer, 400, "Bad Request", headers, payload, len(payload))
        else:
            await self._answer_error(writer, 400, "ThrottlingException", "Rate exceeded")
