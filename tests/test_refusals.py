"""What the server, or whatever stands in front of it, refuses: signatures and 403 pages."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Literal

import anyio
import pytest

from aiosqsworker import AccessDeniedError, App, Message
from aiosqsworker.testing import Answer, FaultProxy, LocalSQSServer, ProxiedRequest

from .kit import REGION, SQSKit

Client = Literal["fast", "botocore"]
CLIENTS = [pytest.param("fast", id="fast"), pytest.param("botocore", id="botocore")]
REPO = Path(__file__).resolve().parent.parent


def unshare_unavailable() -> str | None:
    """Why a network namespace of our own cannot be made here, or None."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2)"
    done = subprocess.run(
        ["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True, check=False
    )
    if done.returncode:
        return f"user and network namespaces are not available: {done.stderr.decode().strip()}"
    return None


@pytest.mark.parametrize("client", CLIENTS)
def test_an_endpoint_written_with_its_default_port_is_signed_as_sent(client: Client) -> None:
    """``endpoint_url="http://127.0.0.1:80"``, behind a proxy that checks signatures as SQS
    does (port 80 is bound in a network namespace of the test's own, `unshare -rn`).

    Naive code it catches: the fast path signing the endpoint's netloc as written
    (``127.0.0.1:80``) where aiohttp sends ``Host: 127.0.0.1``: every ReceiveMessage refused
    with SignatureDoesNotMatch; the lease keeper's thread's connection signing one host and
    sending another. tests/test_fast_path.py checks the signer against botocore's where no
    namespace can be made.
    """
    reason = unshare_unavailable()
    if reason is not None:
        pytest.skip(reason)
    script = 'ip link set lo up && exec "$0" -m tests.apps.default_port "$1"'
    done = subprocess.run(
        ["unshare", "-rn", "sh", "-c", script, sys.executable, client],
        cwd=REPO,
        capture_output=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.decode().strip().splitlines()
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert lines, done.stderr.decode()[-3000:]
    result = json.loads(lines[-1])
    assert result == {
        "handled": 5,
        "checked": result["checked"],
        "mismatches": 0,
        "error": "",
        "lease_thread_call": "extended",
    }
    assert result["checked"] >= 3  # GetQueueUrl, ReceiveMessage, DeleteMessageBatch at least


class ForbiddingProxy(FaultProxy):
    """A proxy in front of SQS that refuses ReceiveMessage with its own HTML page."""

    async def forward(self, request: ProxiedRequest) -> Answer:
        if request.action != "ReceiveMessage":
            return await super().forward(request)
        page = b"<html><head><title>403 Forbidden</title></head><body>Denied by policy</body>"
        return Answer(403, "Forbidden", [("Content-Type", "text/html")], page)


@pytest.mark.parametrize("client", CLIENTS)
async def test_a_403_page_that_is_not_sqs_stops_the_worker_saying_so(
    client: Client,
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A proxy answers ReceiveMessage with a 403 and an HTML body (no AWS error code).

    The worker stops within seconds with an `AccessDeniedError` that says the answer is not
    SQS's and shows the page, instead of polling for ever.

    Naive code it catches: a 403 without one of SQS's codes classified by its code alone
    (``HTTP403``: a plain `SQSError`, retried with back-off for ever, logging ``HTTP403: ``
    with an empty message).
    """
    caplog.set_level(logging.WARNING)
    queue = await sqs.create_queue()
    async with ForbiddingProxy(sqs_server.endpoint_url) as proxy:
        app = App(region=REGION, endpoint_url=proxy.url, client=client, shutdown_timeout=5)

        @app.consumer(queue.name, wait_time=1)
        async def handle(message: Message) -> None:
            pass

        with pytest.raises(AccessDeniedError) as raised, anyio.fail_after(30):
            await app.run()
    message = str(raised.value)
    assert "HTTP 403" in message
    assert "not SQS's" in message
    assert "proxy" in message
    assert proxy.requests["ReceiveMessage"] <= 2  # refused once per poller: no retries
    if client == "fast":
        assert "Denied by policy" in message
    stops = [r for r in caplog.records if "stopping the worker" in r.getMessage()]
    assert len(stops) == 1
