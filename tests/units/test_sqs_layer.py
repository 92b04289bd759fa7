"""`_sqs/`, the boundary with SQS, imports nothing above it (docs/concepts.md, the rooms).

Its modules import each other and the shared modules at the top of the package that import
nothing else of the package when they are imported: the exception tree, the back-off formula,
`Backlog` and `Message`. Anything else of aiosqsworker (`_config/`, the engine, the process, the
command line, the testing tools) is above it: what `_sqs/` needs from there is handed to it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import aiosqsworker

PACKAGE = Path(aiosqsworker.__file__).parent
SQS = "aiosqsworker._sqs"
#: The modules at the top of the package that `_sqs/` may import.
FOUNDATION = frozenset(
    {
        "aiosqsworker._errors",
        "aiosqsworker._backoff",
        "aiosqsworker._backlog",
        "aiosqsworker._message",
    }
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_path(name: str) -> Path | None:
    """The file of module (or package) `name` in the tree, or None."""
    base = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(node: ast.AST, *, everywhere: bool) -> Iterator[ast.AST]:
    """Every node under `node`; unless `everywhere`, only what runs when the module is imported
    (not the bodies of functions, nor of ``if TYPE_CHECKING:``)."""
    for child in ast.iter_child_nodes(node):
        if not everywhere:
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    yield other
                    yield from _nodes(other, everywhere=everywhere)
                continue
        yield child
        yield from _nodes(child, everywhere=everywhere)


def imports(path: Path, *, everywhere: bool = True) -> Iterator[tuple[int, str]]:
    """(line, absolute name) of each module the file at `path` imports: at its top, inside its
    functions and under ``if TYPE_CHECKING:``; only those run at its import unless `everywhere`."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in _nodes(ast.parse(path.read_text(), str(path)), everywhere=everywhere):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            if node.module is None:  # ``from .. import x``: x may be a module of its own
                for alias in node.names:
                    name = f"{target}.{alias.name}"
                    yield node.lineno, name if module_path(name) else target
            else:
                yield node.lineno, target


def ours(name: str) -> bool:
    return name == "aiosqsworker" or name.startswith("aiosqsworker.")


def above_sqs(name: str) -> bool:
    inside = name == SQS or name.startswith(SQS + ".")
    return ours(name) and not inside and name not in FOUNDATION


def test_sqs_imports_nothing_above_it() -> None:
    """Catches `_sqs/open.py` taking `AppConfig` from `_config/` again, and the naive fix that
    only hides such an import under ``if TYPE_CHECKING:`` or inside a function."""
    modules = sorted((PACKAGE / "_sqs").rglob("*.py"))
    assert len(modules) > 10
    found = [(path, line, name) for path in modules for line, name in imports(path) if ours(name)]
    # Every name read is a module of the tree: a wrongly resolved relative import fails here.
    assert [name for _, _, name in found if module_path(name) is None] == []
    assert {name for _, _, name in found} & FOUNDATION
    arrows_up = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path, line, name in found
        if above_sqs(name)
    ]
    assert arrows_up == []


def test_the_modules_sqs_may_import_import_nothing_above_it() -> None:
    """Catches a shared module at the top (`_message.py`, say) starting to import `_config/`
    when it is imported: `_sqs/`, which imports it, would then depend on what is above it.

    (`Message.outbox` imports the outbox when a handler reads it, which `_sqs/` never does.)"""
    paths = {name: module_path(name) for name in sorted(FOUNDATION)}
    assert None not in paths.values()
    arrows_up = [
        f"{name}:{line} imports {imported}"
        for name, path in paths.items()
        if path is not None
        for line, imported in imports(path, everywhere=False)
        if ours(imported) and imported not in FOUNDATION
    ]
    assert arrows_up == []
