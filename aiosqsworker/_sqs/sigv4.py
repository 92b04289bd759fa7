"""AWS Signature Version 4 for the fast path's JSON POSTs.

botocore's signer rebuilds everything for every request (about 140 µs). The hot SQS calls
all look alike, so `RequestSigner` keeps what repeats: the signing key (derived once per day
and region), the timestamp (formatted once per second), and the canonical form of each set of
headers (the same few per action). What is left per request is two SHA-256 digests and one
HMAC. tests/test_fast_path.py checks the signatures against botocore's own `SigV4Auth` for
the same request and second.

The Host header is signed and sent as one value (`host_header`, botocore's rule: lower case,
no default port): a URL written ``http://host:80`` is sent by aiohttp as ``Host: host``, and a
signature over ``host:80`` would not match.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

__all__ = ["FrozenCredentials", "RequestSigner", "host_header"]

ALGORITHM = "AWS4-HMAC-SHA256"
_DATE_HEADER = "x-amz-date"
_TOKEN_HEADER = "x-amz-security-token"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def host_header(url: str) -> str:
    """The Host header of requests to `url`: its host in lower case, IPv6 in brackets, the
    port only when it is not the scheme's default (as botocore signs it)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


@dataclass(frozen=True, slots=True)
class FrozenCredentials:
    access_key: str
    secret_key: str
    token: str | None = None


@lru_cache(maxsize=16)
def _signing_hmac(secret_key: str, day: str, region: str, service: str) -> hmac.HMAC:
    """An HMAC keyed with the day's signing key, copied for each request (a fresh HMAC
    costs more than the digest itself: OpenSSL looks the algorithm up every time)."""
    key = hmac.digest(f"AWS4{secret_key}".encode(), day.encode(), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return hmac.new(key, digestmod=hashlib.sha256)


@dataclass(frozen=True, slots=True)
class _HeaderTemplate:
    """The canonical headers of one set of headers, around the timestamp that changes."""

    before_date: str  # canonical lines of the names sorting before x-amz-date
    after_date: str  # ... and after it (the token among them)
    signed_headers: str  # "content-type;host;x-amz-date;x-amz-target"


@lru_cache(maxsize=64)
def _header_template(
    headers: tuple[tuple[str, str], ...], host: str, token: str | None
) -> _HeaderTemplate:
    canonical = {name.lower(): " ".join(value.split()) for name, value in headers}
    canonical["host"] = host
    if token:
        canonical[_TOKEN_HEADER] = token
    names = sorted({*canonical, _DATE_HEADER})
    return _HeaderTemplate(
        before_date="".join(f"{n}:{canonical[n]}\n" for n in names if n < _DATE_HEADER),
        after_date="".join(f"{n}:{canonical[n]}\n" for n in names if n > _DATE_HEADER),
        signed_headers=";".join(names),
    )


class RequestSigner:
    """Signs POSTs to one endpoint (`host`, `path`) for one region and service."""

    def __init__(self, *, host: str, path: str, region: str, service: str) -> None:
        self._host = host
        self._path = path or "/"
        self._region = region
        self._service = service
        self._second = -1
        self._amz_date = ""

    @classmethod
    def for_url(cls, url: str, *, region: str, service: str) -> RequestSigner:
        """A signer for POSTs to `url` (the endpoint, with its path)."""
        path = urlsplit(url).path.rstrip("/") + "/"
        return cls(host=host_header(url), path=path, region=region, service=service)

    def sign(
        self,
        headers: Mapping[str, str],
        body: bytes,
        credentials: FrozenCredentials,
        *,
        at: float | None = None,
    ) -> dict[str, str]:
        """The headers to send: `headers` plus Host, X-Amz-Date, the token if any, and
        Authorization.

        Every header given is signed, with ``host``, which is sent as signed. `at` is the
        signing time in seconds since the epoch (now by default).
        """
        second = int(time.time() if at is None else at)
        if second != self._second:
            self._second = second
            self._amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        amz_date = self._amz_date
        day = amz_date[:8]
        template = _header_template(tuple(headers.items()), self._host, credentials.token)
        canonical_request = (
            f"POST\n{self._path}\n\n"
            f"{template.before_date}{_DATE_HEADER}:{amz_date}\n{template.after_date}\n"
            f"{template.signed_headers}\n{hashlib.sha256(body).hexdigest()}"
        )
        scope = f"{day}/{self._region}/{self._service}/aws4_request"
        string_to_sign = (
            f"{ALGORITHM}\n{amz_date}\n{scope}\n"
            f"{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        )
        signer = _signing_hmac(credentials.secret_key, day, self._region, self._service).copy()
        signer.update(string_to_sign.encode())
        signature = signer.hexdigest()
        result = dict(headers)
        result["Host"] = self._host
        result["X-Amz-Date"] = amz_date
        if credentials.token:
            result["X-Amz-Security-Token"] = credentials.token
        result["Authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={template.signed_headers}, Signature={signature}"
        )
        return result
