"""No address, name, note, reason or meeting link of an opt-out reaches the disk in clear."""

from __future__ import annotations

from meeting_governance.context import AppContext
from meeting_governance.optouts import MeetingRef, import_csv, list_optouts, matching, revoke_optout

from ..conftest import scan_for
from .helpers import JOIN_URL, add, at, person

EMAIL = "zelda.quintessential@privacy-probe.example"
NAME = "Zelda Quintessential-Probe"
NOTE = "confidential note about sabbatical leave"
REASON = "withdrawn after grievance hearing"
CSV_EMAIL = "yusuf.csvimported@privacy-probe.example"
CSV_NAME = "Yusuf Csvimported"
THREAD_PART = "meeting_NzQ5MjY2ZjEtYjQ0Zi00YTllLTlkYmE"


def test_nothing_personal_in_the_sqlite_files(sqlite_app: AppContext) -> None:
    app = sqlite_app
    oid = "7e57ab1e-c0de-4bad-9caf-e00000000001"
    view = add(app, email=EMAIL, object_id=oid, name=NAME, note=NOTE, meeting=JOIN_URL)
    with app.session() as session:
        import_csv(app, session, f"email,name,note\n{CSV_EMAIL},{CSV_NAME},{NOTE} 2\n",
                   actor="coordinator:ana")
    with app.session() as session:
        meeting = MeetingRef("graph-id", JOIN_URL, at(10), at(10, 11))
        assert matching(app, session, [person(email=EMAIL)], meeting)
        revoke_optout(app, session, view.id, actor="dpo:eve", reason=REASON)
    with app.session() as session:
        assert {v.email for v in list_optouts(app, session)} == {EMAIL, CSV_EMAIL}
    needles = [s.encode() for s in (EMAIL, oid, NAME, NOTE, REASON, CSV_EMAIL, CSV_NAME,
                                    THREAD_PART, "privacy-probe", "Quintessential")]
    home = app.settings.home
    assert list(home.glob("*.db*")), "the SQLite file should be under MG_HOME"
    assert scan_for(home, needles) == []
    # and still none after the WAL was folded into the main file
    raw = app.engine.raw_connection()  # outside SQLAlchemy's BEGIN IMMEDIATE
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.close()
    finally:
        raw.close()
    assert scan_for(home, needles) == []

