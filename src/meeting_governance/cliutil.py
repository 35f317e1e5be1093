"""What every CLI command shares: loading the context, printing tables or JSON, progress.

Commands parse, call one function and print; no logic lives in the command modules.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

if TYPE_CHECKING:  # the configuration and the database load when a command needs them
    from meeting_governance.config import Settings
    from meeting_governance.context import AppContext

# Outside a terminal (a pipe, a file, CI logs) nothing is cut: tables take the width they need
# unless COLUMNS says otherwise, so ids can be copied whole. rich reads COLUMNS itself.
UNBOUNDED = 10_000


def _stdout_width() -> int | None:
    if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit():
        return None
    return UNBOUNDED


console = Console(stderr=False, highlight=False, width=_stdout_width())
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


# Start-up and exit cost a short command more than its work: importing SQLAlchemy, pydantic and
# SQLModel makes some hundred thousand objects, and the collector walks them over and over while
# they are made, then once more as the interpreter exits — about a quarter of `optout list`'s
# CPU time (bench/cli.py). A command process therefore collects rarely while it runs and
# freezes what it holds before it exits; long-running commands go back to the defaults.
DEFAULT_GC_THRESHOLD = gc.get_threshold()
QUICK_GC_THRESHOLD = (50_000, 10, 10)


def quick_start() -> None:
    """Collect garbage rarely: a CLI command is a short process (`main` calls this first)."""
    gc.set_threshold(*QUICK_GC_THRESHOLD)


def quick_exit() -> None:
    """Leave what the process holds to the OS: no last walk over every object at exit."""
    gc.freeze()


def long_running() -> None:
    """For the daemon, the server, `process` and the demo: the interpreter's usual collection,
    with what start-up built frozen (never walked again; also what a forked worker shares)."""
    gc.set_threshold(*DEFAULT_GC_THRESHOLD)
    gc.collect()
    gc.freeze()


CREATED_HOMES: list[Path] = []
"""Data directories this process created; `discard_created_homes` undoes them on failure."""


def discard_created_homes() -> None:
    """A command failed: remove the data directories it created (nothing was there before)."""
    import shutil

    while CREATED_HOMES:
        shutil.rmtree(CREATED_HOMES.pop(), ignore_errors=True)


@dataclass
class CliState:
    config: Path | None = None
    verbose: bool = False
    _settings: Settings | None = None
    _ctx: AppContext | None = None

    def settings(self) -> Settings:
        if self._settings is None:
            from meeting_governance.config import load_settings

            self._settings = load_settings(self.config)
        return self._settings

    def context(self) -> AppContext:
        if self._ctx is None:
            from meeting_governance.context import AppContext, private_dir
            from meeting_governance.logs import configure_logging

            settings = self.settings()
            # A new data directory is private (0700) from the start, and `main` removes it
            # again if this command fails: no half-made MG_HOME is left behind.
            if not settings.home.exists():
                private_dir(settings.home)
                CREATED_HOMES.append(settings.home)
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
    """A table on stdout; a narrow terminal folds long cells (ids) instead of cutting them."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else (v.isoformat(timespec="seconds")
                                              if isinstance(v, datetime) else str(v))
                        for v in row))
    console.print(table)


class BarReporter:
    """The pipeline's progress as a rich bar on stderr: bytes downloaded, audio transcribed,
    then one line per recording where it ended. Drawn on a terminal only: in a pipe, a log or
    under `--json` it stays silent (the table or JSON on stdout says it all).

    Shows recording ids only (never a subject or a name)."""

    def __init__(self, *, enabled: bool = True, console: Console | None = None) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        out = console or err_console
        self.enabled = enabled and out.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                                 console=out, transient=True, disable=not self.enabled)
        self._task: Any = None

    def __enter__(self) -> BarReporter:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop()
        if self.enabled:
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
        """One recording is done: say where it ended (on a terminal)."""
        self._drop()
        if self.enabled:
            self.progress.console.print(
                f"recording {outcome.recording_id}: {outcome.state}"
                + (f" ({outcome.reason})" if outcome.reason else ""), markup=False,
                highlight=False)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Any]:
    """A rich progress bar on stderr; yields `update(done, total)`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=err_console, transient=False)
    task = progress.add_task(description, total=total)

    def update(done: int, new_total: int | None = None) -> None:
        progress.update(task, completed=done, total=new_total if new_total is not None else total)

    with progress:
        yield update
