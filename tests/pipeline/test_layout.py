"""The pipeline package keeps its seams (issue 15): each module imports only what its docstring
allows, and the names callers used from the single `pipeline.py` still import from the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import meeting_governance.pipeline as pipeline

PACKAGE = Path(pipeline.__file__).parent

# What each module must not import: the model, Graph, or a pipeline module after it.
FORBIDDEN = {
    "discovery": {"meeting_governance.transcribe", "meeting_governance.gate",
                  "meeting_governance.store", "meeting_governance.pipeline"},
    "claiming": {"meeting_governance.transcribe", "meeting_governance.graph",
                 "meeting_governance.gate", "meeting_governance.pipeline"},
    "storing": {"meeting_governance.transcribe", "meeting_governance.graph",
                "meeting_governance.pipeline.processing", "meeting_governance.pipeline.discovery"},
    "processing": {"meeting_governance.pipeline.discovery"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_each_module_imports_only_what_its_seam_allows(module: str) -> None:
    imported = _imports(PACKAGE / f"{module}.py")
    wrong = sorted(name for name in imported for banned in FORBIDDEN[module]
                   if name == banned or name.startswith(banned + "."))
    assert wrong == [], f"pipeline/{module}.py imports {wrong}"


def test_the_names_callers_use_are_the_package_modules_objects() -> None:
    from meeting_governance.pipeline import claiming, discovery, processing

    assert pipeline.poll is discovery.poll
    assert pipeline._store_discovery is discovery._store_discovery
    assert pipeline.process is processing.process
    assert pipeline.Services is processing.Services
    assert pipeline.SilentReporter is processing.SilentReporter
    assert pipeline.Outcome is claiming.Outcome
    assert pipeline.claim is claiming.claim
    for name in pipeline.__all__:
        assert getattr(pipeline, name) is not None, name
