"""The lean client: every call of `SQSClient` over SQS's JSON protocol on `http11.py`.

The default client (``client="fast"``). Where the aiohttp-based `FastSQSClient` keeps
aiobotocore for the control plane, this one speaks every call the engine makes itself, so
that a worker whose settings are plain (`awsconfig.py`) never imports botocore or aiohttp:

- requests built from a template per action (request line, Host, content type, target,
  user agent), signed by the project's SigV4 signer over exactly the Host header sent;
- credentials frozen per request from their source: static keys as they are, or botocore's
  refreshable chain (loaded only when the plain settings cannot tell);
- answers parsed with orjson when installed, MD5 of each body checked, errors mapped and
  retried as on the other paths (`jsonwire.py`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from .._errors import TransientSQSError
from .base import parse_queue_arn
from .errors import Endpoint, unreachable_hint
from .http11 import ConnectionPool, Origin, proxy_for, ssl_context
from .jsonwire import CONTENT_TYPE, JsonProtocolCalls, action_headers, read_answer
from .sigv4 import FrozenCredentials, RequestSigner

__all__ = ["LeanSQSClient", "SigningCredentials", "StaticCredentials"]

USER_AGENT = "aiosqsworker-lean"


class SigningCredentials(Protocol):
    """Where the credentials of each request come from: static keys, or botocore's chain
    (`credentials.CredentialSource`, which bounds an outage of its source)."""

    async def frozen(self, operation: str | None = None) -> FrozenCredentials: ...


class StaticCredentials:
    """Keys that never change (the environment's, a shared file's)."""

    def __init__(self, credentials: FrozenCredentials) -> None:
        self._credentials = credentials

    async def frozen(self, operation: str | None = None) -> FrozenCredentials:
        return self._credentials


class LeanSQSClient(JsonProtocolCalls):
    """`SQSClient` over keep-alive HTTP/1.1 connections of its own."""

    #: SQS hands messages to a long poll whose client has gone away.
    cancelled_polls_take_messages = True

    def __init__(
        self,
        endpoint: Endpoint,
        credentials: SigningCredentials,
        *,
        max_connections: int,
        read_timeout: float,
        connect_timeout: float = 10.0,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        origin = Origin.of(endpoint.url)
        self._endpoint = endpoint
        self._credentials = credentials
        self._read_timeout = read_timeout
        self._pool = ConnectionPool(
            origin,
            max_connections=max_connections,
            connect_timeout=connect_timeout,
            ssl_context=ssl_context(environ) if origin.scheme == "https" else None,
            proxy=proxy_for(origin, environ),
        )
        path = urlsplit(endpoint.url).path.rstrip("/") + "/"
        self._signer = RequestSigner.for_url(endpoint.url, region=endpoint.region, service="sqs")
        self._prefix = (
            f"POST {self._pool.request_target_prefix}{path} HTTP/1.1\r\n"
            f"Host: {origin.host_header}\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Content-Type: {CONTENT_TYPE}\r\n{self._pool.proxy_headers}"
        )
        # The last head signed per action and queue, with its body, second and credentials:
        # a queue's poll sends the same bytes object every time (built once per queue), and
        # a signature depends on nothing else, so the polls of one second share one head.
        self._last_heads: dict[
            tuple[str, str | None], tuple[bytes, int, FrozenCredentials, bytes]
        ] = {}

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    async def signing_credentials(self) -> FrozenCredentials:
        """The credentials the calls are signed with now."""
        return await self._credentials.frozen()

    async def close(self) -> None:
        await self._pool.close()

    async def _send_once(self, action: str, body: bytes, queue: str | None) -> dict[str, Any]:
        credentials = await self._credentials.frozen(action)
        second = int(time.time())
        last = self._last_heads.get((action, queue))
        if last is not None and last[0] is body and last[1] == second and last[2] == credentials:
            head = last[3]
        else:
            head = self._signed_head(action, body, credentials, second)
            self._last_heads[action, queue] = (body, second, credentials, head)
        try:
            response = await self._pool.send(head + body, self._read_timeout)
        except OSError as exc:  # HttpError, TimeoutError, ssl.SSLError, refused connections
            raise TransientSQSError(
                f"{action} could not reach SQS at region {self._endpoint.region}, endpoint "
                f"{self._endpoint.url}: {exc!r}{unreachable_hint(self._endpoint.url)}",
                operation=action,
            ) from exc
        return read_answer(
            action,
            response.status,
            response.headers,
            response.body,
            endpoint=self._endpoint,
            queue=queue,
        )

    def _signed_head(
        self, action: str, body: bytes, credentials: FrozenCredentials, second: int
    ) -> bytes:
        signed = self._signer.sign(action_headers(action), body, credentials, at=second)
        token = signed.get("X-Amz-Security-Token")
        return (
            f"{self._prefix}X-Amz-Target: AmazonSQS.{action}\r\n"
            f"X-Amz-Date: {signed['X-Amz-Date']}\r\n"
            + (f"X-Amz-Security-Token: {token}\r\n" if token else "")
            + f"Authorization: {signed['Authorization']}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()

    # Control plane: the same protocol.
    async def resolve_queue_url(self, queue: str) -> str:
        if queue.startswith(("https://", "http://")):
            return queue
        response = await self._call("GetQueueUrl", {"QueueName": queue}, queue)
        return str(response["QueueUrl"])

    async def get_queue_attributes(self, queue_url: str) -> dict[str, str]:
        response = await self._call(
            "GetQueueAttributes", {"QueueUrl": queue_url, "AttributeNames": ["All"]}, queue_url
        )
        return dict(response.get("Attributes") or {})

    async def queue_url_from_arn(self, arn: str) -> str:
        account, name = parse_queue_arn(arn)
        response = await self._call(
            "GetQueueUrl", {"QueueName": name, "QueueOwnerAWSAccountId": account}, name
        )
        return str(response["QueueUrl"])

    async def list_dead_letter_source_queues(self, queue_url: str) -> list[str]:
        urls: list[str] = []
        request: dict[str, Any] = {"QueueUrl": queue_url, "MaxResults": 1000}
        while True:
            response = await self._call("ListDeadLetterSourceQueues", request, queue_url)
            urls.extend(str(url) for url in response.get("queueUrls", ()))
            token = response.get("NextToken")
            if not token:
                return urls
            request["NextToken"] = token
