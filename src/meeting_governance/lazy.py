"""Modules loaded on first use, so that `--help` and light commands start fast.

The CLI's command modules name the core modules (database, keys, Graph, the pipeline) at the
top, as usual, but through `module()`: the import runs only when a command actually touches
one. `--help` then loads typer and rich only; `bench/cli.py` measures what that saves.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


class _Deferred(ModuleType):
    """Stands in for a module that is not imported yet; every attribute read goes to the real
    one, imported then. `importlib.util.LazyLoader` would put a half-made module in
    `sys.modules`, which two threads (the daemon's jobs) can race to finish on Python 3.11;
    `importlib.import_module` holds the import lock, so the second thread waits instead."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attr)


def module(name: str) -> ModuleType:
    """`name`, imported the first time one of its attributes is read (or now, if it already is)."""
    if name in sys.modules:
        return sys.modules[name]
    if importlib.util.find_spec(name) is None:
        raise ImportError(f"no module named {name!r}")
    return _Deferred(name)


def exports(package: str, init_file: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """PEP 562 `__getattr__` and `__dir__` for a package that re-exports its modules' names.

    The names are the ones its `__init__` imports under `if TYPE_CHECKING:` — what mypy and a
    reader see — and each module is imported the first time one of its names is read, so that
    `from meeting_governance.graph.client import X` no longer loads the whole package (msal,
    requests) and a command pays only for what it uses (`bench/cli.py`)."""
    table: dict[str, tuple[str, str]] = {}

    def names() -> dict[str, tuple[str, str]]:
        if not table:
            tree = ast.parse(Path(init_file).read_text(encoding="utf-8"))
            for node in tree.body:
                if (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                        and node.test.id == "TYPE_CHECKING"):
                    for stmt in node.body:
                        if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
                            for alias in stmt.names:
                                table[alias.asname or alias.name] = (stmt.module, alias.name)
        return table

    def __getattr__(name: str) -> Any:
        found = names().get(name)
        if found is not None:
            value = getattr(importlib.import_module(found[0]), found[1])
        elif importlib.util.find_spec(f"{package}.{name}") is not None:  # `package.module`
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)  # the next read is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names()})

    # A name that is also its module's name (`optouts.matching`, the function, from
    # `optouts/matching.py`): the import system sets the package's attribute to the module
    # when the module first loads, which would hide the name. Such names load now.
    for name, (source, attr) in names().items():
        if source == f"{package}.{name}":
            setattr(sys.modules[package], name, getattr(importlib.import_module(source), attr))
    return __getattr__, __dir__
