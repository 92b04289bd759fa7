"""Opening a client: region, credentials and endpoint by AWS's usual rules, checked early.

`open_sqs_client` fails at start on a missing region or credentials with a message that
says what to set, and returns the fast client unless `ClientSettings.client` asks for another.
What these functions read of the app's settings is `ClientSettings`, declared here: `_sqs/`
imports nothing above it, and `AppConfig` is what every caller hands them.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from .._errors import (
    ConfigurationError,
    CredentialsError,
)
from .awsconfig import ENDPOINT_VARIABLES, plain_settings
from .base import QueueAdmin, SQSClient
from .credentials import CredentialSource
from .errors import Endpoint
from .lean import LeanSQSClient, SigningCredentials, StaticCredentials
from .payloads import PayloadStore

if TYPE_CHECKING:
    from aiobotocore.session import AioSession

    from .botocore import AioBotocoreSQSClient

# aiobotocore, botocore and aiohttp load only when a client needs them (a quarter of a
# second of start-up): the lean client with plain settings needs none of them.

__all__ = [
    "ENDPOINT_VARIABLES",
    "ClientSettings",
    "open_payload_store",
    "open_queue_admin",
    "open_s3_client",
    "open_sqs_client",
    "s3_endpoint_problem",
]

URL_SCHEMES = ("http://", "https://")


class ClientSettings(Protocol):
    """The settings opening a client reads (an `AppConfig` has them all, and more)."""

    @property
    def client(self) -> str | SQSClient:
        """``"fast"``, ``"botocore"`` or ``"aiohttp"``, or an instance used as it is."""

    @property
    def region(self) -> str | None: ...

    @property
    def endpoint_url(self) -> str | None: ...

    @property
    def profile(self) -> str | None: ...

    @property
    def s3_endpoint_url(self) -> str | None: ...

    @property
    def credentials_outage_limit(self) -> float:
        """Seconds the credentials may stay impossible to fetch or refresh before the calls
        that need them fail (`CredentialSource`'s `outage_limit`)."""


def _resolve_region(session: AioSession, config: ClientSettings) -> str:
    region = config.region or os.environ.get("AWS_REGION") or session.get_config_variable("region")
    if not region:
        raise ConfigurationError(
            "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION), add a region to "
            "your AWS profile, or pass region=... to App / --region to the CLI"
        )
    return str(region)


def _check_environment_endpoint(session: AioSession, config: ClientSettings) -> None:
    """Refuse an endpoint variable botocore would reject with a bare ValueError."""
    if config.endpoint_url is not None or session.get_config_variable(
        "ignore_configured_endpoint_urls"
    ):
        return
    for name in ENDPOINT_VARIABLES:
        value = os.environ.get(name)
        if value:
            if not value.startswith(URL_SCHEMES):
                raise ConfigurationError(
                    f"{name}={value!r} is invalid: it must start with http:// or https:// "
                    f"(for a local server: {name}=http://{value})"
                )
            return


def _session(config: ClientSettings) -> AioSession:
    from aiobotocore.session import get_session

    session = get_session()
    if config.profile:
        session.set_config_variable("profile", config.profile)
    return session


async def _open_base_client(
    stack: AsyncExitStack,
    config: ClientSettings,
    *,
    max_connections: int,
    longest_wait: int,
) -> tuple[AioBotocoreSQSClient, CredentialSource]:
    """The aiobotocore client's wrapper (the client closed by `stack`) and the source of the
    session's credentials it shares, failing early on a missing region or credentials."""
    from aiobotocore.config import AioConfig
    from botocore.exceptions import (
        CredentialRetrievalError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    from .botocore import AioBotocoreSQSClient

    try:
        session = _session(config)
        region = _resolve_region(session, config)
        _check_environment_endpoint(session, config)
        credentials = await session.get_credentials()
    except ProfileNotFound as exc:
        raise ConfigurationError(f"{exc}: check AWS_PROFILE or profile=") from exc
    except (PartialCredentialsError, CredentialRetrievalError) as exc:
        # botocore's own text says what is missing; its traceback would only hide it.
        raise CredentialsError(
            f"the AWS credentials in use are incomplete or could not be loaded ({exc}). Set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile with AWS_PROFILE, "
            "or run with an IAM role"
        ) from None
    client_config = AioConfig(
        # The read timeout must outlast the long poll, or every idle poll would fail.
        read_timeout=longest_wait + 15,
        connect_timeout=10,
        max_pool_connections=max_connections,
        retries={"mode": "standard", "total_max_attempts": 3},
        user_agent_extra="aiosqsworker",
    )
    try:
        client = await stack.enter_async_context(
            session.create_client(
                "sqs", region_name=region, endpoint_url=config.endpoint_url, config=client_config
            )
        )
    except ValueError as exc:  # botocore's "Invalid endpoint: ...", from the AWS config file
        raise ConfigurationError(
            f"{exc}: an SQS endpoint must start with http:// or https://. Check endpoint_url "
            "in the AWS config file of the profile in use"
        ) from None
    endpoint = Endpoint(region=region, url=client.meta.endpoint_url)
    if credentials is None:
        raise CredentialsError(
            f"no AWS credentials found for SQS at region {region}, endpoint {endpoint.url}. "
            "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile with "
            "AWS_PROFILE, or run with an IAM role"
        )
    source = CredentialSource(credentials, outage_limit=config.credentials_outage_limit)
    stack.callback(source.close)
    return AioBotocoreSQSClient(client, endpoint, source), source


async def open_sqs_client(
    stack: AsyncExitStack,
    config: ClientSettings,
    *,
    max_connections: int,
    longest_wait: int,
) -> SQSClient:
    """Create the client (closed by `stack`), failing early on missing region or credentials.

    A client instance in `config.client` is used as it is, neither opened nor closed here.
    """
    if not isinstance(config.client, str):
        return config.client
    if config.client == "fast":
        return await _open_lean_client(
            stack, config, max_connections=max_connections, longest_wait=longest_wait
        )
    base_client, credentials = await _open_base_client(
        stack, config, max_connections=max_connections, longest_wait=longest_wait
    )
    if config.client == "botocore":
        return base_client
    import aiohttp

    from .fast import FastSQSClient

    http = await stack.enter_async_context(
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=longest_wait + 15),
            skip_auto_headers=("User-Agent",),
            # SQS sets no cookies; the default jar filters its (empty) contents per request.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
    )
    return FastSQSClient(base_client, credentials, http)


async def _open_lean_client(
    stack: AsyncExitStack,
    config: ClientSettings,
    *,
    max_connections: int,
    longest_wait: int,
) -> LeanSQSClient:
    """The lean client; botocore only resolves what the plain settings cannot tell."""
    plain = plain_settings(
        os.environ, region=config.region, endpoint_url=config.endpoint_url, profile=config.profile
    )
    credentials: SigningCredentials
    if plain is not None:
        endpoint = Endpoint(region=plain.region, url=plain.endpoint_url)
        credentials = StaticCredentials(plain.credentials)
    else:
        # botocore's chain, through the same outage-bounded source as the other clients.
        base_client, credentials = await _open_base_client(
            stack, config, max_connections=1, longest_wait=longest_wait
        )
        endpoint = base_client.endpoint
    client = LeanSQSClient(
        endpoint,
        credentials,
        max_connections=max_connections,
        # The read time box must outlast the long poll, or every idle poll would fail.
        read_timeout=longest_wait + 15,
    )
    stack.push_async_callback(client.close)
    return client


async def open_queue_admin(stack: AsyncExitStack, config: ClientSettings) -> QueueAdmin:
    """A client for the calls that make and remove queues (closed by `stack`)."""
    admin, _ = await _open_base_client(stack, config, max_connections=4, longest_wait=1)
    return admin


def open_payload_store(
    stack: AsyncExitStack, config: ClientSettings, *, max_connections: int
) -> PayloadStore:
    """A `PayloadStore` whose S3 client opens on first use and is closed by `stack`.

    Nothing is loaded (not even botocore) or checked here: the SQS client, opened first, has
    checked the region and the credentials (credential chain, profile, region).
    """

    async def open_client() -> object:
        return await open_s3_client(stack, config, max_connections=max_connections)

    return PayloadStore(open_client)


async def open_s3_client(
    stack: AsyncExitStack, config: ClientSettings, *, max_connections: int
) -> Any:
    """An aiobotocore S3 client (closed by `stack`) at `config.s3_endpoint_url`, else where
    botocore finds one (``AWS_ENDPOINT_URL_S3``, ...)."""
    from aiobotocore.config import AioConfig

    session = _session(config)
    client_config = AioConfig(
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=max_connections,
        retries={"mode": "standard", "total_max_attempts": 3},
        user_agent_extra="aiosqsworker",
    )
    client = await stack.enter_async_context(
        session.create_client(
            "s3",
            region_name=_resolve_region(session, config),
            endpoint_url=config.s3_endpoint_url,
            config=client_config,
        )
    )
    problem = s3_endpoint_problem(_sqs_endpoint(config), str(client.meta.endpoint_url))
    if problem:
        raise ConfigurationError(problem)
    return client


def _sqs_endpoint(config: ClientSettings) -> str | None:
    """The SQS endpoint given (the App's, else the environment's), or None for AWS's."""
    if config.endpoint_url:
        return config.endpoint_url
    return next((os.environ[name] for name in ENDPOINT_VARIABLES if os.environ.get(name)), None)


def s3_endpoint_problem(sqs_endpoint: str | None, s3_endpoint: str) -> str | None:
    """Why S3 calls would go astray: to AWS's S3 while SQS is a server of one's own (a local
    server's export line without AWS_ENDPOINT_URL_S3). Every payload call would fail on and on
    (or, with AWS credentials, touch a real bucket), so it is one error, at once."""
    if sqs_endpoint is None:
        return None
    sqs_host = urlsplit(sqs_endpoint).hostname or ""
    s3_host = urlsplit(s3_endpoint).hostname or ""
    if sqs_host.endswith(".amazonaws.com") or not s3_host.endswith(".amazonaws.com"):
        return None
    return (
        f"SQS is at {sqs_endpoint} but S3 at AWS's {s3_endpoint}: set AWS_ENDPOINT_URL_S3 "
        f"(or s3_endpoint_url=) to your S3 server; local-server serves S3 on its SQS port "
        f"(AWS_ENDPOINT_URL_S3={sqs_endpoint})"
    )
