"""`python -m aiosqsworker`: run consumers, the demo, and the operator's tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from .._config import EnvironmentSettings
from .._errors import AioSQSWorkerError, ConfigurationError
from .._logging import configure_logging
from .._run.runner import uvloop_available
from . import demo, localserver, scale
from . import run as run_command
from .command import Command, Invocation
from .parsing import ForgivingParser, leaf_parser, unknown_arguments_error
from .tools import bucket, dlqcommand, queue, send, stats

__all__ = ["main"]


#: Each command's module, in the order --help lists them.
_COMMANDS: dict[str, Command] = {
    "run": run_command,
    "demo": demo,
    "scale": scale,
    "local-server": localserver,
    "send": send,
    "stats": stats,
    "dlq": dlqcommand,
    "queue": queue,
    "bucket": bucket,
}
#: The commands' names (what is not one of them is a MODULE for `run`).
COMMANDS = tuple(_COMMANDS)


def _build_parser(env: EnvironmentSettings | None = None) -> argparse.ArgumentParser:
    env = env or EnvironmentSettings()
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

    for name, command in _COMMANDS.items():
        command_parser = command.add_parser(sub, env)
        if name == "run":
            # `python -m aiosqsworker MODULE` is `run MODULE`: the top-level help shows its
            # options.
            parser.epilog = "the run command (the default):\n\n" + command_parser.format_help()
    return parser


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
        return _COMMANDS[args.command].run(Invocation(args, args_list, env, use_uvloop))
    except AioSQSWorkerError as exc:
        print(f"aiosqsworker: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Only a handler's own (signals are handled): the worker has drained already.
        print("aiosqsworker: stopped: a handler raised KeyboardInterrupt", file=sys.stderr)
        return 130
