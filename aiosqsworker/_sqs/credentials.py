"""Credentials for signing: botocore's chain, one fetch at a time, an outage bounded.

botocore's refreshable credentials (a container or instance role, an assumed role, SSO)
refresh themselves inside any call that needs them. When their source is down, a refresh in
the credentials' last ten minutes raises what the provider raised (`CredentialRetrievalError`
from the container endpoint, a connection error from STS), and every call waiting behind
botocore's refresh lock then tries the fetch again in turn, each taking seconds (the
container provider retries three times). `CredentialSource` is the one boundary around that,
shared by both clients:

- one fetch at a time, its outcome shared by every call that waits for it;
- a failed fetch is a `CredentialsUnavailableError` (transient, and nothing was sent); for a
  short pause after it (`fetch_pause`) calls fail at once without fetching again;
- an outage that has lasted `outage_limit` seconds with no fetch succeeding is a
  `CredentialsError`, which stops a worker with a line saying where the credentials come
  from and what to check (`outage_error`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import CredentialsError, CredentialsUnavailableError, SQSError
from .sigv4 import FrozenCredentials

if TYPE_CHECKING:  # asyncio is imported by the first refresh: not by `@consumer` definitions
    import asyncio

__all__ = ["DEFAULT_OUTAGE_LIMIT", "CredentialOutage", "CredentialSource", "fetch_pause"]

#: How long a credentials outage is ridden out before it stops a worker (seconds).
DEFAULT_OUTAGE_LIMIT = 300.0

#: Where each of botocore's credential providers gets its credentials, to say what to check.
_SOURCES = {
    "container-role": "the container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI "
    "or AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)",
    "iam-role": "the instance metadata service and the instance's IAM role",
    "assume-role": "STS and the role the profile assumes (role_arn)",
    "assume-role-with-web-identity": "STS, AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE",
    "sso": "the SSO session of the profile (aws sso login)",
    "custom-process": "the profile's credential_process",
}


def fetch_pause(failures: int) -> float:
    """How long after `failures` failed fetches in a row calls fail without fetching again:
    0.5 s doubling to 5 s, so that a hundred waiting calls cost one fetch, not a hundred."""
    return min(5.0, 0.5 * 2.0 ** max(0, failures - 1))


@dataclass(slots=True)
class CredentialOutage:
    """Failed fetches in a row, since `since` (a monotonic time), the last one's `error`."""

    since: float
    failures: int
    error: str
    retry_at: float

    @classmethod
    def begin(cls, started: float, now: float, error: str) -> CredentialOutage:
        """The first fetch that failed, started at `started`, failed at `now`."""
        return cls(since=started, failures=1, error=error, retry_at=now + fetch_pause(1))

    def failed_again(self, now: float, error: str) -> None:
        self.failures += 1
        self.error = error
        self.retry_at = now + fetch_pause(self.failures)

    def persisted(self, now: float, limit: float) -> bool:
        """Whether the outage has lasted the limit: no more a transient error."""
        return now - self.since >= limit


def outage_error(
    outage: CredentialOutage, now: float, *, method: str, limit: float, operation: str | None
) -> SQSError:
    """The error a call gets during an outage: transient until it has lasted `limit`."""
    lasted = now - outage.since
    source = _SOURCES.get(method, "the credentials source of the profile in use")
    if outage.persisted(now, limit):
        return CredentialsError(
            f"could not fetch AWS credentials ({method}) for {lasted:.0f} s, the "
            f"credentials_outage_limit of {limit:g} s: {outage.error}. Check {source}; "
            "raise credentials_outage_limit to ride out longer outages",
            operation=operation,
        )
    return CredentialsUnavailableError(
        f"could not fetch AWS credentials ({method}) for {lasted:.1f} s, retrying (a worker "
        f"stops after credentials_outage_limit={limit:g} s): {outage.error}",
        operation=operation,
    )


class CredentialSource:
    """Frozen credentials for each request, from a botocore credentials object.

    `credentials` is the session's own (`AioSession.get_credentials()`), the object
    botocore's client signs with, so that a refresh here serves both clients.
    """

    def __init__(
        self,
        credentials: Any,
        *,
        outage_limit: float = DEFAULT_OUTAGE_LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._credentials = credentials
        self._outage_limit = outage_limit
        self._clock = clock
        self._refresh_needed: Callable[[], bool] | None = getattr(
            credentials, "refresh_needed", None
        )
        self._fetch: asyncio.Task[FrozenCredentials | None] | None = None
        self._outage: CredentialOutage | None = None

    @property
    def method(self) -> str:
        """botocore's name of where the credentials come from (``container-role``, ``env``)."""
        return str(getattr(self._credentials, "method", None) or "unknown")

    async def frozen(self, operation: str | None = None) -> FrozenCredentials:
        """The credentials to sign `operation` with, refreshed if due.

        Raises `CredentialsUnavailableError` while their source is down, `CredentialsError`
        once that has lasted the outage limit.
        """
        if self._fetch is None and self._outage is None and not self._due():
            return await self._get()  # botocore's cached credentials: no I/O
        import asyncio

        if self._fetch is None:
            outage = self._outage
            now = self._clock()
            if outage is not None and now < outage.retry_at:
                raise self._error(outage, now, operation)
            self._fetch = asyncio.ensure_future(self._fetch_once())
        # Shielded: a caller that gives up (its call timed out) leaves the fetch to the others.
        frozen = await asyncio.shield(self._fetch)
        if frozen is not None:
            return frozen
        assert self._outage is not None
        raise self._error(self._outage, self._clock(), operation)

    def close(self) -> None:
        """Cancel a fetch under way (the client is closing)."""
        if self._fetch is not None:
            self._fetch.cancel()

    def _due(self) -> bool:
        return self._refresh_needed is not None and self._refresh_needed()

    def _error(self, outage: CredentialOutage, now: float, operation: str | None) -> SQSError:
        return outage_error(
            outage, now, method=self.method, limit=self._outage_limit, operation=operation
        )

    async def _get(self) -> FrozenCredentials:
        frozen = self._credentials.get_frozen_credentials()
        if hasattr(frozen, "__await__"):
            frozen = await frozen
        return FrozenCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    async def _fetch_once(self) -> FrozenCredentials | None:
        """One fetch; None when it failed (recorded in the outage)."""
        started = self._clock()
        try:
            frozen = await self._get()
        # Whatever the provider raised: this call does nothing but fetch credentials.
        except Exception as exc:  # noqa: BLE001
            now = self._clock()
            error = f"{type(exc).__name__}: {exc}"
            if self._outage is None:
                self._outage = CredentialOutage.begin(started, now, error)
            else:
                self._outage.failed_again(now, error)
            return None
        finally:
            self._fetch = None
        self._outage = None
        return frozen
