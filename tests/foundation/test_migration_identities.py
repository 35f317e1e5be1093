"""Revision 0013 upgrades a database that already holds data, on SQLite and PostgreSQL: every
opt-out keeps matching what it was registered with, every person hold keeps its person, stored
delta links are restarted (they may have been built with the end date that froze discovery),
recordings keep their window."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from sqlmodel import select

from meeting_governance.context import AppContext, initialise
from meeting_governance.db import alembic_config, current_revision, make_engine
from meeting_governance.dbtypes import UTCDateTime
from meeting_governance.holds import active_holds
from meeting_governance.models import (
    DeltaLink,
    HoldIdentifier,
    OptOutIdentifier,
    Recording,
    RegistryState,
)
from meeting_governance.optouts import MeetingRef, matching_rows
from tests.conftest import make_settings

NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)
MAIL, OID, PERSON = "b" * 64, "c" * 64, "d" * 64


def _t(name: str, *columns: sa.Column) -> sa.TableClause:
    return sa.table(name, *columns)


OPTOUT = _t("optout", sa.column("id", sa.String), sa.column("email_blind", sa.String),
            sa.column("object_id_blind", sa.String), sa.column("scope", sa.String),
            sa.column("covers_recording", sa.Boolean), sa.column("covers_transcription", sa.Boolean),
            sa.column("created_by", sa.String), sa.column("created_at", UTCDateTime))
HOLD = _t("legal_hold", sa.column("id", sa.String), sa.column("person_blind", sa.String),
          sa.column("set_by", sa.String), sa.column("set_at", UTCDateTime))
DELTA = _t("delta_link", sa.column("organizer_id", sa.String), sa.column("link", sa.String),
           sa.column("updated_at", UTCDateTime))
RECORDING = _t("recording", sa.column("graph_recording_id", sa.String),
               sa.column("meeting_id", sa.String), sa.column("organizer_id", sa.String),
               sa.column("state", sa.String), sa.column("reason", sa.String),
               sa.column("attempts", sa.Integer), sa.column("first_seen_at", UTCDateTime),
               sa.column("updated_at", UTCDateTime), sa.column("meeting_end", UTCDateTime))


def test_0013_upgrades_a_database_holding_data(home, db_url) -> None:
    settings = make_settings(home, db_url)
    engine = make_engine(settings.database_url)
    command.upgrade(alembic_config(engine), "0002")
    assert current_revision(engine) == "0002"
    common = {"scope": "all", "covers_recording": True, "covers_transcription": True,
              "created_by": "cli", "created_at": NOW}
    with engine.begin() as conn:
        conn.execute(sa.insert(OPTOUT), [
            {"id": "by-mail", "email_blind": MAIL, "object_id_blind": None, **common},
            {"id": "by-both", "email_blind": MAIL, "object_id_blind": OID, **common}])
        conn.execute(sa.insert(HOLD), [{"id": "h1", "person_blind": PERSON, "set_by": "dpo",
                                        "set_at": NOW}])
        conn.execute(sa.insert(DELTA), [{
            "organizer_id": "org", "updated_at": NOW,
            "link": "https://graph.microsoft.com/v1.0/users('org')/onlineMeetings/"
                    "getAllRecordings(meetingOrganizerUserId='org')/delta?deltaToken=frozen"}])
        conn.execute(sa.insert(RECORDING), [{
            "graph_recording_id": "r1", "meeting_id": "m1", "organizer_id": "org",
            "state": "waiting", "reason": "", "attempts": 0, "first_seen_at": NOW,
            "updated_at": NOW, "meeting_end": NOW}])
    engine.dispose()

    report = initialise(settings, home / "config.toml")
    assert "0013" in report.migrations
    app = AppContext.open(settings)
    try:
        with app.session() as session:
            rows = session.exec(select(OptOutIdentifier)).all()
            assert sorted((r.optout_id, r.blind, r.source) for r in rows) == [
                ("by-both", MAIL, "registered"), ("by-both", OID, "registered"),
                ("by-mail", MAIL, "registered")]
            ref = MeetingRef("m1", None, NOW, NOW)
            found = matching_rows(app, session, [], ref, purpose="transcription", blinds=[OID])
            assert [r.id for r in found] == ["by-both"]
            assert [h.blind for h in session.exec(select(HoldIdentifier)).all()] == [PERSON]
            assert PERSON in active_holds(session).person_blinds
            assert session.exec(select(RegistryState)).one().version == 0
            link = session.get(DeltaLink, "org")
            assert link is not None and link.fingerprint is None  # restarted by the next poll
            rec = session.exec(select(Recording)).one()
            assert rec.recording_end == NOW and rec.meeting_end == NOW
    finally:
        app.close()
