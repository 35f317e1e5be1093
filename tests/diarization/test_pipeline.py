"""Diarization in the governed pipeline: labels stored sealed, and a missing encoder stops the
service at start, before anything is fetched (emulator, real model, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from meeting_governance import formats
from meeting_governance.db import checkpoint
from meeting_governance.diarization import encoder as encoder_module
from meeting_governance.errors import ConfigError
from meeting_governance.models import Transcript
from meeting_governance.pipeline import Services, poll, process
from meeting_governance.store import read_content
from mg_emulator import EmulatorServer
from tests.conftest import scan_for
from tests.pipeline.conftest import (  # noqa: F401  (fixtures)
    SPOKEN,
    Env,
    emulator,
    make_env,
    subprocess_env,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def diarized(home: Path, db_url: str, emulator: EmulatorServer,  # noqa: F811
             whisper_model: Any) -> Iterator[Env]:
    e = make_env(home, db_url, emulator, whisper_model, diarization={"enabled": True})
    # The service's own wiring (Services.from_app) with the session's already loaded model.
    services = Services.from_app(e.app)
    services.transcriber._model = whisper_model
    services.graph_factory = e.services.graph_factory
    e.services = services
    try:
        yield e
    finally:
        e.services.close()
        e.app.close()


def test_stored_transcript_has_speaker_labels_and_no_plaintext(diarized: Env) -> None:
    with diarized.graph() as graph:
        poll(diarized.app, graph)
    process(diarized.app, diarized.services, limit=20)

    with diarized.app.session() as session:
        contents = [read_content(diarized.app, session, row)
                    for row in session.exec(select(Transcript)).all()]
    # Stored: sample-1.m4a (one LibriSpeech reader, two of her utterances) and sample-2.m4a
    # (another reader): each is one speaker, labelled on every segment.
    assert len(contents) == 2
    for content in contents:
        result = formats.from_json(json.dumps(content))
        assert {t.speaker for t in result.turns} == {"Speaker 1"}
        assert result.segments and all(s.speaker == "Speaker 1" for s in result.segments)
        assert set(content) == {"version", "model", "language", "language_probability",
                                "duration", "segments", "turns"}  # no voice embeddings
    checkpoint(diarized.app.engine)
    assert scan_for(diarized.settings.home, [w.encode() for w in SPOKEN]) == []


def test_enabled_but_not_installed_is_refused_at_start(
        home: Path, emulator: EmulatorServer, whisper_model: Any,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(encoder_module, "REPO_MODELS_DIR", tmp_path / "none")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    e = make_env(home, None, emulator, whisper_model, diarization={"enabled": True})
    try:
        with pytest.raises(ConfigError, match="scripts/install-model resemblyzer"):
            Services.from_app(e.app)
    finally:
        e.app.close()


@pytest.mark.parametrize("command", [["process"], ["daemon"]])
def test_the_cli_says_what_to_do_and_fetches_nothing(
        command: list[str], home: Path, emulator: EmulatorServer, tmp_path: Path) -> None:  # noqa: F811
    env = subprocess_env(home, emulator, MG_DIARIZATION__ENABLED="true",
                         MG_DIARIZATION__ENCODER=str(tmp_path / "no-encoder-here"))
    subprocess.run([sys.executable, "-m", "meeting_governance", "init"], env=env, check=True,
                   capture_output=True, timeout=120)
    subprocess.run([sys.executable, "-m", "meeting_governance", "poll"], env=env, check=True,
                   capture_output=True, timeout=120)
    emulator.requests.clear()

    done = subprocess.run([sys.executable, "-m", "meeting_governance", *command], env=env,
                          capture_output=True, text=True, timeout=120)

    assert done.returncode == 2, done.stderr
    assert "diarization.encoder" in done.stderr and "install-model resemblyzer" in done.stderr
    assert emulator.requests.all() == []  # not a token, not a recording, not a byte of media
