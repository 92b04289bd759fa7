"""What importing aiosqsworker loads: the engine and its heavy libraries wait until used.

Each scenario runs in a fresh interpreter (this one has long imported everything) and reads
`sys.modules` there. Nothing here is timed: `python -m benchmarks.startup` measures the time.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import aiosqsworker

INIT = Path(aiosqsworker.__file__)

#: Libraries that a worker needs only for some settings, or only once it runs.
HEAVY = ("aiobotocore", "aiohttp", "anyio", "asyncio", "botocore", "multiprocessing", "ssl")


def loaded_after(code: str) -> dict[str, list[str]]:
    """Run `code` in a fresh interpreter: the heavy libraries and package modules it
    imported, and the lines it printed."""
    script = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted(sys.modules)))\n"
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    *printed, modules = completed.stdout.splitlines()
    names: list[str] = json.loads(modules)
    return {
        "heavy": [name for name in HEAVY if name in names],
        "package": [name for name in names if name.startswith("aiosqsworker.")],
        "printed": printed,
    }


def test_import_aiosqsworker_loads_none_of_the_engine() -> None:
    """Catches: an eager import back in ``aiosqsworker/__init__.py`` (``from ._app import
    App`` at the top), which loads the whole engine, asyncio and ssl with it, for a
    ``python -m aiosqsworker --help`` or a module that only names a type."""
    seen = loaded_after(
        "import aiosqsworker\nprint(sorted(set(aiosqsworker.__all__) - set(dir(aiosqsworker))))"
    )
    assert seen["heavy"] == []
    assert seen["package"] == []
    assert seen["printed"] == ["[]"], "dir() lists every public name before any is used"


def test_a_public_name_is_imported_on_first_use_and_kept() -> None:
    """Catches: a lazy lookup that gives a name from the wrong module, or imports it again
    on every access instead of keeping it in the package."""
    seen = loaded_after(
        "import aiosqsworker\n"
        "print('App' in vars(aiosqsworker))\n"
        "from aiosqsworker import App, Message, consumer\n"
        "from aiosqsworker._app import App as defined\n"
        "print(App is defined, 'App' in vars(aiosqsworker), aiosqsworker.App is App)\n"
        "print(App.__module__, Message.__module__, consumer.__module__)"
    )
    assert seen["printed"] == [
        "False",
        "True True True",
        "aiosqsworker._app aiosqsworker._message aiosqsworker._registry",
    ]


def test_defining_consumers_loads_no_event_loop_machinery() -> None:
    """Catches: ``import asyncio`` back at the top of ``_sqs/credentials.py`` (reached from
    the settings through `DEFAULT_OUTAGE_LIMIT`), which loads asyncio, ssl and
    concurrent.futures for a module that only declares its handlers."""
    seen = loaded_after(
        "from aiosqsworker import Message, consumer\n"
        "@consumer('orders', concurrency=5)\n"
        "async def handle(message: Message) -> None: ...\n"
        "print(handle.__name__)"
    )
    assert seen["printed"] == ["handle"]
    assert seen["heavy"] == []


def test_an_app_loads_no_process_pool_nor_botocore_until_it_needs_them() -> None:
    """Catches: ``import multiprocessing`` back at the top of ``_consumer/procpool.py``
    (imported by the worker, the pipeline and the dead-letter path), which loads it, pickle's
    machinery and tempfile for every app, though only ``run_in="process"`` handlers use it;
    and botocore or aiohttp imported with the default client."""
    seen = loaded_after("from aiosqsworker import App\nprint(type(App()).__name__)")
    assert seen["printed"] == ["App"]
    assert [name for name in seen["heavy"] if name not in ("anyio", "asyncio", "ssl")] == []


def test_type_checkers_see_every_public_name_where_it_is_defined() -> None:
    """Catches: a public name added to ``__all__`` and the run-time lookup but not to the
    imports under ``TYPE_CHECKING`` (editors and mypy would not know it), or imported there
    from another module than the one the package gives at run time."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    blocks = [
        node.body
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name | ast.Attribute)  # not `if not TYPE_CHECKING:`
        and ast.unparse(node.test).endswith("TYPE_CHECKING")
    ]
    assert len(blocks) == 1, "one `if TYPE_CHECKING:` block of imports"
    typed: dict[str, str] = {}
    for statement in blocks[0]:
        assert isinstance(statement, ast.ImportFrom)
        for alias in statement.names:
            typed[alias.asname or alias.name] = "." * statement.level + (statement.module or "")
    assert sorted(typed) == sorted(set(aiosqsworker.__all__) - {"__version__"})
    for name, module in typed.items():
        defined = getattr(importlib.import_module(module, "aiosqsworker"), name)
        assert getattr(aiosqsworker, name) is defined, name
