"""The fast path: the hot SQS calls over aiohttp, speaking SQS's JSON protocol directly.

A profile of an aiobotocore consumer shows its time going to botocore's request
serialization, event hooks, user-agent assembly and response parsing, not to the network.
`FastSQSClient` keeps aiobotocore for what it is good at (the credential chain with refresh,
region and endpoint resolution, every control-plane call) and serves ReceiveMessage,
DeleteMessageBatch, ChangeMessageVisibilityBatch and SendMessage(Batch) itself:

- one keep-alive aiohttp session, its read timeout longer than the long poll;
- SigV4 with a signing key cached per day (`sigv4.py`), credentials from botocore's chain,
  frozen per request so that refreshed ones are picked up;
- compact JSON encoding and decoding (orjson when installed);
- MD5 of every received body verified, as the SDKs for other languages do: a message whose
  body does not match is not handed to a handler (it comes back after its visibility timeout);
- the same error classification and mapping as the aiobotocore path (`classify_error_code`),
  and the same retry policy as botocore's "standard" mode: three attempts with jittered
  exponential back-off for throttling, 5xx and connection errors.

`App(client="botocore")` turns it off; the integration tests run against both paths.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .._errors import CredentialsError, TransientSQSError
from .botocore import AioBotocoreSQSClient
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
        credentials: Any,
        session: aiohttp.ClientSession,
    ) -> None:
        """`credentials`: the session's credentials object (`AioSession.get_credentials()`),
        the one botocore's own client signs with; refreshable ones refresh themselves."""
        self._fallback = fallback
        self._credentials_source = credentials
        self._session = session
        parts = urlsplit(fallback.endpoint.url)
        self._url = fallback.endpoint.url.rstrip("/") + "/"
        self._region = fallback.endpoint.region
        self._signer = RequestSigner(
            host=parts.netloc, path=parts.path.rstrip("/") + "/", region=self._region, service="sqs"
        )
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
        return await self._credentials()

    async def _credentials(self) -> FrozenCredentials:
        credentials = self._credentials_source
        if credentials is None:
            raise CredentialsError(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                "choose a profile with AWS_PROFILE, or run with an IAM role"
            )
        frozen = credentials.get_frozen_credentials()
        if hasattr(frozen, "__await__"):
            frozen = await frozen
        return FrozenCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    async def _send_once(self, action: str, body: bytes, queue: str | None) -> dict[str, Any]:
        headers = self._signer.sign(action_headers(action), body, await self._credentials())
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
