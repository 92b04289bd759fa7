"""A worker behind an endpoint written with its default port, ``http://127.0.0.1:80``.

Run by tests/test_refusals.py inside a network namespace of its own (``unshare -rn``), where
port 80 may be bound without privileges: it starts the test server (moto, or ministack by
``AIOSQSWORKER_TEST_SERVER``), puts `SignatureCheckingProxy` on port 80 in front of it, and
runs an app of the client given (``fast`` or ``botocore``) until five messages are deleted,
then extends one more message through the lease keeper's thread's own connection
(`BlockingVisibilityCalls`). It prints one JSON line: what was handled, how many signatures
did not match, and how the thread's call went.

`SignatureCheckingProxy` checks each request's SigV4 signature as SQS does, over the request
as it arrived (its Host header included), with botocore's signer as the reference, and
answers a mismatch as SQS does (403 ``SignatureDoesNotMatch``); the servers alone do not
check signatures.
"""

from __future__ import annotations

import json
import re
import sys

import anyio
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from aiosqsworker import App, Message
from aiosqsworker._sqs.blocking import BlockingVisibilityCalls
from aiosqsworker._sqs.errors import Endpoint
from aiosqsworker._sqs.sigv4 import FrozenCredentials
from aiosqsworker.testing import LOCAL_CREDENTIALS, Answer, FaultProxy, ProxiedRequest

from ..kit import REGION, Queue, SQSKit, eventually, open_kit
from ..servers import new_server

_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), "
    r"Signature=(?P<signature>[0-9a-f]+)"
)


def expected_signature(request: ProxiedRequest, secret: str) -> str | None:
    """botocore's signature of `request` as it arrived; None when it carries no SigV4."""
    found = _AUTHORIZATION.fullmatch(request.headers.get("authorization", ""))
    if found is None:
        return None
    signed = found["signed"].split(";")
    headers = {name: request.headers.get(name, "") for name in signed}
    url = f"http://{request.headers.get('host', '')}{request.path}"
    aws_request = AWSRequest(method=request.method, url=url, data=request.body, headers=headers)
    aws_request.context["timestamp"] = request.headers.get("x-amz-date", "")
    token = request.headers.get("x-amz-security-token")
    signer = SigV4Auth(Credentials(found["key"], secret, token), found["service"], found["region"])
    canonical = signer.canonical_request(aws_request)
    return str(signer.signature(signer.string_to_sign(aws_request, canonical), aws_request))


class SignatureCheckingProxy(FaultProxy):
    """Answers a request whose signature does not match what arrived as SQS would."""

    def __init__(self, upstream: str, *, port: int = 0) -> None:
        super().__init__(upstream, port=port)
        self.mismatches = 0
        self.checked = 0

    async def forward(self, request: ProxiedRequest) -> Answer:
        found = _AUTHORIZATION.fullmatch(request.headers.get("authorization", ""))
        expected = expected_signature(request, LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        self.checked += 1
        if found is None or expected != found["signature"]:
            self.mismatches += 1
            body = {
                "__type": "com.amazon.coral.service#SignatureDoesNotMatch",
                "message": "The request signature we calculated does not match the signature "
                "you provided.",
            }
            return Answer(
                403,
                "Forbidden",
                [
                    ("Content-Type", "application/x-amz-json-1.0"),
                    ("x-amzn-query-error", "SignatureDoesNotMatch;Sender"),
                ],
                json.dumps(body).encode(),
            )
        return await super().forward(request)


async def lease_thread_call(sqs: SQSKit, queue: Queue) -> str:
    """One extension through the lease keeper's thread's own connection and signer."""
    await sqs.send(queue, ['{"n": "extended"}'])
    [message] = await sqs.receive(queue, max_messages=1, wait_time=5)
    calls = BlockingVisibilityCalls(Endpoint(region=REGION, url="http://127.0.0.1:80"))
    credentials = FrozenCredentials(
        LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"], LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    )
    entries = [("0", message["ReceiptHandle"], 60)]
    try:
        result = await anyio.to_thread.run_sync(
            lambda: calls.change_visibility_batch(queue.url, entries, credentials, timeout=10)
        )
    except Exception as exc:  # reported to the test
        return f"{type(exc).__name__}: {exc}"
    finally:
        calls.close()
    return "extended" if list(result.successful) == ["0"] else f"not extended: {result}"


async def main(client: str) -> None:
    with new_server() as server:
        async with (
            open_kit(server.endpoint_url, "default-port") as sqs,
            SignatureCheckingProxy(server.endpoint_url, port=80) as proxy,
        ):
            queue = await sqs.create_queue()
            await sqs.send(queue, [json.dumps({"n": n}) for n in range(5)])
            handled: list[str] = []
            app = App(
                region=REGION,
                endpoint_url="http://127.0.0.1:80",
                client=client,  # type: ignore[arg-type]
                shutdown_timeout=5,
            )

            @app.consumer(queue.name, wait_time=1)
            async def handle(message: Message) -> None:
                handled.append(message.message_id)

            error = ""
            try:
                with anyio.fail_after(30):
                    async with app:
                        await eventually(lambda: app.statistics()["handle"].deleted >= 5)
            except Exception as exc:  # reported to the test
                error = f"{type(exc).__name__}: {exc}"
            result = {
                "handled": len(handled),
                "checked": proxy.checked,
                "mismatches": proxy.mismatches,
                "error": error,
                "lease_thread_call": await lease_thread_call(sqs, queue),
            }
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
