"""Issue #13 end to end, against the emulator with the real model on real speech: one person,
every address — and discovery that keeps finding recordings.

A tenant as a real directory holds it: Jane opted out under her alias and Teams lists her
primary address; Lee, a B2B guest, opted out with his own address and Teams shows his `#EXT#`
UPN; Kim opted out by e-mail and the attendance report lists her by object id only; a recurring
meeting has reports for other occurrences only; a report is empty; Sam opts out while the model
transcribes his meeting; a recording is created after the first poll. Each ends as the issue
says, and no media is requested for any meeting the gate blocks.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import select

from meeting_governance import audit, formats
from meeting_governance.db import checkpoint
from meeting_governance.models import Recording as RecordingRow
from meeting_governance.models import Transcript
from meeting_governance.optouts import OptOutRequest, add_optout
from meeting_governance.pipeline import SilentReporter, poll, process
from meeting_governance.store import read_content
from mg_emulator import (
    AttendanceRecord,
    AttendanceReport,
    EmulatorKeys,
    EmulatorServer,
    Meeting,
    Organizer,
    Person,
    Recording,
    Scenario,
)
from mg_emulator.scenario import default_media_dir
from tests.conftest import DatabaseTemplate, scan_for
from tests.fake_transcriber import FakeTranscriber

from .conftest import SPOKEN, Env, make_env

TENANT = "contoso-tenant"
ORG = "6f1c3a52-8d0e-4b7a-9c21-3e5f7a9b1c01"
JANE, LEE, KIM, SAM, PAT = (f"b1000000-0000-4000-8000-00000000000{n}" for n in range(1, 6))
LEE_UPN = f"lee_northwind.example#EXT#@{TENANT}.onmicrosoft.com"
ADDRESSES = ["jane.smith@contoso.example", "j.smith@contoso.example", "lee@northwind.example",
             "kim.lee@contoso.example", "sam.jones@contoso.example", "pat.doe@contoso.example"]
DAY = datetime(2026, 11, 20, 9, tzinfo=UTC)


def _when(n: int) -> tuple[datetime, datetime]:
    start = DAY + timedelta(hours=2 * n)
    return start, start + timedelta(minutes=45)


def _record(oid: str, email: str = "") -> AttendanceRecord:
    return AttendanceRecord(id=f"r-{oid[-2:]}", email=email, identity_id=oid, seconds=600,
                            tenant_id=TENANT)


ORGANISER = _record(ORG, "alex.organiser@contoso.example")


def _meeting(key: str, n: int, *records: AttendanceRecord,
             reports: tuple[AttendanceReport, ...] | None = None) -> Meeting:
    start, end = _when(n)
    return Meeting(id=f"MSo-{key}==", organizer=ORG, subject=f"Subject {key}", start=start,
                   end=end, attendance_reports=reports if reports is not None else (
                       AttendanceReport(id=f"rep-{key}", records=(ORGANISER, *records)),))


def _recording(key: str, n: int, media: str = "sample-3.m4a") -> Recording:
    start, end = _when(n)
    return Recording(id=f"VjIj-{key}=", meeting=f"MSo-{key}==", media=media,
                     content_type="audio/mp4", created=start + timedelta(minutes=1), end=end)


def scenario() -> Scenario:
    people = (
        Person(id=JANE, display_name="Jane Smith", upn="jane.smith@contoso.example",
               mail="jane.smith@contoso.example",
               proxy_addresses=("SMTP:jane.smith@contoso.example",
                                "smtp:j.smith@contoso.example")),
        Person(id=LEE, display_name="Lee North", upn=LEE_UPN, mail="lee@northwind.example",
               user_type="Guest"),
        Person(id=KIM, display_name="Kim Lee", upn="kim.lee@contoso.example",
               mail="kim.lee@contoso.example"),
        Person(id=SAM, display_name="Sam Jones", upn="sam.jones@contoso.example",
               mail="sam.jones@contoso.example"),
        Person(id=PAT, display_name="Pat Doe", upn="pat.doe@contoso.example",
               mail="pat.doe@contoso.example"),
    )
    weekly_start = _when(3)[0]
    other_weeks = tuple(AttendanceReport(
        id=f"rep-weekly-{w}", start=weekly_start - timedelta(days=7 * w),
        end=weekly_start - timedelta(days=7 * w) + timedelta(minutes=30),
        records=(ORGANISER, _record(PAT, "pat.doe@contoso.example"))) for w in (1, 2))
    meetings = (
        _meeting("alias", 0, _record(JANE, "jane.smith@contoso.example")),
        _meeting("guest", 1, _record(LEE, LEE_UPN)),
        _meeting("oid-only", 2, _record(KIM)),
        _meeting("stale", 3, reports=other_weeks),
        _meeting("empty", 4, reports=(AttendanceReport(id="rep-empty"),)),
        _meeting("during", 5, _record(SAM, "sam.jones@contoso.example")),
        _meeting("late", 6, _record(PAT, "pat.doe@contoso.example")),
    )
    recordings = tuple(_recording(k, n, "sample-1.m4a" if k == "during" else "sample-3.m4a")
                       for n, k in enumerate(["alias", "guest", "oid-only", "stale", "empty",
                                              "during"]))
    return Scenario(tenant_id=TENANT, client_id="c13", client_secret="s13", page_size=2,
                    organizers=(Organizer(id=ORG, upn="alex.organiser@contoso.example",
                                          display_name="Alex Organiser"),),
                    meetings=meetings, recordings=recordings, people=people)


@pytest.fixture
def tenant(emulator_keys: EmulatorKeys) -> Iterator[EmulatorServer]:
    with EmulatorServer(scenario(), media_dir=default_media_dir(), keys=emulator_keys) as emu:
        yield emu


@pytest.fixture
def e(home: Path, db_url: str, tenant: EmulatorServer, fake_transcriber: FakeTranscriber,
      db_template: DatabaseTemplate) -> Iterator[Env]:
    """The gate decides on identities, not words: the FakeTranscriber is enough."""
    env = make_env(home, db_url, tenant, fake_transcriber, template=db_template)
    try:
        yield env
    finally:
        env.services.close()
        env.app.close()


def _add(env: Env, **fields: Any) -> str:
    with env.app.session() as session:
        return add_optout(env.app, session, OptOutRequest(**fields), actor="coordinator").id


def _states(env: Env) -> dict[str, tuple[str, str]]:
    with env.app.session() as session:
        rows = session.exec(select(RecordingRow)).all()
    return {r.graph_recording_id.removeprefix("VjIj-").removesuffix("="): (r.state, r.reason)
            for r in rows}


class OptOutWhileTranscribing(SilentReporter):
    """The coordinator registers Sam's opt-out from the pipeline's own progress hook, once the
    transcriber has done some audio of his meeting."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.current: int | None = None
        self.done = False

    def step(self, recording_id: int, step: str) -> None:
        self.current = recording_id

    def transcribe(self, recording_id: int, done: float, total: float) -> None:
        with self.env.app.session() as session:
            rec = session.get(RecordingRow, recording_id)
            ours = rec is not None and rec.graph_recording_id == "VjIj-during="
        if ours and not self.done and done > 0:
            self.done = True
            _add(self.env, email="Sam.Jones@contoso.example")


def test_one_person_every_address(e: Env) -> None:
    _add(e, email="j.smith@contoso.example")        # Jane, under her alias
    _add(e, email="lee@northwind.example")          # Lee, the guest's own address
    _add(e, email="kim.lee@contoso.example")        # Kim, by e-mail; Teams shows her oid only

    with e.graph() as graph:
        first = poll(e.app, graph)
    assert first.new == 6 and not first.errors
    # A recording made after the first poll: the stored delta link must still bring it.
    e.emulator.add_recording(Recording(
        id="VjIj-late=", meeting="MSo-late==", media="sample-3.m4a", content_type="audio/mp4",
        created=datetime.now(UTC) + timedelta(minutes=5), end=_when(6)[1]))
    with e.graph() as graph:
        second = poll(e.app, graph)
    assert second.new == 1 and not second.restarted

    reporter = OptOutWhileTranscribing(e)
    e.services.reporter = reporter
    process(e.app, e.services, limit=20)
    states = _states(e)
    assert states["alias"] == ("blocked", "opted out (1 opt-out)")
    assert states["guest"] == ("blocked", "opted out (1 opt-out)")
    assert states["oid-only"] == ("blocked", "opted out (1 opt-out)")
    assert states["stale"][0] == "waiting"
    assert "only other occurrences" in states["stale"][1]
    assert states["empty"][0] == "waiting" and "attendance report is empty" in states["empty"][1]
    assert reporter.done
    assert states["during"] == ("blocked", "opted out (1 opt-out)")
    assert states["late"] == ("stored", "transcribed and stored")

    # Media only for the two that passed the gate (Sam's opt-out came while it transcribed).
    fetched = sorted(r.path.split("/recordings/")[1].split("/")[0]
                     for r in e.emulator.requests.all() if r.path.endswith("/content"))
    assert fetched == ["VjIj-during%3D", "VjIj-late%3D"]
    with e.app.session() as session:
        transcripts = session.exec(select(Transcript)).all()
        late = session.exec(select(RecordingRow).where(
            RecordingRow.graph_recording_id == "VjIj-late=")).one()
        assert [t.recording_id for t in transcripts] == [late.id]
        segments = formats.from_json(json.dumps(
            read_content(e.app, session, transcripts[0]))).segments
        text = formats.to_txt(segments).lower()
    assert text.strip()
    assert list(e.settings.staging_dir.rglob("*")) == []

    # Nothing personal in clear anywhere in the data directory (directory cache included).
    checkpoint(e.app.engine)
    needles = [a.encode() for a in ADDRESSES] + [LEE_UPN.encode(), b"Jane Smith", b"Kim Lee",
                                                 *(w.encode() for w in SPOKEN),
                                                 segments[0].text.encode()]  # what was stored
    assert scan_for(e.settings.home, needles) == []
    assert audit.verify(e.app.engine).ok


def test_an_unreadable_directory_keeps_every_meeting_waiting(e: Env) -> None:
    """Directory throttled past the retry budget: nobody can be resolved, nothing is fetched."""
    with e.graph() as graph:
        poll(e.app, graph)
    e.emulator.faults.set(throttle_count=10_000, throttle_retry_after="0", match="$batch")
    process(e.app, e.services, limit=20)
    states = _states(e)
    for key in ("alias", "guest", "oid-only", "during"):
        state, reason = states[key]
        assert state == "waiting", (key, reason)
        assert "the directory could not be read" in reason
    assert not [r for r in e.emulator.requests.all() if r.path.endswith("/content")]


class RegisterWhileTheStoreWaits(SilentReporter):
    """Registers Sam's opt-out in a transaction it keeps open until PostgreSQL shows another
    session waiting for a lock (the store's `FOR SHARE` on the registry version), then commits.
    The store can only block the recording if it waited for that commit."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.thread: threading.Thread | None = None
        self.store_waited = False

    def transcribe(self, recording_id: int, done: float, total: float) -> None:
        if self.thread is not None or done <= 0:
            return
        with self.env.app.session() as session:
            rec = session.get(RecordingRow, recording_id)
            if rec is None or rec.graph_recording_id != "VjIj-during=":
                return
        started = threading.Event()
        self.thread = threading.Thread(target=self._register, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(30)

    def _register(self, started: threading.Event) -> None:
        app = self.env.app
        with app.session() as session:
            add_optout(app, session, OptOutRequest(email="sam.jones@contoso.example"),
                       actor="coordinator")
            session.flush()
            started.set()
            deadline = time.monotonic() + 60
            with app.engine.connect() as watcher:
                while time.monotonic() < deadline and not self.store_waited:
                    waiting = watcher.execute(text(  # the store's lock on the registry version
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query ILIKE '%registry_state%FOR SHARE%'"))
                    self.store_waited = bool(waiting.scalar())
                    watcher.rollback()
                    time.sleep(0.05)


@pytest.mark.postgres
def test_the_store_waits_for_an_optout_being_registered(home: Path, pg_schema_url: str,
                                                        tenant: EmulatorServer,
                                                        fake_transcriber: FakeTranscriber) -> None:
    env = make_env(home, pg_schema_url, tenant, fake_transcriber)
    try:
        with env.graph() as graph:
            poll(env.app, graph)
        reporter = RegisterWhileTheStoreWaits(env)
        env.services.reporter = reporter
        process(env.app, env.services, limit=20)
        assert reporter.thread is not None
        reporter.thread.join(60)
        assert reporter.store_waited  # the store's last check waited for the registration
        assert _states(env)["during"] == ("blocked", "opted out (1 opt-out)")
        with env.app.session() as session:
            assert not session.exec(select(Transcript).join(
                RecordingRow, RecordingRow.id == Transcript.recording_id).where(
                RecordingRow.graph_recording_id == "VjIj-during=")).all()
    finally:
        env.services.close()
        env.app.close()


def test_a_report_is_trusted_only_after_it_settles(home: Path, db_url: str,
                                                   tenant: EmulatorServer,
                                                   fake_transcriber: FakeTranscriber) -> None:
    """Reports are written after the meeting and can be revised: within the settle time the
    recording waits (and nothing is fetched), whatever the report says."""
    days = (datetime.now(UTC) - DAY).total_seconds() / 86400 + 2
    env = make_env(home, db_url, tenant, fake_transcriber,
                   gate={"participants_deadline_hours": 24 * 60,
                         "attendance_settle_minutes": days * 24 * 60})
    try:
        _add(env, email="j.smith@contoso.example")
        _add(env, email="lee@northwind.example")
        _add(env, email="kim.lee@contoso.example")
        with env.graph() as graph:
            poll(env.app, graph)
        process(env.app, env.services, limit=20)
        states = _states(env)
        for key in ("alias", "guest", "oid-only"):  # opted out: blocked even so
            assert states[key][0] == "blocked"
        assert states["during"][0] == "waiting"
        assert "may still change" in states["during"][1]
        assert not [r for r in env.emulator.requests.all() if r.path.endswith("/content")]
    finally:
        env.services.close()
        env.app.close()
