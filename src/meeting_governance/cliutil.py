"""What every CLI command shares: loading the context, printing tables or JSON, progress.

Commands parse, call one function and print; no logic lives in the command modules.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from meeting_governance.config import Settings, load_settings
from meeting_governance.context import AppContext
from meeting_governance.logs import configure_logging

# Piped output (CI logs, `| less`) gets 120 columns instead of rich's 80.
console = Console(stderr=False, highlight=False, width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class CliState:
    config: Path | None = None
    verbose: bool = False
    _settings: Settings | None = None
    _ctx: AppContext | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config)
        return self._settings

    def context(self) -> AppContext:
        if self._ctx is None:
            settings = self.settings()
            configure_logging(settings.logging.level, settings.log_file, stderr=self.verbose)
            self._ctx = AppContext.open(settings)
        return self._ctx

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None


def group(**kwargs: Any) -> typer.Typer:
    """A command group whose help reflows: docstrings are wrapped for the source file, and
    rich's default mode would keep those line breaks in the terminal."""
    kwargs.setdefault("rich_markup_mode", "markdown")
    return typer.Typer(**kwargs)


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def app_context(ctx: typer.Context) -> AppContext:
    return state(ctx).context()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "_asdict"):
        return value._asdict()
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return asdict(value)
    return str(value)


def print_json(value: Any) -> None:
    """JSON on stdout only (list commands with --json); nothing else is printed there."""
    sys.stdout.write(json.dumps(value, default=_default, indent=2, ensure_ascii=False) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else (v.isoformat(timespec="seconds")
                                              if isinstance(v, datetime) else str(v))
                        for v in row))
    console.print(table)


class BarReporter:
    """The pipeline's progress as a rich bar on stderr: bytes downloaded, audio transcribed.

    Shows recording ids only (never a subject or a name)."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                 console=err_console, transient=True)
        self._task: Any = None

    def __enter__(self) -> BarReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop()
        self.progress.stop()

    def _drop(self) -> None:
        if self._task is not None:
            self.progress.remove_task(self._task)
            self._task = None

    def step(self, recording_id: int, step: str) -> None:
        self._drop()
        verb = "downloading" if step == "download" else "transcribing"
        self._task = self.progress.add_task(f"recording {recording_id}: {verb}", total=None,
                                            detail="")

    def download(self, recording_id: int, done: int, total: int | None) -> None:
        if self._task is not None:
            size = f"{done / 1e6:.1f}" + (f"/{total / 1e6:.1f}" if total else "") + " MB"
            self.progress.update(self._task, completed=done, total=total, detail=size)

    def transcribe(self, recording_id: int, done: float, total: float) -> None:
        if self._task is not None:
            self.progress.update(self._task, completed=done, total=total or None,
                                 detail=f"{done:.0f}/{total:.0f} s of audio")

    def finished(self, outcome: Any) -> None:
        """One recording is done: say where it ended."""
        self._drop()
        self.progress.console.print(
            f"recording {outcome.recording_id}: {outcome.state}"
            + (f" ({outcome.reason})" if outcome.reason else ""), markup=False, highlight=False)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Any]:
    """A rich progress bar on stderr; yields `update(done, total)`."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err_console, transient=False)
    task = progress.add_task(description, total=total)

    def update(done: int, new_total: int | None = None) -> None:
        progress.update(task, completed=done, total=new_total if new_total is not None else total)

    with progress:
        yield update
