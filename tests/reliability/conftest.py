"""Reliability tests: the whole installation of `tests/pipeline` (emulator, real msal/requests,
SQLite or PostgreSQL), broken on purpose, then checked for what must still hold. Faults of
Graph, the database and the disk need something transcribed, not the words: `sqlite_env` runs
the FakeTranscriber; the tests about media and killed workers keep the real model.

The invariants every fault test ends with (`assert_invariants`): nothing lost (each recording
ends in a known state), exactly one transcript per stored recording whose vault items all
open, no temporary media left under the staging dir, and an intact audit chain.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select, update

from meeting_governance import audit
from meeting_governance.config import GraphSettings
from meeting_governance.epochs import Owner
from meeting_governance.graph import GraphClient
from meeting_governance.models import AuditEntry, Recording, Transcript
from meeting_governance.pipeline import Services
from meeting_governance.transcribe import Transcriber
from mg_emulator import (
    AttendanceRecord,
    AttendanceReport,
    EmulatorServer,
    Meeting,
    Scenario,
)
from mg_emulator import Recording as EmuRecording
from tests.conftest import DatabaseTemplate
from tests.fake_transcriber import FakeTranscriber
from tests.pipeline.conftest import (
    Env,
    build_scenario,
    emulator,
    env,
    fake_env,
    make_env,
    meeting_id,
    recording_id,
)

# Re-exported: pytest finds the pipeline fixtures here by name.
__all__ = ["Env", "emulator", "env", "fake_env", "make_env", "meeting_id", "recording_id"]

BAD_DIR = Path(__file__).resolve().parents[1] / "data" / "bad"


@pytest.fixture
def sqlite_env(home: Path, emulator: EmulatorServer, fake_transcriber: FakeTranscriber,
               db_template: DatabaseTemplate) -> Iterator[Env]:
    """The embedded default only: faults of Graph and the disk do not depend on the engine.

    Downloads go in 4 KiB reads, so a cut mid-body leaves bytes on disk to resume from (with the
    default 1 MiB a cut in these small samples loses the whole read and restarts at zero)."""
    e = make_env(home, None, emulator, fake_transcriber, template=db_template,
                 download={"chunk_bytes": 4096})
    try:
        yield e
    finally:
        e.services.close()
        e.app.close()


class Sleeps(list[float]):
    """The waits a GraphClient asked for, recorded instead of slept."""


def record_sleeps(e: Env) -> Sleeps:
    """Swap the env's Services for ones whose Graph client records its waits."""
    sleeps = Sleeps()
    e.services.close()
    settings = e.settings
    e.services = Services(
        graph_factory=lambda: GraphClient.from_settings(settings.graph, sleep=sleeps.append),
        transcriber=e.services.transcriber)
    return sleeps


def rows(e: Env) -> dict[str, Recording]:
    with e.app.session() as session:
        return {r.graph_recording_id: r for r in session.exec(select(Recording)).all()}


def row(e: Env, key: str) -> Recording:
    return rows(e)[recording_id(key)]


def make_due(e: Env) -> None:
    """Move every waiting or failed recording's retry time to now (as if the wait had passed)."""
    now = e.app.clock.now() - timedelta(seconds=1)
    with e.app.session() as session:
        session.exec(update(Recording).where(
            col(Recording.state).in_(["waiting", "failed"])).values(next_attempt_at=now))


def expire_leases(e: Env) -> None:
    """As if `daemon.lease_seconds` had passed since the holder's last renewal."""
    past = e.app.clock.now() - timedelta(seconds=1)
    with e.app.session() as session:
        session.exec(update(Recording).where(col(Recording.lease_owner).is_not(None))
                     .values(lease_expires_at=past))


def staging_files(e: Env) -> list[Path]:
    return [p for p in e.settings.staging_dir.rglob("*") if p.is_file()]


def transitions(e: Env, action: str) -> Counter[str]:
    """How many audit entries of `action` each recording (by row id) has."""
    with e.app.session() as session:
        return Counter(session.exec(select(AuditEntry.target_id)
                                    .where(AuditEntry.action == action)).all())


def assert_invariants(e: Env) -> None:
    """Nothing half-done: one transcript per stored recording, every sealed item opens, no
    temporary media left, audit chain intact."""
    with e.app.session() as session:
        recs = session.exec(select(Recording)).all()
        transcripts = session.exec(select(Transcript)).all()
        per_recording = Counter(t.recording_id for t in transcripts)
        for rec in recs:
            expected = 1 if rec.state == "stored" else 0
            assert per_recording[rec.id] == expected, (rec.graph_recording_id, rec.state)
            if rec.state not in ("discovered", "waiting", "failed", "blocked", "stored"):
                pytest.fail(f"recording {rec.graph_recording_id} left in {rec.state}")
            if rec.state != "stored" and rec.state not in ("blocked",):
                assert rec.lease_owner is None or rec.state == "discovered", rec
        for t in transcripts:
            for item, field in ((t.content_item, "content"), (t.participants_item, "participants"),
                                (t.subject_item, "subject")):
                if item is not None:
                    assert e.app.vault.open(session, item, owner=Owner("transcript", t.id, field))
    stored = transitions(e, "recording.stored")
    assert all(count == 1 for count in stored.values()), stored
    assert staging_files(e) == []
    assert audit.verify(e.app.engine).ok


# -- other scenarios and Graph endpoints ------------------------------------------------------

def load_corpus() -> Any:
    """`tests/data/bad/make_corpus.py` as a module (tests/data is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_corpus", BAD_DIR / "make_corpus.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def extra_meeting(meeting: str, recording: str, media: str) -> tuple[Meeting, EmuRecording]:
    """A meeting of the sample organiser with Casey attending (so the gate allows it)."""
    from tests.pipeline.conftest import END, MEMBER, MEMBER_MAIL, ORG, ORG_MAIL, START, TENANT

    records = (AttendanceRecord(id="r-org", email=ORG_MAIL, identity_id=ORG, seconds=600,
                                tenant_id=TENANT),
               AttendanceRecord(id="r-member", email=MEMBER_MAIL, identity_id=MEMBER,
                                seconds=600, tenant_id=TENANT))
    return (Meeting(id=meeting, organizer=ORG, subject="Extra", start=START, end=END,
                    attendance_reports=(AttendanceReport(id="rep-1", records=records),)),
            EmuRecording(id=recording, meeting=meeting, media=media, created=END, end=END))


def scenario_of(pairs: list[tuple[Meeting, EmuRecording]]) -> Scenario:
    """The sample organiser with only these meetings and recordings."""
    base = build_scenario()
    return dataclasses.replace(base, meetings=tuple(m for m, _ in pairs),
                               recordings=tuple(r for _, r in pairs), page_size=5)


@contextmanager
def env_for(home: Path, state_dir: Path, model: Any, scenario: Scenario, *,
            media_dir: Path | None = None, db_url: str | None = None,
            graph: dict[str, Any] | None = None, **overrides: Any) -> Iterator[Env]:
    """A whole installation against an emulator serving `scenario` (and, optionally, with
    Graph's base URL pointed elsewhere through `graph` overrides)."""
    from meeting_governance.context import AppContext, initialise
    from mg_emulator.scenario import default_media_dir
    from tests.conftest import make_settings

    with EmulatorServer(scenario, media_dir=media_dir or default_media_dir(),
                        state_dir=state_dir) as emu:
        overrides.setdefault("gate", {"participants_deadline_hours": 24 * 60})
        graph_settings = GraphSettings(**emu.client_config(max_retries=3, backoff_base_s=0.0,
                                            **(graph or {}))).model_dump()
        settings = make_settings(home, db_url, graph=graph_settings, **overrides)
        initialise(settings, home / "config.toml")
        app = AppContext.open(settings)
        app.actor = "test"
        transcriber = (model if isinstance(model, Transcriber)
                       else Transcriber(settings.transcription, model=model))
        services = Services(
            graph_factory=lambda: GraphClient.from_settings(settings.graph, sleep=lambda s: None),
            transcriber=transcriber)
        e = Env(app, emu, services, settings)
        try:
            yield e
        finally:
            e.services.close()
            e.app.close()


class RawGraph:
    """A real HTTPS server (the emulator's certificate) that answers every Graph GET with a
    fixed body: `listing` for getAllRecordings, `other` for the rest. `{SELF}` in a body
    becomes the request's own URL. Sign-in stays with the emulator."""

    def __init__(self, emulator: EmulatorServer, *, listing: bytes, other: bytes = b"{}") -> None:
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.listing, self.other = listing, other
        self.paths: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                outer.paths.append(self.path)
                body = outer.listing if "getAllRecordings" in self.path else outer.other
                body = body.replace(b"{SELF}", (outer.base + self.path).encode())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(emulator.tls.server_cert, emulator.tls.server_key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.base = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"{self.base}/v1.0"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
