"""The public surface: `__all__` is complete and exact, and the type information ships."""

from __future__ import annotations

import importlib.resources
import re
import shutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import aiosqsworker

REPO = Path(__file__).resolve().parent.parent


def test_every_name_in_all_exists() -> None:
    missing = [name for name in aiosqsworker.__all__ if not hasattr(aiosqsworker, name)]
    assert missing == []


def test_all_has_no_duplicates_and_is_sorted() -> None:
    assert len(set(aiosqsworker.__all__)) == len(aiosqsworker.__all__)
    assert aiosqsworker.__all__ == sorted(aiosqsworker.__all__)


def test_every_public_attribute_is_exported() -> None:
    # The package imports a public name the first time it is used (PEP 562): use each once.
    for name in aiosqsworker.__all__:
        getattr(aiosqsworker, name)
    public = {
        name
        for name, value in vars(aiosqsworker).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - set(aiosqsworker.__all__) == set(), "public but missing from __all__"
    exported = {name for name in aiosqsworker.__all__ if name != "__version__"}
    assert exported - public == set(), "in __all__ but not a public attribute"


def test_exported_objects_come_from_the_package() -> None:
    for name in aiosqsworker.__all__:
        value = getattr(aiosqsworker, name)
        module = getattr(value, "__module__", None)
        if module is not None and isinstance(value, type | types.FunctionType):
            assert module.startswith("aiosqsworker."), f"{name} comes from {module}"


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from aiosqsworker import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sorted(aiosqsworker.__all__)


def test_the_api_reference_lists_every_exported_name() -> None:
    reference = (REPO / "docs" / "reference.md").read_text()
    listed = set(re.findall(r"^::: aiosqsworker\.(\w+)$", reference, re.M))
    exported = {name for name in aiosqsworker.__all__ if name != "__version__"}
    assert exported - listed == set(), "exported but missing from docs/reference.md"


def test_version_matches_the_project_metadata() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert aiosqsworker.__version__ == project["version"]


def test_py_typed_is_in_the_package() -> None:
    marker = importlib.resources.files("aiosqsworker").joinpath("py.typed")
    assert marker.is_file()


def test_py_typed_is_shipped_in_a_build(tmp_path: Path) -> None:
    """Build the package's files as a wheel would take them, from a copy of the sources."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["build-system"]["build-backend"] == "setuptools.build_meta", (
        "the build backend changed: check how this test builds the package"
    )
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    if (REPO / "README.md").exists():
        shutil.copy(REPO / "README.md", source)
    shutil.copytree(
        REPO / "aiosqsworker",
        source / "aiosqsworker",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    build = tmp_path / "build"
    script = (
        "import sys\n"
        "from setuptools import setup\n"
        f"sys.argv = ['setup.py', '-q', 'build_py', '--build-lib', {str(build)!r}]\n"
        "setup()\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    built = build / "aiosqsworker"
    assert (built / "__init__.py").is_file()
    assert (built / "py.typed").is_file()
