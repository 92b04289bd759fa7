"""`dlq inspect|redrive QUEUE`: the command of the dead-letter tools.

Each action's parser and run live beside its code: `inspect` in `.dlq`, `redrive` in
`.redrive`; this module makes them one command.
"""

from __future__ import annotations

import argparse

from ..._config import EnvironmentSettings
from ..command import Invocation, Subparsers, command_group
from .dlq import add_inspect_parser, run_dlq_inspect
from .redrive import add_redrive_parser, run_dlq_redrive

__all__ = ["add_parser", "run"]


def add_parser(sub: Subparsers, env: EnvironmentSettings) -> argparse.ArgumentParser:
    parser, actions = command_group(
        sub,
        "dlq",
        help="inspect or redrive dead-lettered messages",
        description="Look at dead-lettered messages (inspect) or move them back (redrive).",
        epilog="examples:\n  python -m aiosqsworker dlq inspect orders\n"
        "  python -m aiosqsworker dlq redrive orders --dry-run\n",
    )
    add_inspect_parser(actions, env)
    add_redrive_parser(actions, env)
    return parser


def run(call: Invocation) -> int:
    """Run the action `call` names: inspect or redrive."""
    if call.args.dlq_command == "inspect":
        return run_dlq_inspect(call.args)
    return run_dlq_redrive(call.args)
