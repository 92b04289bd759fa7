"""The hot SQS calls over aiohttp (``client="aiohttp"``), the rest through aiobotocore.

The default client before the lean one (`lean.py`), kept for who needs aiohttp's
transport. `FastSQSClient` keeps aiobotocore for the credential chain with refresh, region
and endpoint resolution and every control-plane call, and serves ReceiveMessage,
DeleteMessageBatch, ChangeMessageVisibilityBatch and SendMessage(Batch) over one keep-alive
aiohttp session, its read timeout longer than the long poll. What the calls send and how
their answers are read, checked and retried is SQS's JSON protocol as `jsonwire.py` speaks
it, signed by `sigv4.py` over the Host header it sends, with credentials from botocore's
chain through `CredentialSource` (shared with aiobotocore: a credentials outage is one
transient error).
"""

from __future__ import annotations

import io
from typing import Any

import aiohttp

from .._errors import TransientSQSError
from .botocore import AioBotocoreSQSClient
from .credentials import CredentialSource
from .errors import Endpoint
from .jsonwire import JsonProtocolCalls, action_headers, read_answer
from .sigv4 import FrozenCredentials, RequestSigner

__all__ = ["FastSQSClient"]

LARGE_BODY = 1 << 20


class FastSQSClient(JsonProtocolCalls):
    """`SQSClient` with the hot calls over aiohttp; the rest delegated to aiobotocore."""

    #: SQS hands messages to a long poll whose client has gone away.
    cancelled_polls_take_messages = True

    def __init__(
        self,
        fallback: AioBotocoreSQSClient,
        credentials: CredentialSource,
        session: aiohttp.ClientSession,
    ) -> None:
        """`credentials`: the source `fallback` refreshes too (one outage, one limit)."""
        self._fallback = fallback
        self._credentials = credentials
        self._session = session
        self._url = fallback.endpoint.url.rstrip("/") + "/"
        self._region = fallback.endpoint.region
        self._signer = RequestSigner.for_url(self._url, region=self._region, service="sqs")
        self._user_agent = f"aiosqsworker aiohttp/{aiohttp.__version__}"

    @property
    def endpoint(self) -> Endpoint:
        return self._fallback.endpoint

    # Control plane: aiobotocore.
    async def resolve_queue_url(self, queue: str) -> str:
        return await self._fallback.resolve_queue_url(queue)

    async def get_queue_attributes(self, queue_url: str) -> dict[str, str]:
        return await self._fallback.get_queue_attributes(queue_url)

    async def queue_url_from_arn(self, arn: str) -> str:
        return await self._fallback.queue_url_from_arn(arn)

    async def list_dead_letter_source_queues(self, queue_url: str) -> list[str]:
        return await self._fallback.list_dead_letter_source_queues(queue_url)

    async def signing_credentials(self) -> FrozenCredentials:
        """The credentials the hot calls are signed with now."""
        return await self._credentials.frozen()

    async def _send_once(self, action: str, body: bytes, queue: str | None) -> dict[str, Any]:
        credentials = await self._credentials.frozen(action)
        headers = self._signer.sign(action_headers(action), body, credentials)
        headers["User-Agent"] = self._user_agent
        try:
            # aiohttp warns about (and blocks the loop on) raw bytes over 1 MiB: a message near
            # SQS's size limit goes as a stream.
            data: bytes | io.BytesIO = body if len(body) < LARGE_BODY else io.BytesIO(body)
            async with self._session.post(self._url, data=data, headers=headers) as response:
                raw = await response.read()
                status = response.status
                response_headers = response.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            where = f"region {self._region}, endpoint {self.endpoint.url}"
            raise TransientSQSError(
                f"{action} could not reach SQS at {where}: {exc!r}", operation=action
            ) from exc
        return read_answer(
            action, status, response_headers, raw, endpoint=self.endpoint, queue=queue
        )
