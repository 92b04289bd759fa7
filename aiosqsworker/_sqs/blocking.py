"""ChangeMessageVisibilityBatch over a blocking connection, for a thread beside the event loop.

The lease keeper's thread (`_consumer/leasethread.py`) extends leases while the event loop
is blocked, so it cannot use either client: both need the loop. `BlockingVisibilityCalls`
speaks SQS's JSON protocol over one keep-alive `http.client` connection of its own, signed
with the same SigV4 signer as the fast path (`sigv4.py`) from credentials the loop froze
for it, and answers with the same `BatchResult` and error classes as the clients do.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .._errors import TransientSQSError
from .base import BatchResult
from .errors import Endpoint, sqs_error
from .http11 import ssl_context
from .jsonwire import CONTENT_TYPE, error_code
from .sigv4 import FrozenCredentials, RequestSigner

if TYPE_CHECKING:
    import http.client

__all__ = ["BlockingVisibilityCalls"]

OPERATION = "ChangeMessageVisibilityBatch"


class BlockingVisibilityCalls:
    """Extends visibility from any thread, one call at a time, without an event loop."""

    def __init__(self, endpoint: Endpoint) -> None:
        parts = urlsplit(endpoint.url)
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            raise ValueError(f"not an HTTP(S) endpoint: {endpoint.url!r}")
        self._endpoint = endpoint
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/"
        # Signed exactly as sent: the signer's headers carry the Host header it signed.
        self._signer = RequestSigner.for_url(endpoint.url, region=endpoint.region, service="sqs")
        self._connection: http.client.HTTPConnection | None = None

    def change_visibility_batch(
        self,
        queue_url: str,
        entries: Sequence[tuple[str, str, int]],
        credentials: FrozenCredentials,
        *,
        timeout: float,
    ) -> BatchResult:
        """One call; `timeout` bounds each connect and read. Raises the framework's errors."""
        body = json.dumps(
            {
                "QueueUrl": queue_url,
                "Entries": [
                    {"Id": id_, "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                    for id_, handle, seconds in entries
                ],
            },
            separators=(",", ":"),
        ).encode()
        headers = self._signer.sign(
            {"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"AmazonSQS.{OPERATION}"},
            body,
            credentials,
            at=time.time(),
        )
        import http.client  # only once the loop is blocked: kept off the import path

        try:
            connection = self._connect(timeout)
            connection.request("POST", self._path, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()  # a fresh connection for the next call
            raise TransientSQSError(
                f"{OPERATION} could not reach SQS at {self._endpoint.url}: {exc!r}",
                operation=OPERATION,
            ) from exc
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = None
        if response.status == 200 and isinstance(payload, dict):
            return BatchResult.from_response(payload)
        if response.status == 200:
            raise TransientSQSError(
                f"{OPERATION}: SQS answered 200 with a body that is not JSON", operation=OPERATION
            )
        headers_in = {name.lower(): value for name, value in response.getheaders()}
        code, detail = error_code(response.status, headers_in, payload, raw)
        raise sqs_error(
            code,
            response.status,
            detail,
            operation=OPERATION,
            endpoint=self._endpoint,
            queue=queue_url,
        )

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        import http.client

        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=ssl_context(os.environ)
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=timeout
                )
        self._connection.timeout = timeout
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout)
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
