"""Which SQS-protocol server the integration suite talks to, and how to start the second one.

``AIOSQSWORKER_TEST_SERVER`` chooses: ``moto`` (the default, `LocalSQSServer`) or
``ministack`` (`MinistackServer`). Ministack pins its own botocore, so it lives in a virtual
environment of its own (``make .venv-ministack``); ``AIOSQSWORKER_MINISTACK_VENV`` says where
(default: ``.venv-ministack`` at the repository's root).

Servers differ where SQS leaves room or where one of them is less faithful; tests that meet
such a difference ask `server_kind()` and branch or skip, with the reason, rather than assert
on one server's behaviour.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Literal

from aiosqsworker.testing import LocalSQSServer

__all__ = ["MinistackServer", "new_server", "server_kind"]

REPO = Path(__file__).resolve().parent.parent

ServerKind = Literal["moto", "ministack"]


def server_kind() -> ServerKind:
    """The server chosen by ``AIOSQSWORKER_TEST_SERVER`` (``moto`` unless told otherwise)."""
    kind = os.environ.get("AIOSQSWORKER_TEST_SERVER", "moto").strip().lower() or "moto"
    if kind not in ("moto", "ministack"):
        raise RuntimeError(
            f"AIOSQSWORKER_TEST_SERVER={kind!r} is invalid: it must be 'moto' or 'ministack'"
        )
    return "ministack" if kind == "ministack" else "moto"


def ministack_venv() -> Path:
    return Path(os.environ.get("AIOSQSWORKER_MINISTACK_VENV") or REPO / ".venv-ministack")


class MinistackServer(LocalSQSServer):
    """Ministack's SQS (and nothing else) in a subprocess, bound to 127.0.0.1 only.

    The same interface as `LocalSQSServer`: `endpoint_url`, `start`, `stop`, `reset`, a
    context manager.
    """

    def __init__(
        self,
        *,
        venv: Path | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        log: IO[bytes] | None = None,
    ) -> None:
        if host != "127.0.0.1":
            raise ValueError("the test server listens on 127.0.0.1 only")
        super().__init__(host=host, port=port, log=log)
        self.venv = venv or ministack_venv()

    name = "ministack"
    health_path = "/_ministack/health"
    reset_path = "/_ministack/reset"

    def command(self) -> list[str]:
        executable = self.venv / "bin" / "ministack"
        if not executable.exists():
            raise RuntimeError(
                f"ministack is not installed at {executable}: run `make .venv-ministack` (or "
                "set AIOSQSWORKER_MINISTACK_VENV to a virtual environment that has it)"
            )
        return [str(executable)]

    def environment(self) -> dict[str, str]:
        env = {
            **os.environ,
            # Never its default 0.0.0.0: loopback only.
            "BIND_HOST": self.host,
            "GATEWAY_PORT": str(self.port),
            "SERVICES": "sqs",
            "LOG_LEVEL": "WARNING",
        }
        for name in ("EDGE_PORT", "USE_SSL", "LOCALSTACK_PERSISTENCE", "S3_PERSIST"):
            env.pop(name, None)
        return env


def new_server(
    kind: ServerKind | None = None, *, port: int | None = None, log: IO[bytes] | None = None
) -> LocalSQSServer:
    """A server of the chosen kind (not started)."""
    if (kind or server_kind()) == "ministack":
        return MinistackServer(port=port, log=log)
    return LocalSQSServer(port=port, log=log)
