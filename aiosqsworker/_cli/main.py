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
from . import demo, localserver, scale
from . import run as run_command
from .command import Invocation, add_connection_options, add_logging_options
from .parsing import ForgivingParser, leaf_parser, unknown_arguments_error
from .tools import add_admin_parsers, dlqcommand, send, stats
from .tools import run_command as run_tool

__all__ = ["main"]

COMMANDS = ("run", "demo", "scale", "send", "stats", "dlq", "queue", "bucket", "local-server")


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
    for command in (demo, scale, localserver, send, stats, dlqcommand):
        command.add_parser(sub, env)

    add_admin_parsers(
        sub,
        connection_options=add_connection_options,
        logging_options=logging_options,
    )
    return parser


def _command_admin(call: Invocation) -> int:
    return run_tool(call.args)


_COMMANDS: dict[str, Callable[[Invocation], int]] = {
    "run": run_command.run,
    "demo": demo.run,
    "scale": scale.run,
    "send": send.run,
    "stats": stats.run,
    "dlq": dlqcommand.run,
    "queue": _command_admin,
    "bucket": _command_admin,
    "local-server": localserver.run,
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
