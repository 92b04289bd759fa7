"""The lean client (the default ``client="fast"``) on the wire: TLS, proxies, signing what is
sent, abandoned calls, a start without botocore.

The servers are the tests' own, in front of the real SQS-protocol server: a TLS terminator
with a certificate authority made here (trusted through AWS_CA_BUNDLE, as the SDKs do), a
CONNECT proxy, an HTTP forward proxy that checks every signature against the Host header it
received, and a server that never answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from aiosqsworker import App, Message, TransientSQSError
from aiosqsworker._sqs.blocking import BlockingVisibilityCalls
from aiosqsworker._sqs.errors import Endpoint
from aiosqsworker._sqs.lean import LeanSQSClient, StaticCredentials
from aiosqsworker._sqs.sigv4 import FrozenCredentials
from aiosqsworker.testing import (
    LOCAL_CREDENTIALS,
    Answer,
    FaultProxy,
    LocalSQSServer,
    ProxiedRequest,
)

from .kit import REGION, SQSKit, eventually

REPO = Path(__file__).resolve().parent.parent


def _host_port(url: str) -> tuple[str, int]:
    host, _, port = url.rpartition("//")[2].rstrip("/").rpartition(":")
    return host, int(port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: str) -> None:
    host, port = _host_port(upstream)
    up_reader, up_writer = await asyncio.open_connection(host, port)
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    **options: Any,
) -> AsyncIterator[int]:
    """A server on 127.0.0.1 (its port); its connections are dropped when the block ends."""
    writers: set[asyncio.StreamWriter] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writers.discard(writer)
            writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0, **options)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in list(writers):
            writer.transport.abort()


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A certificate authority and a server certificate for 127.0.0.1 it signed: (CA, cert,
    key) as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("aiosqsworker test CA"))
        .issuer_name(name("aiosqsworker test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@contextlib.asynccontextmanager
async def tls_front(upstream: str, directory: Path) -> AsyncIterator[tuple[str, Path]]:
    """An https endpoint terminating TLS in front of `upstream`: (its URL, the CA's file)."""
    import ssl

    ca, cert, key = make_certificates(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _relay(reader, writer, upstream)

    async with serving(handle, ssl=context) as port:
        yield f"https://127.0.0.1:{port}", ca


@contextlib.asynccontextmanager
async def lean_client(url: str, *, read_timeout: float = 5) -> AsyncIterator[LeanSQSClient]:
    """A lean client of its own to `url`, no proxy, no CA bundle, one connection."""
    client = LeanSQSClient(
        Endpoint(REGION, url),
        StaticCredentials(FrozenCredentials("k", "s")),
        max_connections=1,
        read_timeout=read_timeout,
        environ={},
    )
    try:
        yield client
    finally:
        await client.close()


async def run_until_handled(app: App, queue_name: str, count: int) -> list[str]:
    seen: list[str] = []

    @app.consumer(queue_name, concurrency=4, wait_time=1)
    async def handle(message: Message) -> None:
        seen.append(message.body)

    async with app:
        await eventually(lambda: app.statistics()["handle"].deleted == count)
    return seen


async def test_an_https_endpoint_is_trusted_through_aws_ca_bundle(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TLS by the standard library, trusting the bundle AWS_CA_BUNDLE names.

    Catches a client that speaks plain HTTP to an https endpoint, or that ignores
    AWS_CA_BUNDLE (the self-signed authority is in no system store)."""
    queue = await sqs.create_queue()
    await sqs.send(queue, [f"tls {n}" for n in range(12)])
    async with tls_front(sqs_server.endpoint_url, tmp_path) as (url, ca):
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
        seen = await run_until_handled(App(region=REGION, endpoint_url=url), queue.name, 12)
    assert sorted(seen) == sorted(f"tls {n}" for n in range(12))
    assert await sqs.counts(queue) == (0, 0)


async def test_an_untrusted_certificate_is_refused(
    sqs_server: LocalSQSServer, tmp_path: Path
) -> None:
    """Without the authority in AWS_CA_BUNDLE, the server's certificate is not trusted.

    Catches a client that turns certificate checks off to make a self-signed server work."""
    async with (
        tls_front(sqs_server.endpoint_url, tmp_path) as (url, _),
        lean_client(url) as client,
    ):
        with pytest.raises(TransientSQSError, match="CERTIFICATE_VERIFY_FAILED"):
            await client._send_once("GetQueueUrl", b'{"QueueName":"x"}', "x")


async def test_the_lease_keeper_s_thread_trusts_aws_ca_bundle_too(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The lease keeper's blocking connection (used while the loop is blocked) trusts the
    same bundle as the client. Catches a thread that only knows the system's trust store:
    its lease extensions would all fail on a server the client itself reaches."""
    queue = await sqs.create_queue()
    await sqs.send(queue, ["held"])
    (message,) = await sqs.receive(queue)
    async with tls_front(sqs_server.endpoint_url, tmp_path) as (url, ca):
        monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
        calls = BlockingVisibilityCalls(Endpoint(REGION, url))
        credentials = FrozenCredentials(
            LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"], LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        )
        try:
            result = await asyncio.to_thread(
                calls.change_visibility_batch,
                queue.url,
                [("0", message["ReceiptHandle"], 40)],
                credentials,
                timeout=10,
            )
        finally:
            calls.close()
    assert result.successful == ("0",)


async def test_https_goes_through_a_connect_tunnel_of_https_proxy(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS_PROXY: an HTTP CONNECT tunnel, TLS to the endpoint inside it, as the SDKs do.

    Catches a client that ignores HTTPS_PROXY (no request reaches the proxy), or that
    sends its requests to the proxy in clear instead of tunnelling."""
    queue = await sqs.create_queue()
    await sqs.send(queue, [f"tunnel {n}" for n in range(6)])
    tunnels: list[str] = []
    async with tls_front(sqs_server.endpoint_url, tmp_path) as (url, ca):

        async def connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            method, target, _ = head.split(" ", 2)
            assert method == "CONNECT"
            tunnels.append(target)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await _relay(reader, writer, url.replace("https", "http"))

        async with serving(connect) as proxy_port:
            monkeypatch.setenv("AWS_CA_BUNDLE", str(ca))
            monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy_port}")
            monkeypatch.delenv("NO_PROXY", raising=False)
            monkeypatch.delenv("no_proxy", raising=False)
            seen = await run_until_handled(App(region=REGION, endpoint_url=url), queue.name, 6)
    assert len(seen) == 6
    assert tunnels
    assert set(tunnels) == {url.removeprefix("https://")}


class SignatureCheckingProxy(FaultProxy):
    """A proxy that checks each request's SigV4 signature against the Host header it
    received, with the secret of the access key the request names (the test credentials
    unless `secrets` says otherwise). As an HTTP forward proxy it takes absolute-form
    requests; as a reverse proxy, the endpoint's own."""

    def __init__(self, upstream: str, secrets: dict[str, str] | None = None) -> None:
        super().__init__(upstream)
        self.secrets = secrets or {
            LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"]: LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
        }
        self.targets: list[str] = []
        self.bad_signatures: list[str] = []
        self.signed: list[tuple[str, str]] = []  # (access key, X-Amz-Date) of each request

    async def forward(self, request: ProxiedRequest) -> Answer:
        self.targets.append(request.path)
        authorization = request.headers["authorization"]
        access_key = authorization.partition("Credential=")[2].partition("/")[0]
        self.signed.append((access_key, request.headers["x-amz-date"]))
        signed = {
            name: request.headers[name]
            for name in authorization.partition("SignedHeaders=")[2].partition(",")[0].split(";")
        }
        if "//" in request.path:  # absolute form, through a forward proxy
            request.path = "/" + request.path.partition("//")[2].partition("/")[2]
        check = AWSRequest(
            "POST", f"http://{request.headers['host']}{request.path}", data=request.body
        )
        for name, value in signed.items():
            check.headers[name] = value
        check.context["timestamp"] = request.headers["x-amz-date"]
        auth = SigV4Auth(Credentials(access_key, self.secrets.get(access_key, "")), "sqs", REGION)
        del check.headers["Authorization"]
        auth.add_auth(check)
        if check.headers["Authorization"] != authorization:
            self.bad_signatures.append(request.action)
        return await super().forward(request)


async def test_an_explicit_default_port_is_signed_as_sent_through_http_proxy(
    sqs: SQSKit, sqs_server: LocalSQSServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY: absolute-form requests; the Host header signed is the one sent.

    The endpoint ``http://sqs.example.test:80`` names the default port: a client that sends
    ``Host: sqs.example.test:80`` but signs ``sqs.example.test`` (or the reverse) is refused
    by SQS with SignatureDoesNotMatch; the proxy recomputes each signature from what it
    received. Also catches a client that ignores HTTP_PROXY (the name does not resolve)."""
    queue = await sqs.create_queue()
    await sqs.send(queue, [f"proxied {n}" for n in range(5)])
    async with SignatureCheckingProxy(sqs_server.endpoint_url) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        app = App(region=REGION, endpoint_url="http://sqs.example.test:80")
        seen = await run_until_handled(app, queue.url, 5)
    assert len(seen) == 5
    assert proxy.targets
    assert set(proxy.targets) == {"http://sqs.example.test/"}
    assert proxy.bad_signatures == []


class RotatingCredentials:
    """Static keys until `rotate`, then others: a refreshed role session, say."""

    def __init__(self, *keys: FrozenCredentials) -> None:
        self.keys = list(keys)

    def rotate(self) -> None:
        self.keys.pop(0)

    async def frozen(self, operation: str | None = None) -> FrozenCredentials:
        return self.keys[0]


async def test_polls_of_one_second_share_a_head_signed_for_their_own_queue_and_keys(
    sqs: SQSKit, sqs_server: LocalSQSServer
) -> None:
    """A queue's polls send the same body again and again, and the client reuses their
    signed head within a second. Every request must still carry the signature of its own
    body and of the credentials of the moment.

    The proxy recomputes each signature with the secret of the key it names. Catches a head
    reused for another queue's poll (its body no longer matches) or after the credentials
    changed (the request names the old key). The calls start as a second starts, and are
    made again until all fall within it, where the reuse happens."""
    first, second = await sqs.create_queue(), await sqs.create_queue()
    old = FrozenCredentials("AKIAOLDKEY", "old-secret")
    new = FrozenCredentials("AKIANEWKEY", "new-secret", token="session-token")
    secrets = {old.access_key: old.secret_key, new.access_key: new.secret_key}
    async with SignatureCheckingProxy(sqs_server.endpoint_url, secrets) as proxy:
        for _ in range(5):
            await asyncio.sleep(1.01 - time.time() % 1)  # start as a second starts
            proxy.signed.clear()
            credentials = RotatingCredentials(old, new)
            client = LeanSQSClient(
                Endpoint(REGION, proxy.url), credentials, max_connections=2, read_timeout=10
            )
            try:
                for queue in (first, second, first):
                    await client.receive_messages(
                        queue.url, max_messages=10, wait_time=0, visibility_timeout=30
                    )
                credentials.rotate()
                for queue in (first, second):
                    await client.receive_messages(
                        queue.url, max_messages=10, wait_time=0, visibility_timeout=30
                    )
            finally:
                await client.close()
            if len({date for _, date in proxy.signed}) == 1:
                break
    assert proxy.bad_signatures == []
    assert [key for key, _ in proxy.signed] == [old.access_key] * 3 + [new.access_key] * 2
    assert len({date for _, date in proxy.signed}) == 1, "no five calls fell in one second"


async def test_a_call_given_up_mid_flight_closes_its_connection() -> None:
    """A request cancelled while waiting for its answer closes the connection it went on.

    Catches a pool that puts the connection back: the late answer to the abandoned request
    would be read as the answer to the next one (a ReceiveMessage's messages read as a
    DeleteMessageBatch's result, or the reverse)."""
    closed = asyncio.Event()
    requests = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        first = requests == 0
        requests += 1
        await reader.readuntil(b"\r\n\r\n")
        if first:
            await reader.read()  # never answer; wait for the client to hang up
            closed.set()
            return
        payload = json.dumps({"QueueUrl": "http://q/1/fresh"}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(payload) + payload)
        await writer.drain()

    async with (
        serving(handle) as port,
        lean_client(f"http://127.0.0.1:{port}", read_timeout=30) as client,
    ):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await client.resolve_queue_url("stalled")
        await asyncio.wait_for(closed.wait(), 5)
        assert await client.resolve_queue_url("fresh") == "http://q/1/fresh"
    assert requests == 2


async def test_a_chunked_answer_is_read_whole() -> None:
    """An answer in chunks (Transfer-Encoding: chunked, as some servers and proxies send)
    is read to its last chunk. Catches a client that only knows Content-Length."""
    payload = json.dumps({"Attributes": {"VisibilityTimeout": "30"}}).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(payload), 7):
            part = payload[start : start + 7]
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with serving(handle) as port, lean_client(f"http://127.0.0.1:{port}") as client:
        assert await client.get_queue_attributes("http://q/1/a") == {"VisibilityTimeout": "30"}


async def test_a_worker_starts_and_handles_without_loading_botocore(
    sqs: SQSKit, sqs_server: LocalSQSServer
) -> None:
    """With credentials and region in the environment, `import aiosqsworker` and a worker
    handling a message load neither botocore nor aiohttp.

    Catches an import of botocore (a quarter of a second) slipping back onto the default
    path, e.g. `open.py` or `errors.py` importing it at module level."""
    queue = await sqs.create_queue()
    await sqs.send(queue, ["hello"])
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import aiosqsworker
        assert "botocore" not in sys.modules and "aiohttp" not in sys.modules, "on import"
        from aiosqsworker import App, Message

        async def main():
            app = App(endpoint_url={sqs_server.endpoint_url!r})
            done = asyncio.Event()

            @app.consumer({queue.name!r}, concurrency=1, wait_time=1)
            async def handle(message: Message) -> None:
                done.set()

            async with app:
                await asyncio.wait_for(done.wait(), 20)

        asyncio.run(main())
        loaded = sorted(m for m in ("botocore", "aiobotocore", "aiohttp") if m in sys.modules)
        print("loaded:", loaded)
        """
    )
    environment = {**os.environ, **LOCAL_CREDENTIALS, "AWS_REGION": REGION}
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        environment.pop(name, None)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "loaded: []" in result.stdout, result.stdout
