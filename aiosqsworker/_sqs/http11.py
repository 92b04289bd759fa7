"""A small HTTP/1.1 client for one origin: keep-alive connections as asyncio Protocols.

The lean client (`lean.py`) sends a handful of POSTs to one endpoint again and again; a
general-purpose client (aiohttp) spends most of its time on what these never need (redirects,
cookies, multidicts, streaming readers, per-request timer objects). `ConnectionPool` keeps
what they do need:

- keep-alive connections, at most `max_connections`, reused most-recently-used first;
- a response read whole (Content-Length, chunked, or until the server closes);
- TLS by the standard library's ssl for https (AWS_CA_BUNDLE honoured by the caller's
  context), HTTP/1.1 only;
- a proxy as the AWS SDKs use one: a CONNECT tunnel for https, the absolute-form request
  line for http (`proxy_for` reads HTTPS_PROXY / HTTP_PROXY / NO_PROXY);
- a connect time box and a read time box per request; a request given up mid-flight
  (cancelled, timed out) closes its connection, since the answer would arrive on it later.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .sigv4 import host_header

__all__ = ["ConnectionPool", "HttpError", "Origin", "Response", "proxy_for", "ssl_context"]

_MAX_HEAD = 64 * 1024


class HttpError(OSError):
    """The connection failed or the server broke HTTP/1.1: the request's fate is unknown."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names lowercased
    body: bytes


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: scheme, host and port of a URL, and the Host header to send."""

    scheme: str
    host: str
    port: int
    host_header: str

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        # The signer's own rule (no default port, lower case): what is signed is what is sent.
        return cls(parts.scheme, parts.hostname, port, host_header(url))


def ssl_context(environ: Mapping[str, str]) -> ssl.SSLContext:
    """The system's trust store, or the bundle AWS_CA_BUNDLE names, as the SDKs do."""
    bundle = environ.get("AWS_CA_BUNDLE")
    context = ssl.create_default_context(cafile=bundle or None)
    context.set_alpn_protocols(["http/1.1"])
    return context


def _no_proxy_matches(host: str, port: int, no_proxy: str) -> bool:
    """Whether NO_PROXY (comma-separated hosts, domain suffixes, ``*``, CIDR) covers `host`."""
    host = host.lower()
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:
            import ipaddress  # only for CIDR entries

            try:
                if ipaddress.ip_address(host) in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name, _, entry_port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.lstrip(".")
        if host == name or host.endswith("." + name):
            return True
    return False


def proxy_for(origin: Origin, environ: Mapping[str, str]) -> str | None:
    """The proxy URL the AWS SDKs would use for `origin`: HTTPS_PROXY for https, HTTP_PROXY
    for http (upper or lower case), unless NO_PROXY covers the host."""
    names = (
        ("HTTPS_PROXY", "https_proxy") if origin.scheme == "https" else ("HTTP_PROXY", "http_proxy")
    )
    proxy = next((environ[name] for name in names if environ.get(name)), None)
    if not proxy:
        return None
    no_proxy = environ.get("NO_PROXY") or environ.get("no_proxy") or ""
    if _no_proxy_matches(origin.host, origin.port, no_proxy):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[Response] | None = None
        self._buffer = bytearray()
        self._status = 0
        self._headers: dict[str, str] | None = None
        self._length = -1  # -1: read until closed; -2: chunked
        self._head_only = False
        self.keep_alive = True
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        # Looked up once: each lookup is a system call on Python 3.11 (it checks the pid).
        self._loop = asyncio.get_running_loop()

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: a server talking out of turn
            self.close()
            return
        self._buffer += data
        try:
            self._parse()
        except HttpError as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        if self._waiter is not None and self._headers is not None and self._length == -1:
            self._finish(bytes(self._buffer))
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool._forget(self)
        if self._waiter is not None:
            where = "before the response" if self._headers is None else "mid-response"
            self._fail(HttpError(f"the server closed the connection {where}: {exc or 'EOF'}"))

    # Requests
    def request(
        self, data: bytes, read_timeout: float, *, head_only: bool = False
    ) -> asyncio.Future[Response]:
        assert self.transport is not None
        assert self._waiter is None
        loop = self._loop
        self._waiter = waiter = loop.create_future()
        self._buffer.clear()
        self._headers = None
        self._head_only = head_only
        self._timer = loop.call_later(read_timeout, self._timed_out, read_timeout)
        self.transport.write(data)
        return waiter

    def close(self) -> None:
        self.closed = True
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()

    def _timed_out(self, seconds: float) -> None:
        self._timer = None
        self._fail(TimeoutError(f"no complete response within {seconds:g} s"))

    def _fail(self, exc: BaseException) -> None:
        waiter = self._waiter
        self._reset()
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _reset(self) -> None:
        self._waiter = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _finish(self, body: bytes) -> None:
        waiter = self._waiter
        headers = self._headers or {}
        response = Response(self._status, headers, body)
        self._reset()
        self._buffer.clear()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def _parse(self) -> None:
        buffer = self._buffer
        if self._headers is None:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEAD:
                    raise HttpError("response head over 64 KiB")
                return
            self._read_head(bytes(buffer[:end]).decode("latin-1"))
            del buffer[: end + 4]
            if self._head_only:
                self._finish(b"")
                return
        if self._length >= 0:
            if len(buffer) >= self._length:
                body = bytes(buffer[: self._length])
                self._finish(body)
        elif self._length == -2:
            body_or_none = self._dechunk()
            if body_or_none is not None:
                self._finish(body_or_none)

    def _read_head(self, head: str) -> None:
        status_line, *lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1."):
            raise HttpError(f"not an HTTP/1.x response: {status_line[:80]!r}")
        try:
            self._status = int(rest[:3])
        except ValueError:
            raise HttpError(f"bad status line: {status_line[:80]!r}") from None
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self._headers = headers
        connection = headers.get("connection", "").lower()
        self.keep_alive = (
            connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        )
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._length = -2
        elif "content-length" in headers:
            try:
                self._length = int(headers["content-length"])
            except ValueError:
                raise HttpError("bad Content-Length") from None
        elif self._status in (204, 304) or 100 <= self._status < 200:
            self._length = 0
        else:
            self._length = -1
            self.keep_alive = False

    def _dechunk(self) -> bytes | None:
        """The body once every chunk is in, else None (the buffer is left as it is)."""
        buffer = self._buffer
        body = bytearray()
        at = 0
        while True:
            line_end = buffer.find(b"\r\n", at)
            if line_end < 0:
                return None
            try:
                size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
            except ValueError:
                raise HttpError("bad chunk size") from None
            at = line_end + 2
            if size == 0:
                trailer_end = buffer.find(b"\r\n\r\n", line_end)
                if trailer_end < 0 and buffer[at : at + 2] != b"\r\n":
                    return None
                return bytes(body)
            if len(buffer) < at + size + 2:
                return None
            body += buffer[at : at + size]
            at += size + 2


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one origin (optionally through a proxy)."""

    def __init__(
        self,
        origin: Origin,
        *,
        max_connections: int,
        connect_timeout: float,
        ssl_context: ssl.SSLContext | None,
        proxy: str | None = None,
    ) -> None:
        self.origin = origin
        self._max = max_connections
        self._connect_timeout = connect_timeout
        self._ssl = ssl_context if origin.scheme == "https" else None
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False
        self._proxy = urlsplit(proxy) if proxy else None
        self._proxy_auth = ""
        if self._proxy is not None:
            if self._proxy.scheme != "http" or not self._proxy.hostname:
                raise ValueError(
                    f"proxy {proxy!r} is not supported: give an http:// proxy URL "
                    "(https is tunnelled through it with CONNECT)"
                )
            if self._proxy.username is not None:
                user_pass = f"{unquote(self._proxy.username)}:{unquote(self._proxy.password or '')}"
                token = base64.b64encode(user_pass.encode()).decode()
                self._proxy_auth = f"Proxy-Authorization: Basic {token}\r\n"
        self._absolute_form = self._proxy is not None and origin.scheme == "http"

    @property
    def request_target_prefix(self) -> str:
        """What goes before the path in the request line: the origin through an http proxy
        (absolute form), nothing otherwise."""
        if self._absolute_form:
            return f"{self.origin.scheme}://{self.origin.host_header}"
        return ""

    @property
    def proxy_headers(self) -> str:
        """Header lines every request carries through an http proxy (its credentials)."""
        return self._proxy_auth if self._absolute_form else ""

    async def send(self, data: bytes, read_timeout: float) -> Response:
        """Send one complete request (head and body) and read its response whole."""
        async with self._slots:
            connection = await self._connection()
            try:
                response = await connection.request(data, read_timeout)
            except BaseException:
                # Given up (cancelled, timed out) or failed: its answer, if any, would come on
                # this connection later.
                connection.close()
                raise
            if connection.keep_alive and not connection.closed and not self._closed:
                self._idle.append(connection)
            else:
                connection.close()
            return response

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
        return await self._connect()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        origin = self.origin
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._proxy is None:
                    _, connection = await loop.create_connection(
                        lambda: _Connection(self),
                        origin.host,
                        origin.port,
                        ssl=self._ssl,
                        server_hostname=origin.host if self._ssl else None,
                    )
                else:
                    connection = await self._connect_through_proxy(loop)
        except TimeoutError:
            raise HttpError(
                f"could not connect to {origin.host}:{origin.port} within "
                f"{self._connect_timeout:g} s"
            ) from None
        self._open.add(connection)
        return connection

    async def _connect_through_proxy(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        assert self._proxy is not None
        assert self._proxy.hostname is not None
        origin = self.origin
        _, connection = await loop.create_connection(
            lambda: _Connection(self), self._proxy.hostname, self._proxy.port or 80
        )
        if self._ssl is None:
            return connection  # plain http: absolute-form requests through the proxy
        target = f"{origin.host}:{origin.port}"
        answer = await connection.request(
            f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{self._proxy_auth}\r\n".encode(),
            self._connect_timeout,
            head_only=True,
        )
        if answer.status != 200:
            connection.close()
            raise HttpError(f"the proxy refused to tunnel to {target}: HTTP {answer.status}")
        assert connection.transport is not None
        tls = await loop.start_tls(
            connection.transport, connection, self._ssl, server_hostname=origin.host
        )
        if tls is None:  # pragma: no cover - start_tls returns None only when closing
            raise HttpError(f"the tunnel to {target} closed during the TLS handshake")
        connection.transport = tls
        return connection

    def _forget(self, connection: _Connection) -> None:
        self._open.discard(connection)

    async def close(self) -> None:
        self._closed = True
        for connection in list(self._open):
            connection.close()
        self._idle.clear()
        self._open.clear()
