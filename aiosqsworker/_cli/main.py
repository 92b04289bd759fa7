"""`python -m aiosqsworker`: run consumers, the demo, and the operator's tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .. import __version__
from .._config import EnvironmentSettings
from .._errors import AioSQSWorkerError, ConfigurationError
from .._logging import configure_logging
from .._run.runner import uvloop_available
from . import run as run_command
from .command import Invocation, add_connection_options, add_logging_options
from .demo import run_demo
from .localserver import DEFAULT_PORT, run_local_server
from .parsing import ForgivingParser, leaf_parser, unknown_arguments_error
from .scale import run_scale
from .tools import add_admin_parsers
from .tools import run_command as run_tool

__all__ = ["main"]

COMMANDS = ("run", "demo", "scale", "send", "stats", "dlq", "queue", "bucket", "local-server")

SCALE_EPILOG = """\
how it decides:
  arrivals = completions + growth of the queue (visible + in flight + delayed),
  desired  = ceil((arrivals + visible / --target-latency) / per-worker rate),
  clamped to [--min, --max]. The per-worker rate is --per-worker-rate, or measured
  from the workers' own counters (--worker-metrics, their /metrics endpoints).

examples:
  python -m aiosqsworker scale orders --target-latency 60 --min 1 --max 20 --per-worker-rate 40
  python -m aiosqsworker scale orders --worker-metrics http://10.0.0.5:9090/metrics --watch
"""


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65_535:
        raise argparse.ArgumentTypeError(f"{text!r}: give a port from 0 (any free one) to 65535")
    return int(text)


def _build_parser(env: EnvironmentSettings | None = None) -> argparse.ArgumentParser:
    env = env or EnvironmentSettings()

    def logging_options(parser: argparse.ArgumentParser) -> None:
        add_logging_options(parser, env)

    parser: argparse.ArgumentParser = ForgivingParser(
        prog="python -m aiosqsworker",
        description="Run SQS consumers. Commands: run (the default), demo, scale, send, "
        "stats, dlq, queue, bucket, local-server.",
        usage="python -m aiosqsworker [run] MODULE[:APP] [options]\n"
        "       python -m aiosqsworker local-server [--port PORT]\n"
        "       python -m aiosqsworker queue {create,purge,delete} NAME [options]\n"
        "       python -m aiosqsworker bucket create NAME [options]\n"
        "       python -m aiosqsworker send QUEUE [BODY ...] [options]\n"
        "       python -m aiosqsworker stats QUEUE... [options]\n"
        "       python -m aiosqsworker dlq {inspect,redrive} QUEUE [options]\n"
        "       python -m aiosqsworker scale QUEUE [options]\n"
        "       python -m aiosqsworker demo [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"aiosqsworker {__version__} (Python {sys.version.split()[0]})",
    )
    # Without prog, a command's usage line would repeat the whole multi-line usage above.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog="python -m aiosqsworker")

    run_parser = run_command.add_parser(sub, env)
    # `python -m aiosqsworker MODULE` is `run MODULE`: the top-level help shows its options.
    parser.epilog = "the run command (the default):\n\n" + run_parser.format_help()

    demo_parser = sub.add_parser(
        "demo",
        help="run demo consumers against a local SQS server started for the occasion",
        description="Start a local SQS server (moto's) on 127.0.0.1, create demo queues, "
        "send messages (some slow, some poisonous) and consume them with visible progress.",
    )
    demo_parser.add_argument("--messages", type=int, default=200, help="(default: %(default)s)")
    demo_parser.add_argument(
        "--keep-running",
        action="store_true",
        help="keep consuming after the demo messages are done, until Ctrl-C",
    )
    logging_options(demo_parser)

    scale_parser = sub.add_parser(
        "scale",
        help="recommend a worker count for a queue, from SQS's own counters",
        description="Sample the queue (and the workers' metrics, if given) and print how many "
        "workers keep up with arrivals and drain the backlog within --target-latency.",
        epilog=SCALE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scale_parser.add_argument("queue", metavar="QUEUE", help="queue name or URL")
    scale_parser.add_argument("--target-latency", type=float, default=60.0, help="seconds")
    scale_parser.add_argument("--min", type=int, default=1, dest="minimum")
    scale_parser.add_argument("--max", type=int, default=20, dest="maximum")
    scale_parser.add_argument(
        "--per-worker-rate", type=float, help="messages/s one worker handles, if known"
    )
    scale_parser.add_argument(
        "--worker-metrics",
        action="append",
        default=[],
        metavar="URL",
        help="a worker's /metrics URL (repeat for each worker): measures the rate",
    )
    scale_parser.add_argument(
        "--interval", type=float, default=10.0, help="seconds between samples (default: 10)"
    )
    scale_parser.add_argument("--watch", action="store_true", help="keep printing")
    add_connection_options(scale_parser)
    logging_options(scale_parser)

    local_parser = sub.add_parser(
        "local-server",
        help="run the project's local SQS server on 127.0.0.1, for development",
        description="Start the local SQS server the test suite uses (moto, with receives "
        "made atomic as SQS's are) on 127.0.0.1, print the environment to point a worker at "
        "it, and serve until Ctrl-C or SIGTERM. Queues and messages live in its memory.",
        epilog="examples:\n  python -m aiosqsworker local-server\n"
        "  python -m aiosqsworker local-server --port 0     any free port\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    local_parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help="port on 127.0.0.1 (default: %(default)s; 0: any free one)",
    )
    logging_options(local_parser)

    add_admin_parsers(
        sub,
        connection_options=add_connection_options,
        logging_options=logging_options,
    )
    return parser


def _command_demo(call: Invocation) -> int:
    args = call.args
    return run_demo(
        messages=args.messages, keep_running=args.keep_running, use_uvloop=call.use_uvloop
    )


def _command_scale(call: Invocation) -> int:
    return run_scale(call.args)


def _command_admin(call: Invocation) -> int:
    return run_tool(call.args)


def _command_local_server(call: Invocation) -> int:
    return run_local_server(port=call.args.port)


_COMMANDS: dict[str, Callable[[Invocation], int]] = {
    "run": run_command.run,
    "demo": _command_demo,
    "scale": _command_scale,
    "send": _command_admin,
    "stats": _command_admin,
    "dlq": _command_admin,
    "queue": _command_admin,
    "bucket": _command_admin,
    "local-server": _command_local_server,
}


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] not in {*COMMANDS, "-h", "--help", "--version"}:
        args_list.insert(0, "run")  # `python -m aiosqsworker MODULE` means `run MODULE`
    try:
        env = EnvironmentSettings.read()
    except ConfigurationError as exc:
        print(f"aiosqsworker: error: {exc}", file=sys.stderr)
        return 1
    parser = _build_parser(env)
    args, extras = parser.parse_known_args(args_list)
    if extras:
        command = leaf_parser(parser, args)
        command.error(unknown_arguments_error(extras, command))
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(args.log_level, args.log_format, worker=env.worker_index)
    use_uvloop = uvloop_available() and not args.no_uvloop
    try:
        return _COMMANDS[args.command](Invocation(args, args_list, env, use_uvloop))
    except AioSQSWorkerError as exc:
        print(f"aiosqsworker: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Only a handler's own (signals are handled): the worker has drained already.
        print("aiosqsworker: stopped: a handler raised KeyboardInterrupt", file=sys.stderr)
        return 130
