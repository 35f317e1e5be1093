"""Logs as JSON lines with no personal data, and the Prometheus metrics.

Log calls pass ids, counts and states only. As a second line of defence the formatter masks
anything shaped like an e-mail address before a line is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_EMAIL = re.compile(r"[^@\s\"'<>]+@[^@\s\"'<>]+\.[A-Za-z]{2,}")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {"message"}


def redact(text: str) -> str:
    return _EMAIL.sub("[redacted-address]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the `extra` fields."""

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
        return redact(json.dumps(entry, ensure_ascii=False))


def configure_logging(level: str, file: Path | None, *, stderr: bool = False) -> None:
    """Send the package's logs to a JSON-lines file (and optionally stderr)."""
    root = logging.getLogger("meeting_governance")
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = JsonFormatter()
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        to_file = logging.FileHandler(file, encoding="utf-8")
        to_file.setFormatter(formatter)
        root.addHandler(to_file)
    if stderr:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter)
        root.addHandler(stream)
    root.propagate = False


class Metrics:
    """The daemon's Prometheus metrics, in a registry of their own (tests make fresh ones)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.recordings = Gauge("mg_recordings", "Recordings by pipeline state", ["state"],
                                registry=self.registry)
        self.transcription_seconds = Counter(
            "mg_transcription_seconds", "Wall seconds spent transcribing", registry=self.registry)
        self.audio_seconds = Counter("mg_audio_seconds", "Seconds of audio transcribed",
                                     registry=self.registry)
        self.errors = Counter("mg_errors", "Pipeline errors by kind", ["kind"],
                              registry=self.registry)
        self.purged = Counter("mg_purged_transcripts", "Transcripts purged",
                              registry=self.registry)
        self.step_seconds = Histogram("mg_step_seconds", "Pipeline step duration", ["step"],
                                      registry=self.registry)
        self.discovery_restarts = Counter(
            "mg_discovery_restarts", "Delta links dropped and discovery started anew "
            "(rejected by Graph, another host, another configuration, or by hand)",
            registry=self.registry)
        self.directory_lookups = Counter(
            "mg_directory_lookups", "Participant identities by where they came from",
            ["source"], registry=self.registry)


METRICS = Metrics()
