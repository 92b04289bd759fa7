"""The command line's forgiving parts: options anywhere, and "did you mean" for a typo.

`ForgivingParser` takes a command's options before, between or after its positional
arguments (``send QUEUE --group-id G BODY``), which plain argparse refuses once a list of
positionals is interrupted. `unknown_arguments_error` turns the arguments no parser took into
one line that suggests the option meant; `leaf_parser` finds the parser whose usage to show.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

__all__ = ["ForgivingParser", "leaf_parser", "unknown_arguments_error"]


class ForgivingParser(argparse.ArgumentParser):
    """An ArgumentParser whose commands take options anywhere among their positionals."""

    _intermixing = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> tuple[Any, list[str]]:
        # A parser with subcommands cannot intermix (argparse refuses); its commands do. The
        # flag stops the recursion: intermixed parsing calls parse_known_args itself.
        if self._intermixing or _subcommands(self):
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False

    def error(self, message: str) -> NoReturn:
        # One line that says what is wrong, and where the options are: argparse's default
        # prints the whole usage first (eight lines for some commands), burying the message.
        self.exit(2, f"{self.prog}: error: {message}\n(see {self.prog} --help)\n")


def _subcommands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def leaf_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the (sub)command `args` were parsed for: the one whose usage helps."""
    while (action := _subcommands(parser)) is not None:
        chosen = getattr(args, action.dest, None)
        if chosen not in action.choices:
            break
        parser = action.choices[chosen]
    return parser


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings]


def unknown_arguments_error(extras: Iterable[str], parser: argparse.ArgumentParser) -> str:
    """What to say about the arguments `parser` did not take: a close option, where one is."""
    extras = list(extras)
    unknown = [extra.split("=", 1)[0] for extra in extras if extra.startswith("-")]
    if not unknown:  # what follows an unknown option is likely its value: not worth a word
        return f"unexpected arguments: {' '.join(extras)}"
    options = _option_strings(parser)
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
        parts.append(f"unknown option {name}" + (f" (did you mean {close[0]}?)" if close else ""))
    return "; ".join(parts)
