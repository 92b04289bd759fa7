"""Fixtures: one real SQS-protocol server per session, fresh queues per test.

The server is moto's unless ``AIOSQSWORKER_TEST_SERVER=ministack`` chooses ministack
(see `tests/servers.py`); either way the tests talk to it over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from aiosqsworker import App
from aiosqsworker.testing import LOCAL_CREDENTIALS, LocalSQSServer

from .kit import REGION, SQSKit, open_kit
from .servers import new_server


@pytest.fixture(scope="session")
def sqs_server() -> Iterator[LocalSQSServer]:
    with new_server() as server:
        yield server


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own AWS configuration."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aiosqsworker-tests")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aiosqsworker-tests")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
async def sqs(sqs_server: LocalSQSServer, request: pytest.FixtureRequest) -> AsyncIterator[SQSKit]:
    async with open_kit(sqs_server.endpoint_url, request.node.name) as kit:
        yield kit


@pytest.fixture
def make_app(sqs_server: LocalSQSServer) -> Callable[..., App]:
    def make(**options: Any) -> App:
        options.setdefault("region", REGION)
        options.setdefault("endpoint_url", sqs_server.endpoint_url)
        options.setdefault("shutdown_timeout", 10)
        return App(**options)

    return make
