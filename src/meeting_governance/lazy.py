"""Modules loaded on first use, so that `--help` and light commands start fast.

The CLI's command modules name the core modules (database, keys, Graph, the pipeline) at the
top, as usual, but through `module()`: the import runs only when a command actually touches
one. `--help` then loads typer and rich only; `bench/cli.py` measures what that saves.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


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
