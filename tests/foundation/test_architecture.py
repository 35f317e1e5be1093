"""The rooms of ARCHITECTURE.md, enforced by reading every import (`ast`) under src/.

Edges (command line, web, daemon, demo) may import the domain; the domain, the foundation and
the Graph adapter never import an edge, and only the demo and the `emulator` command start the
Graph emulator. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import meeting_governance

SRC = Path(meeting_governance.__file__).resolve().parent
PKG = "meeting_governance"

# The edges: they parse, render and schedule, then call one domain function.
EDGES = ("cli", "__main__", "cliutil", "commands", "web", "daemon", "demo")
# A test double (a loopback Microsoft Graph): its own distribution (emulator/, `mg_emulator`),
# never part of a real run's path.
EMULATOR = "mg_emulator"
EMULATOR_SRC = SRC.parents[1] / "emulator" / "src" / EMULATOR
MAY_START_THE_EMULATOR = ("demo", "commands")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every `meeting_governance` module `path` imports, relative to the package ("web.app")."""
    here = module_name(path).split(".") if module_name(path) else []
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names
                         if a.name == PKG or a.name.startswith(PKG + "."))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here if is_package else here[:-1]
                base = base[:len(base) - (node.level - 1)]
                module = ".".join([PKG, *base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            if module == PKG:  # `from meeting_governance import web`
                found.update(f"{PKG}.{a.name}" for a in node.names)
            elif module.startswith(PKG + "."):
                found.add(module)
            elif module == EMULATOR or module.startswith(EMULATOR + "."):
                found.add(module)
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names
                         if a.name == EMULATOR or a.name.startswith(EMULATOR + "."))
    return {name.removeprefix(PKG).lstrip(".") if name.startswith(PKG) else name
            for name in found}


def within(module: str, room: str) -> bool:
    return module == room or module.startswith(room + ".")


def in_any(module: str, rooms: tuple[str, ...]) -> bool:
    return any(within(module, room) for room in rooms)


GRAPH = {module_name(p): imports_of(p) for p in sorted(SRC.rglob("*.py"))}


def test_the_scanner_sees_imports() -> None:
    """Guards the rules below against passing because nothing was read."""
    assert len(GRAPH) > 100
    assert "commands" in GRAPH["cli"] or any(within(m, "commands") for m in GRAPH["cli"])
    assert EMULATOR in GRAPH["demo"]  # `from mg_emulator import …` inside run_demo
    assert "optouts" in GRAPH["web.api"]  # `from meeting_governance import optouts`
    assert "optouts.views" in GRAPH["optouts.registry"]  # `from meeting_governance.optouts.views`


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if not in_any(m, EDGES)))
def test_the_inner_rooms_never_import_an_edge(module: str) -> None:
    bad = sorted(m for m in GRAPH[module] if in_any(m, EDGES))
    assert not bad, f"{module} imports {bad}: the domain must not know how it is called"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_only_the_demo_and_its_command_start_the_emulator(module: str) -> None:
    if in_any(module, MAY_START_THE_EMULATOR):
        return
    bad = sorted(m for m in GRAPH[module] if within(m, EMULATOR))
    assert not bad, f"{module} imports the Graph emulator {bad}: a real run never does"


def test_the_emulator_stands_alone() -> None:
    """The emulator is a package of its own: it imports nothing of the product."""
    files = sorted(EMULATOR_SRC.rglob("*.py"))
    assert len(files) > 5, EMULATOR_SRC
    bad = {}
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        product = [n for n in names if n == PKG or n.startswith(PKG + ".")]
        if product:
            bad[path.name] = product
    assert not bad


def test_graph_talks_to_graph_only() -> None:
    """The Graph adapter knows the settings, our errors, the pure value modules and `lazy` — never
    the database, the vault or a domain module."""
    allowed = ("config", "errors", "identity", "meetingref", "graph", "lazy")
    bad = {m: sorted(i for i in imports if not in_any(i, allowed))
           for m, imports in GRAPH.items() if within(m, "graph")}
    assert not {m: b for m, b in bad.items() if b}
