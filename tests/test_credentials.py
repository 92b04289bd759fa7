"""Credentials that come and go: a credentials endpoint down for a while, or for good.

The worker's credentials come from botocore's chain; here, from the container provider
(``AWS_CONTAINER_CREDENTIALS_FULL_URI``) pointed at `CredentialsEndpoint`, a small HTTP
server on 127.0.0.1 that hands out temporary credentials expiring in five minutes (inside
botocore's mandatory refresh window, so every call refreshes them) and can be switched to
fail. The SQS server is the real test server; both clients run each scenario.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Literal, Self

import anyio
import pytest
from aiohttp import web

from aiosqsworker import App, CredentialsError, CredentialsUnavailableError, Message
from aiosqsworker._sqs.credentials import (
    CredentialOutage,
    CredentialSource,
    fetch_pause,
    outage_error,
)
from aiosqsworker.testing import LOCAL_CREDENTIALS, LocalSQSServer

from .kit import REGION, SQSKit, eventually

Client = Literal["fast", "botocore"]
CLIENTS = [pytest.param("fast", id="fast"), pytest.param("botocore", id="botocore")]


class CredentialsEndpoint:
    """A container credentials endpoint on 127.0.0.1 whose answers can be switched off."""

    def __init__(self, *, lifetime: float = 300.0) -> None:
        self.lifetime = lifetime
        self.up = True
        self.served = 0
        self.refused = 0
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _credentials(self, request: web.Request) -> web.Response:
        if not self.up:
            self.refused += 1
            return web.Response(status=503, text="credentials endpoint unavailable")
        self.served += 1
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=self.lifetime)
        body = {
            "AccessKeyId": "ASIATESTCONTAINER",
            "SecretAccessKey": "container-secret",
            "Token": f"token-{self.served}",
            "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/credentials", self._credentials)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/credentials"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


@pytest.fixture
async def credentials_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[CredentialsEndpoint]:
    """The endpoint, running, and the only credentials botocore's chain finds."""
    async with CredentialsEndpoint() as endpoint:
        for name in LOCAL_CREDENTIALS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint.url)
        yield endpoint


def worker_stops(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "stopping the worker" in r.getMessage()]


@pytest.mark.parametrize("client", CLIENTS)
async def test_credentials_endpoint_down_for_8_s_mid_run_loses_and_repeats_nothing(
    client: Client,
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    credentials_endpoint: CredentialsEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """300 messages; the credentials endpoint fails every request for 8 s after 100.

    The worker keeps running, each message is handled once, every one is deleted.

    Naive code it catches: the fast path letting botocore's `CredentialRetrievalError` out
    of a call (it is no `SQSError`: the task group fails and the worker crashes, its
    in-flight deletes cancelled); the botocore path mapping it to a plain `SQSError` (the
    acker gives the deletes up at once, and those messages are handled twice); an acker that
    counts calls not sent for want of credentials as attempts (six of them go by in about
    3 s of an 8 s outage: deletes given up, messages handled twice).
    """
    caplog.set_level(logging.WARNING)
    queue = await sqs.create_queue()
    ids = set(await sqs.send(queue, [json.dumps({"n": n}) for n in range(300)]))
    seen: Counter[str] = Counter()
    app = App(region=REGION, endpoint_url=sqs_server.endpoint_url, client=client)

    @app.consumer(queue.name, concurrency=10, wait_time=1)
    async def handle(message: Message) -> None:
        seen[message.message_id] += 1
        await anyio.sleep(0.1)

    async with app:
        await eventually(lambda: sum(seen.values()) >= 100, within=60)
        credentials_endpoint.up = False
        await anyio.sleep(8)
        credentials_endpoint.up = True
        await eventually(lambda: app.statistics()["handle"].deleted >= 300, within=90)
    stats = app.statistics()["handle"]
    assert credentials_endpoint.refused > 0, "the outage never met a refresh"
    assert set(seen) == ids
    assert [mid for mid, n in seen.items() if n > 1] == []
    assert (stats.deleted, stats.delete_failures, stats.deletes_unconfirmed) == (300, 0, 0)
    assert await sqs.counts(queue) == (0, 0)
    assert worker_stops(caplog) == []


@pytest.mark.parametrize("client", CLIENTS)
async def test_credentials_endpoint_down_past_the_limit_stops_the_worker_saying_why(
    client: Client,
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    credentials_endpoint: CredentialsEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The endpoint goes down for good; `credentials_outage_limit=3`.

    The worker stops gracefully within seconds of the limit, with one line that names the
    credentials source, what to check and the setting; nothing it had not deleted is lost.

    Naive code it catches: a credentials failure retried for ever (the worker polls, logs
    and handles nothing, never saying that it is stuck); one that stops at the first failed
    refresh (no outage is ridden out); a bare botocore traceback in place of the reason.
    """
    caplog.set_level(logging.WARNING)
    queue = await sqs.create_queue()
    await sqs.send(queue, [json.dumps({"n": n}) for n in range(20)])
    seen: Counter[str] = Counter()
    app = App(
        region=REGION,
        endpoint_url=sqs_server.endpoint_url,
        client=client,
        credentials_outage_limit=3,
        shutdown_timeout=5,
    )

    @app.consumer(queue.name, concurrency=2, wait_time=1)
    async def handle(message: Message) -> None:
        seen[message.message_id] += 1
        await anyio.sleep(0.2)

    async def stop_credentials_after_some() -> None:
        await eventually(lambda: sum(seen.values()) >= 4, within=30)
        credentials_endpoint.up = False

    started = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(stop_credentials_after_some)
        with pytest.raises(CredentialsError) as raised, anyio.fail_after(60):
            await app.run()
    stopped_after = anyio.current_time() - started
    message = str(raised.value)
    assert not isinstance(raised.value, CredentialsUnavailableError)
    assert "container-role" in message
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in message
    assert "credentials_outage_limit" in message
    assert "CredentialRetrievalError" in message  # botocore's own reason, in one line
    assert len(worker_stops(caplog)) == 1, worker_stops(caplog)
    assert stopped_after < 40
    # Nothing lost: what was not deleted is still in the queue (some of it invisible).
    await sqs.assert_holds(queue, 20 - app.statistics()["handle"].deleted)


# The pure parts.


def test_fetch_pause_doubles_to_five_seconds() -> None:
    assert [fetch_pause(n) for n in (1, 2, 3, 4, 5, 9)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_an_outage_is_transient_until_it_has_lasted_the_limit() -> None:
    outage = CredentialOutage.begin(100.0, 102.0, "CredentialRetrievalError: down")
    assert outage.retry_at == 102.5
    outage.failed_again(104.0, "CredentialRetrievalError: still down")
    assert (outage.failures, outage.retry_at) == (2, 105.0)
    early = outage_error(outage, 399.0, method="iam-role", limit=300, operation="ReceiveMessage")
    assert type(early) is CredentialsUnavailableError
    assert "still down" in str(early)
    late = outage_error(outage, 400.0, method="iam-role", limit=300, operation="ReceiveMessage")
    assert type(late) is CredentialsError
    assert "instance metadata" in str(late)
    assert "credentials_outage_limit" in str(late)


class FlakyCredentials:
    """botocore's refreshable credentials' interface, failing while `down`."""

    method = "container-role"

    def __init__(self) -> None:
        self.down = False
        self.fetches = 0

    def refresh_needed(self) -> bool:
        return True

    async def get_frozen_credentials(self) -> object:
        self.fetches += 1
        await anyio.sleep(0.05)
        if self.down:
            raise OSError("connection refused")
        return type("Frozen", (), {"access_key": "a", "secret_key": "s", "token": None})()


async def test_waiting_calls_share_one_fetch_and_a_failure_is_not_retried_at_once() -> None:
    """Twenty calls during an outage cost one fetch; the next ones fail at once until the
    pause is over; the first success ends the outage."""
    now = [0.0]
    flaky = FlakyCredentials()
    source = CredentialSource(flaky, outage_limit=60, clock=lambda: now[0])
    flaky.down = True

    async def call(errors: list[BaseException]) -> None:
        try:
            await source.frozen("ReceiveMessage")
        except CredentialsUnavailableError as exc:
            errors.append(exc)

    errors: list[BaseException] = []
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(call, errors)
    assert (flaky.fetches, len(errors)) == (1, 20)
    await call(errors)
    assert flaky.fetches == 1  # within the pause: not fetched again
    now[0] = 1.0
    flaky.down = False
    assert (await source.frozen()).access_key == "a"
    assert flaky.fetches == 2
