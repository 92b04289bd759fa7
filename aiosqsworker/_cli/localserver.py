"""`local-server [--port 4566]`: the project's local SQS (and S3) server, for development.

It is `LocalSQSServer` (moto, with receives made atomic as SQS's are: plain moto can hand one
message to two polls), bound to 127.0.0.1, until Ctrl-C or SIGTERM. moto serves S3 on the
same port, for large messages. The one line to paste in a new terminal (endpoints, region,
credentials) goes to stdout.
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
import types

from .._config import EnvironmentSettings
from .._errors import AioSQSWorkerError, ConfigurationError
from .._localsqs import LOCAL_CREDENTIALS, LocalSQSServer
from .command import Invocation, Subparsers, add_logging_options, command_parser

__all__ = [
    "DEFAULT_PORT",
    "LOCAL_REGION",
    "add_parser",
    "export_line",
    "local_environment",
    "run",
]

#: The port local AWS emulators listen on by convention.
DEFAULT_PORT = 4566
LOCAL_REGION = "us-east-1"
HOST = "127.0.0.1"


def local_environment(endpoint_url: str) -> dict[str, str]:
    """What a new terminal needs to talk to the local server: the SQS and S3 endpoints (it
    serves both), the region under both names (plain boto3 reads only AWS_DEFAULT_REGION)
    and credentials (any do)."""
    return {
        "AWS_ENDPOINT_URL_SQS": endpoint_url,
        "AWS_ENDPOINT_URL_S3": endpoint_url,
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        **LOCAL_CREDENTIALS,
    }


def export_line(endpoint_url: str) -> str:
    """The shell line that points the AWS environment at the local server."""
    variables = local_environment(endpoint_url)
    return "export " + " ".join(f"{name}={value}" for name, value in variables.items())


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65_535:
        raise argparse.ArgumentTypeError(f"{text!r}: give a port from 0 (any free one) to 65535")
    return int(text)


def add_parser(sub: Subparsers, env: EnvironmentSettings) -> argparse.ArgumentParser:
    parser = command_parser(
        sub,
        "local-server",
        help="run the project's local SQS server on 127.0.0.1, for development",
        description="Start the local SQS server the test suite uses (moto, with receives "
        "made atomic as SQS's are) on 127.0.0.1, print the environment to point a worker at "
        "it, and serve until Ctrl-C or SIGTERM. Queues and messages live in its memory.",
        epilog="examples:\n  python -m aiosqsworker local-server\n"
        "  python -m aiosqsworker local-server --port 0     any free port\n",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="port on 127.0.0.1 (default: %(default)s; 0: any free one)",
    )
    add_logging_options(parser, env)
    return parser


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise ConfigurationError(
                f"port {port} on {HOST} is in use (another local server?): stop it, or give "
                "--port N (--port 0 picks a free one)"
            ) from None


def _interrupt(signum: int, frame: types.FrameType | None) -> None:
    raise KeyboardInterrupt


def run(call: Invocation) -> int:
    """Serve until Ctrl-C or SIGTERM (exit 0); 1 if the server dies by itself."""
    port: int = call.args.port
    if port:
        _check_port_free(port)
    server = LocalSQSServer(host=HOST, port=port or None)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # SIGTERM stops it as Ctrl-C does
    try:
        server.start()
        print(
            f"local SQS and S3 server on {server.endpoint_url}: Ctrl-C stops it",
            file=sys.stderr,
        )
        print("in a new terminal, paste this line (any credentials do):", file=sys.stderr)
        print(export_line(server.endpoint_url), flush=True)
        code = server.wait()
    except KeyboardInterrupt:
        print("local SQS server stopped", file=sys.stderr)
        return 0
    except RuntimeError as exc:  # it did not start
        raise AioSQSWorkerError(str(exc)) from None
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    raise AioSQSWorkerError(f"the local SQS server exited by itself with code {code}")
