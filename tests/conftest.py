"""Fixtures: one real SQS-protocol server per session, fresh queues per test.

The server is moto's unless ``AIOSQSWORKER_TEST_SERVER=ministack`` chooses ministack
(see `tests/servers.py`); either way the tests talk to it over HTTP.

A scenario marked ``also_in_memory`` runs twice: against the server (``[server]``) and
against a fresh `MemorySQS` (``[memory]``), through the same `sqs` and `make_app` fixtures, so
that the in-memory SQS is held to the semantics the server shows. (Under ministack it runs
against the server only.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from aiosqsworker import App
from aiosqsworker.testing import LOCAL_CREDENTIALS, LocalSQSServer, MemorySQS

from .kit import REGION, SQSKit, memory_kit, open_kit
from .servers import new_server, server_kind

BACKENDS = ("server", "memory")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "also_in_memory: run the scenario on the in-memory SQS too (see conftest)"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if (
        "backend" in metafunc.fixturenames
        and metafunc.definition.get_closest_marker("also_in_memory")
        and server_kind() == "moto"
    ):
        metafunc.parametrize("backend", BACKENDS)


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
def backend() -> str:
    """What `sqs` and `make_app` talk to: the test server, unless parametrized."""
    return "server"


@pytest.fixture
def memory_sqs() -> MemorySQS:
    return MemorySQS()


@pytest.fixture
async def sqs(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[SQSKit]:
    if backend == "memory":
        yield memory_kit(request.getfixturevalue("memory_sqs"), request.node.name)
        return
    server: LocalSQSServer = request.getfixturevalue("sqs_server")
    async with open_kit(server.endpoint_url, request.node.name) as kit:
        yield kit


@pytest.fixture
def make_app(backend: str, request: pytest.FixtureRequest) -> Callable[..., App]:
    if backend == "memory":
        memory: MemorySQS = request.getfixturevalue("memory_sqs")

        def make_in_memory(**options: Any) -> App:
            assert not {"region", "endpoint_url", "client"} & set(options), (
                f"make_app({options}) needs the test server: leave the scenario unmarked"
            )
            options.setdefault("shutdown_timeout", 10)
            return App(client=memory, **options)

        return make_in_memory
    server: LocalSQSServer = request.getfixturevalue("sqs_server")

    def make(**options: Any) -> App:
        options.setdefault("region", REGION)
        options.setdefault("endpoint_url", server.endpoint_url)
        options.setdefault("shutdown_timeout", 10)
        return App(**options)

    return make
