"""`LocalSQSServer`: the project's local SQS server (moto, with atomic receives) in a
subprocess on a free loopback port, for tests, the demo and development.

The command line's ``demo`` and ``local-server`` run it, and `aiosqsworker.testing` and the
pytest plugin hand it to tests: it lives here, beside neither, and imports nothing but the
standard library at its top (moto runs in the subprocess, `aiosqsworker.testing.motoserver`;
starting one imports ``moto.server`` here first, to say what to install when it is missing).

```python
with LocalSQSServer() as server:
    app = App(endpoint_url=server.endpoint_url, region="us-east-1")
    ...
```

It speaks the real SQS protocol over HTTP, so what passes against it exercises the same code
paths as production: long polling, visibility, batch responses with ``Failed`` entries,
redrive to dead-letter queues.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from typing import IO

__all__ = ["LocalSQSServer", "free_port", "stop_process"]

#: Credentials the local server accepts (any would do); set so botocore's chain finds some.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a server process by its PID: SIGTERM, then SIGKILL after 10 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class LocalSQSServer:
    """moto's SQS server in a subprocess, listening on 127.0.0.1 only.

    Its ReceiveMessage is made atomic (`aiosqsworker.testing.motoserver`): moto alone can hand one
    message to two polls that arrive together.
    """

    def __init__(
        self, *, host: str = "127.0.0.1", port: int | None = None, log: IO[bytes] | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    #: What the server is called in errors, where it answers when up, how it is reset.
    name = "the local SQS server"
    health_path = "/moto-api/"
    reset_path = "/moto-api/reset"

    def command(self) -> list[str]:
        """The command line that starts the server."""
        try:
            import moto.server  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "the local SQS server needs moto: pip install 'aiosqsworker[server]'"
            ) from exc
        server = "aiosqsworker.testing.motoserver"
        return [sys.executable, "-m", server, "-H", self.host, "-p", str(self.port)]

    def environment(self) -> dict[str, str]:
        """The environment the server starts with."""
        return {**os.environ, "MOTO_PORT": str(self.port)}

    def start(self, timeout: float = 30.0) -> str:
        """Start the server and wait until it answers; returns its endpoint URL."""
        self._process = subprocess.Popen(
            self.command(),
            stdout=self._log or subprocess.DEVNULL,
            stderr=self._log or subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            env=self.environment(),
            # Its own session: a Ctrl-C meant for the program that runs it does not kill it
            # while that program still needs it (to drain, to release messages).
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self._process.returncode} "
                    f"(port {self.port} taken?)"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not answer within {timeout} s")
            time.sleep(0.05)  # startup only: a bounded wait for a subprocess to listen
        return self.endpoint_url

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}{self.health_path}", timeout=1):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def wait(self) -> int:
        """Block until the server's process exits (it does not by itself); its exit code."""
        if self._process is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._process.wait()

    def reset(self) -> None:
        """Delete every queue and message on the server."""
        request = urllib.request.Request(f"{self.endpoint_url}{self.reset_path}", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            stop_process(process)

    def __enter__(self) -> LocalSQSServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        with contextlib.suppress(OSError):
            self.stop()
