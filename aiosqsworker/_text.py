"""What users read: the framework's public names, and counts with the right plural.

The framework's classes live in private modules (`aiosqsworker._errors.Reject`) but users
know them by the names the package exports (`aiosqsworker.Reject`): every text meant for
people (failure records, error messages, log lines) uses those.
"""

from __future__ import annotations

import re
import sys

__all__ = ["plural", "public_name", "public_text"]

_PACKAGE = "aiosqsworker"
_DOTTED = re.compile(rf"\b{_PACKAGE}((?:\.\w+)+)")


def _exported() -> set[str]:
    package = sys.modules.get(_PACKAGE)  # loaded: this runs after the imports, never during
    return set(getattr(package, "__all__", ()))


def _public_path(path: str) -> str:
    """``aiosqsworker.X`` for a name the package exports from a private module, else `path`."""
    parts = path.split(".")
    through_private = any(part.startswith("_") for part in parts[1:-1])
    if parts[0] == _PACKAGE and through_private and parts[-1] in _exported():
        return f"{_PACKAGE}.{parts[-1]}"
    return path


def public_name(kind: type) -> str:
    """A class's dotted name as users import it: ``aiosqsworker.Reject``, ``builtins.KeyError``."""
    return _public_path(f"{kind.__module__}.{kind.__qualname__}")


def public_text(text: str) -> str:
    """`text` with every ``aiosqsworker._private.Name`` in it written ``aiosqsworker.Name``."""
    return _DOTTED.sub(lambda match: _public_path(match.group(0)), text)


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``1 attempt``, ``3 attempts``; `plural_form` for nouns that take more than an *s*."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"
