"""A whole installation against the Graph emulator: real msal/requests over HTTPS, the real
tiny.en model on the real speech clips the package ships, SQLite or PostgreSQL underneath.

`env` transcribes with the real model (the session's `whisper_model`); `fake_env` is the same
installation with the FakeTranscriber, for tests about leases, states, the gate and faults
that only need something transcribed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from meeting_governance.config import GraphSettings, Settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.graph import GraphClient
from meeting_governance.pipeline import Services
from meeting_governance.transcribe import Transcriber
from mg_emulator import (
    AttendanceRecord,
    AttendanceReport,
    Attendee,
    EmulatorKeys,
    EmulatorServer,
    Meeting,
    Organizer,
    Person,
    Recording,
    Scenario,
)
from mg_emulator.scenario import default_media_dir
from tests.conftest import DatabaseTemplate, make_settings
from tests.fake_transcriber import FakeTranscriber

TENANT = "pipeline-tenant"
ORG = "6f1c3a52-8d0e-4b7a-9c21-3e5f7a9b1c01"
MEMBER = "a1b2c3d4-0001-4000-8000-000000000001"
OPTED = "a1b2c3d4-0002-4000-8000-000000000002"
ORG_MAIL = "alex.organiser@contoso.example"
MEMBER_MAIL = "casey.member@contoso.example"
OPTED_MAIL = "dana.optout@contoso.example"
SUBJECTS = {"ok": "Quarterly kittens strategy", "optout": "Retro with Dana",
            "unknown": "Customer call", "corrupt": "Broken upload", "noreport": "Planning"}
# Words spoken in sample-1.m4a (LibriSpeech 1988-24833-0000/0002): they must come out of the
# model, and never show up in clear anywhere on disk.
SPOKEN = ["kittens", "asthma"]
PERSONAL = [ORG_MAIL, MEMBER_MAIL, OPTED_MAIL, "Casey Member", "Dana Optout",
            *SUBJECTS.values()]

START = datetime(2026, 11, 2, 9, tzinfo=UTC)
END = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def _record(oid: str, mail: str, name: str) -> AttendanceRecord:
    return AttendanceRecord(id=f"r-{oid[-4:]}", email=mail, identity_id=oid, display_name=name,
                            seconds=600, tenant_id=TENANT)


def meeting_id(key: str) -> str:
    return {"ok": "MSo-ok/weekly+sync==", "optout": "MSo-optout=/retro",
            "unknown": "MSo-unknown#guest", "corrupt": "MSo-corrupt=",
            "noreport": "MSo-noreport@=="}[key]


def recording_id(key: str) -> str:
    return f"VjIj-{key}=/rec+1"


def build_scenario() -> Scenario:
    organiser = _record(ORG, ORG_MAIL, "Alex Organiser")
    member = _record(MEMBER, "Casey.Member@Contoso.example", "Casey Member")

    def meeting(key: str, *records: AttendanceRecord, attendees: tuple[Attendee, ...] = (),
                report: bool = True) -> Meeting:
        reports = (AttendanceReport(id=f"rep-{key}", records=records),) if report else ()
        return Meeting(id=meeting_id(key), organizer=ORG, subject=SUBJECTS[key], start=START,
                       end=END, join_url=f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{key}%40thread.v2/0",
                       attendees=attendees, attendance_reports=reports)

    meetings = (
        meeting("ok", organiser, member),
        meeting("optout", organiser, _record(OPTED, OPTED_MAIL, "Dana Optout")),
        meeting("unknown", organiser, AttendanceRecord(
            id="r-visitor", identity_id="teamsvisitor:8f9a0b1c", display_name="Visitor",
            seconds=100)),
        meeting("corrupt", organiser, member),
        meeting("noreport", attendees=(Attendee(upn=MEMBER_MAIL, object_id=MEMBER,
                                                 display_name="Casey Member", tenant_id=TENANT),),
                report=False),
    )
    media = {"ok": "sample-1.m4a", "optout": "sample-2.m4a", "unknown": "sample-3.m4a",
             "corrupt": "corrupt.mp4", "noreport": "sample-4.m4a"}
    recordings = tuple(
        Recording(id=recording_id(k), meeting=meeting_id(k), media=m, content_type="video/mp4",
                  created=END, end=END, call_id=f"call-{k}") for k, m in media.items())
    people = (Person(id=MEMBER, display_name="Casey Member", upn=MEMBER_MAIL, mail=MEMBER_MAIL),
              Person(id=OPTED, display_name="Dana Optout", upn=OPTED_MAIL, mail=OPTED_MAIL))
    return Scenario(tenant_id=TENANT, client_id="pipeline-client", client_secret="pipeline-secret",
                    page_size=2, organizers=(Organizer(id=ORG, upn=ORG_MAIL,
                                                       display_name="Alex Organiser"),),
                    meetings=meetings, recordings=recordings, people=people)


@dataclass
class Env:
    app: AppContext
    emulator: EmulatorServer
    services: Services
    settings: Settings

    def graph(self) -> GraphClient:
        return GraphClient.from_settings(self.settings.graph, sleep=lambda s: None)

    def content_requests(self) -> list[str]:
        return [r.path for r in self.emulator.requests.all() if r.path.endswith("/content")]


def graph_overrides(emulator: EmulatorServer) -> dict[str, Any]:
    return GraphSettings(**emulator.client_config(max_retries=3, backoff_base_s=0.0)).model_dump()


@pytest.fixture
def emulator(emulator_keys: EmulatorKeys) -> Iterator[EmulatorServer]:
    with EmulatorServer(build_scenario(), media_dir=default_media_dir(), keys=emulator_keys) as emu:
        yield emu


def make_env(home: Path, db_url: str | None, emulator: EmulatorServer, model: Any, *,
             template: DatabaseTemplate | None = None, **overrides: Any) -> Env:
    """An initialised installation against `emulator`.

    `model` is the session's real Whisper model, or a ready Transcriber (a FakeTranscriber);
    `template`, the session's migrated database to start from (see `DatabaseTemplate`)."""
    # The sample meetings are from early November: give them 60 days to become known.
    overrides.setdefault("gate", {"participants_deadline_hours": 24 * 60})
    settings = make_settings(home, db_url, graph=graph_overrides(emulator), **overrides)
    if template is not None:
        template.apply(settings)
    initialise(settings, home / "config.toml")
    app = AppContext.open(settings)
    app.actor = "test"
    transcriber = (model if isinstance(model, Transcriber)
                   else Transcriber(settings.transcription, model=model))
    services = Services(graph_factory=lambda: GraphClient.from_settings(settings.graph,
                                                                        sleep=lambda s: None),
                        transcriber=transcriber)
    return Env(app, emulator, services, settings)


@pytest.fixture
def env(home: Path, db_url: str, emulator: EmulatorServer, whisper_model: Any,
        db_template: DatabaseTemplate) -> Iterator[Env]:
    e = make_env(home, db_url, emulator, whisper_model, template=db_template)
    try:
        yield e
    finally:
        e.services.close()
        e.app.close()


@pytest.fixture
def fake_env(home: Path, db_url: str, emulator: EmulatorServer,
             fake_transcriber: FakeTranscriber, db_template: DatabaseTemplate) -> Iterator[Env]:
    """`env` with the FakeTranscriber: no model, so in the fast lane (SQLite)."""
    e = make_env(home, db_url, emulator, fake_transcriber, template=db_template)
    try:
        yield e
    finally:
        e.services.close()
        e.app.close()


def subprocess_env(home: Path, emulator: EmulatorServer, db_url: str | None = None,
                   **extra: str) -> dict[str, str]:
    """Environment for a `python -m meeting_governance …` child against `emulator`.

    Settings travel as MG_* variables (the client secret never touches a file)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    graph = GraphSettings(**emulator.client_config())
    env.update({
        "MG_HOME": str(home),
        "HF_HUB_OFFLINE": "1",
        "MG_GRAPH__TENANT_ID": graph.tenant_id,
        "MG_GRAPH__CLIENT_ID": graph.client_id,
        "MG_GRAPH__CLIENT_SECRET": graph.client_secret,
        "MG_GRAPH__CLOUD": "custom",
        "MG_GRAPH__AUTHORITY_HOST": graph.authority_host,
        "MG_GRAPH__BASE_URL": graph.base_url,
        "MG_GRAPH__CA_BUNDLE": graph.ca_bundle,
        "MG_GRAPH__ORGANIZERS": ",".join(graph.organizers),
        "MG_GRAPH__BACKOFF_BASE_S": "0",
        "MG_GATE__PARTICIPANTS_DEADLINE_HOURS": str(24 * 60),
        "MG_DAEMON__METRICS_PORT": "0",
    })
    if db_url:
        env["MG_DATABASE__URL"] = db_url
    env.update(extra)
    return env
