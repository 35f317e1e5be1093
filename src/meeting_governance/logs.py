"""One logging configuration for the whole process: every logger, ours and the libraries'.

`configure_logging` installs it with `logging.config.dictConfig` on the root logger, so
APScheduler's job tracebacks, uvicorn's access and error logs, Alembic's migrations and msal
go through the same JSON-lines formatter and the same address masking as our own lines (the
README promises ids, counts and states only). The log file is created 0600 in a 0700
directory. Log calls pass ids, counts and states; the masking is the second line of defence.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# `@` as written, or percent-encoded once or twice, as it is in a URL (a Graph request path, a
# query string in an exception's text): `alex%40contoso.example` is an address too.
_AT = r"(?:@|%40|%2540)"
_EMAIL = re.compile(rf"[^@\s\"'<>]+{_AT}[^@\s\"'<>]+\.[A-Za-z]{{2,}}", re.IGNORECASE)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {
    "message", "color_message"}  # uvicorn adds color_message: a copy of msg with ANSI codes

# Libraries whose loggers the configuration names: they keep their own level floor (msal and
# urllib3 are chatty at DEBUG and INFO) but write through the root's handlers, never their own.
THIRD_PARTY = ("apscheduler", "uvicorn", "uvicorn.access", "uvicorn.error", "alembic", "msal",
               "urllib3", "httpx", "multipart", "asyncio")
_QUIET = {"msal": "WARNING", "urllib3": "WARNING", "httpx": "WARNING", "multipart": "WARNING",
          "asyncio": "WARNING"}
# APScheduler says "Running job"/"executed successfully" at INFO for every run of every job:
# kept for DEBUG; its failures (job tracebacks, missed runs) are WARNING and above.
_QUIET_UNLESS_DEBUG = {"apscheduler": "WARNING"}


def redact(text: str) -> str:
    """Mask anything shaped like an e-mail address."""
    return _EMAIL.sub("[redacted-address]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the `extra` fields and, for an
    exception, its type, message and traceback — all masked."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["error_message"] = str(record.exc_info[1])
            entry["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        elif record.stack_info:
            entry["stack"] = record.stack_info
        return redact(json.dumps(entry, ensure_ascii=False))


class PrivateFileHandler(logging.FileHandler):
    """A FileHandler whose file is created 0600 (and tightened to 0600 if it was wider)."""

    def _open(self) -> Any:
        path = Path(self.baseFilename)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8", errors=self.errors)


def logging_config(level: str, file: Path | None, *, stderr: bool = False) -> dict[str, Any]:
    """The dictConfig for `configure_logging` (separate so a test can read what it does)."""
    handlers: dict[str, dict[str, Any]] = {}
    if file is not None:
        handlers["file"] = {"()": PrivateFileHandler, "filename": str(file),
                            "encoding": "utf-8", "formatter": "json"}
    if stderr:
        handlers["stderr"] = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                              "formatter": "json"}
    if not handlers:
        handlers["null"] = {"class": "logging.NullHandler"}
    numeric = logging.getLevelName(level)
    loggers: dict[str, dict[str, Any]] = {
        "meeting_governance": {"level": level, "handlers": [], "propagate": True}}
    for name in THIRD_PARTY:
        floor = _QUIET.get(name) or (level if level == "DEBUG" else
                                     _QUIET_UNLESS_DEBUG.get(name, level))
        chosen = floor if logging.getLevelName(floor) > numeric else level
        # handlers: [] drops whatever a library installed (uvicorn's own dictConfig, say).
        loggers[name] = {"level": chosen, "handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": handlers,
        "loggers": loggers,
        "root": {"level": level, "handlers": list(handlers)},
    }


def configure_logging(level: str, file: Path | None, *, stderr: bool = False) -> None:
    """Every logger of the process to JSON lines in `file` (0600) and, with `stderr`, the
    terminal; masked. Called by the CLI, the daemon (and each worker process) and `serve`."""
    root = logging.getLogger()
    # dictConfig replaces the root's handlers; keep the ones that are not ours (a test
    # runner's capture, say) and put them back.
    foreign = [h for h in root.handlers if not getattr(h, "_meeting_governance", False)]
    logging.config.dictConfig(logging_config(level, file, stderr=stderr))
    for handler in root.handlers:
        handler._meeting_governance = True  # type: ignore[attr-defined]
    for handler in foreign:
        if handler not in root.handlers:
            root.addHandler(handler)
