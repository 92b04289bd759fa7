"""What a command of the command line is, and what the commands' parsers share.

Each command is a module of its own (`Command`): ``add_parser(subparsers, env)`` adds its
parser (and returns it), ``run(call)`` runs it with an `Invocation`; `.main` only wires them.
A command's module imports at its top only what building its parser needs: the SDK, HTTP
libraries and servers are imported by ``run``, so that ``--help`` starts fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, TypeVar

from .._config import LOG_FORMATS, LOG_LEVELS, EnvironmentSettings
from .._errors import ConfigurationError

__all__ = [
    "PROG",
    "Command",
    "Invocation",
    "Subparsers",
    "action_parser",
    "add_connection_options",
    "add_logging_options",
    "argument",
    "checked_number",
    "command_group",
    "command_parser",
]

PROG = "python -m aiosqsworker"
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


@dataclass(frozen=True)
class Invocation:
    """What a command runs with: its arguments, the raw command line, the environment."""

    args: argparse.Namespace
    argv: list[str]
    env: EnvironmentSettings
    use_uvloop: bool


class Command(Protocol):
    """A command's module: its parser, and what it runs."""

    def add_parser(self, sub: Subparsers, env: EnvironmentSettings) -> argparse.ArgumentParser:
        """Add the command's parser to `sub`, defaults from `env`; returns it."""
        ...

    def run(self, call: Invocation) -> int:
        """Run the command; its exit status."""
        ...


def add_connection_options(parser: argparse.ArgumentParser, *, service: str = "SQS") -> None:
    """Adds --region, --endpoint-url (of `service`: SQS, or S3 for the bucket command) and
    --profile."""
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, then botocore's)")
    parser.add_argument(
        "--endpoint-url",
        help=f"{service} endpoint (default: AWS_ENDPOINT_URL_{service}, AWS_ENDPOINT_URL)",
    )
    parser.add_argument("--profile", help="AWS profile (default: AWS_PROFILE)")


def add_logging_options(parser: argparse.ArgumentParser, env: EnvironmentSettings) -> None:
    """Adds --log-level, --log-format and --no-uvloop, defaults from the environment."""
    parser.add_argument(
        "--log-level",
        default=env.log_level or "INFO",
        choices=LOG_LEVELS,
        type=str.upper,
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        default=env.log_format or "text",
        choices=LOG_FORMATS,
        help="text for people, json (one object per line) for machines (default: %(default)s)",
    )
    parser.add_argument(
        "--no-uvloop",
        action="store_true",
        help="use asyncio's own event loop even when uvloop is installed",
    )


def argument(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse `type=` from a parser that raises ConfigurationError."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ConfigurationError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


_Number = TypeVar("_Number", int, float)


def checked_number(
    convert: Callable[[str], _Number], accept: Callable[[_Number], bool], wanted: str
) -> Callable[[str], _Number]:
    """A parser of the numbers `convert` reads and `accept` takes; any other text is refused."""

    def parse(text: str) -> _Number:
        try:
            value = convert(text)
        except ValueError:
            raise ConfigurationError(f"{text!r}: give {wanted}") from None
        if not accept(value):
            raise ConfigurationError(f"{text!r}: give {wanted}")
        return value

    return parse


def command_parser(
    sub: Subparsers, name: str, *, help: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """A command's parser: its --help shows `epilog` (the guide: examples, exit codes) as it is
    written."""
    return sub.add_parser(
        name,
        prog=f"{PROG} {name}",
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def command_group(
    sub: Subparsers, name: str, *, help: str, description: str, epilog: str
) -> tuple[argparse.ArgumentParser, Subparsers]:
    """A command made of actions (`queue create`, ...): its parser, and its ACTION subparsers."""
    group = command_parser(sub, name, help=help, description=description, epilog=epilog)
    actions = group.add_subparsers(dest=f"{name}_command", metavar="ACTION", required=True)
    return group, actions


def action_parser(
    actions: Subparsers, command: str, *, help: str, description: str, epilog: str
) -> argparse.ArgumentParser:
    """One action of a command group; `command` is its whole name (``queue create``)."""
    return actions.add_parser(
        command.rsplit(" ", 1)[-1],
        prog=f"{PROG} {command}",
        help=help,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
