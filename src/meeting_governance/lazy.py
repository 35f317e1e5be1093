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


def module(name: str) -> ModuleType:
    """`name`, imported the first time one of its attributes is read (or now, if it already is)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    lazy = importlib.util.module_from_spec(spec)
    sys.modules[name] = lazy
    loader.exec_module(lazy)
    parent, _, child = name.rpartition(".")
    if parent:  # as the import system does: `import a.b` then `a.b.x` must work
        setattr(sys.modules[parent], child, lazy)
    return lazy


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
