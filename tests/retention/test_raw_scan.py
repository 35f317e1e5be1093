"""Below the rows: whatever bytes of a purged item remain in the database's files are under
destroyed keys.

PostgreSQL keeps deleted and updated tuples in its heap pages until they are reused (VACUUM
marks the space free, it does not zero it); SQLite keeps a WAL and free pages unless it can
checkpoint and vacuum. The test reads those bytes directly — `pageinspect` on PostgreSQL, the
file itself on SQLite — finds the wrapped data keys of the purged items, and shows that none of
them can be unwrapped with the keyring as it is after the purge. Also: a purge that cannot
compact SQLite (a reader holds a transaction) says so in its report and receipt, and the
command exits non-zero.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy
from sqlmodel import Session, select

from meeting_governance.context import AppContext
from meeting_governance.epochs import payload_owner
from meeting_governance.errors import KeyError_
from meeting_governance.models import VaultItem
from meeting_governance.purge import purge
from meeting_governance.vault import wrap_aad

from .helpers import make_transcript


def snapshot(app: AppContext) -> dict[str, VaultItem]:
    with Session(app.engine) as session:
        return {i.id: i for i in session.exec(select(VaultItem)).all()}


def cannot_unwrap(app: AppContext, item: VaultItem) -> bool:
    assert item.wrapped_key is not None and item.epoch_id is not None
    try:
        app.keys.unwrap(item.epoch_id, item.wrapped_key,
                        wrap_aad(item.id, item.epoch_id, payload_owner(item)))
    except KeyError_:
        return True
    return False


def seed(app: AppContext) -> tuple[list[VaultItem], list[VaultItem]]:
    now = app.clock.now()
    doomed = [make_transcript(app, words=f"delta {i}", meeting_id=f"d{i}",
                              retain_until=now - timedelta(hours=1)) for i in range(3)]
    kept = make_transcript(app, words="echo", meeting_id="k", retain_until=now + timedelta(days=90))
    items = snapshot(app)
    ids = {t.id for t in doomed}
    gone = [i for i in items.values() if i.owner_id in ids]
    stay = [i for i in items.values() if i.owner_id == kept.id]
    assert len(gone) == 9 and len(stay) == 3
    return gone, stay


@pytest.mark.postgres
def test_postgres_heap_pages_hold_only_bytes_under_destroyed_keys(
        app: AppContext, request: pytest.FixtureRequest) -> None:
    if app.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    gone, stay = seed(app)
    purge(app, as_of=app.clock.now())

    def heap_bytes() -> bytes:
        with app.engine.begin() as conn:
            conn.execute(sqlalchemy.text("CREATE EXTENSION IF NOT EXISTS pageinspect SCHEMA public"))
            schema = conn.execute(sqlalchemy.text("SELECT current_schema()")).scalar()
            pages = conn.execute(sqlalchemy.text(
                "SELECT pg_relation_size(:t) / current_setting('block_size')::int"),
                {"t": f'"{schema}".vault_item'}).scalar()
            data = b""
            for page in range(int(pages or 0)):
                data += bytes(conn.execute(sqlalchemy.text(
                    "SELECT public.get_raw_page(:t, :p)"),
                    {"t": f'"{schema}".vault_item', "p": page}).scalar())
            return data

    raw = heap_bytes()
    lingering = [i for i in gone if i.wrapped_key and bytes(i.wrapped_key) in raw]
    assert lingering, "dead tuples still hold the purged wrapped keys (what this test is about)"
    assert all(cannot_unwrap(app, i) for i in lingering)
    assert not any(cannot_unwrap(app, i) for i in stay if i.epoch_id in
                   {s.epoch_id for s in snapshot(app).values() if s.wrapped_key})
    with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sqlalchemy.text("VACUUM vault_item"))
    after_vacuum = heap_bytes()
    for item in gone:
        if item.wrapped_key and bytes(item.wrapped_key) in after_vacuum:
            assert cannot_unwrap(app, item)


def test_sqlite_file_holds_only_bytes_under_destroyed_keys(sqlite_app: AppContext) -> None:
    app = sqlite_app
    gone, _stay = seed(app)
    db = Path(app.settings.database_url.split("///", 1)[1])
    # A reader holds a transaction through the purge: no checkpoint can complete.
    reader = sqlite3.connect(db)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM vault_item").fetchone()
    try:
        report = purge(app, as_of=app.clock.now())
        raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())
    finally:
        reader.rollback()
        reader.close()
    assert report.purged == 3 and not report.complete
    assert report.compaction.status.startswith("incomplete")
    doc = json.loads(report.receipt_path.read_bytes())  # type: ignore[union-attr]
    assert doc["compaction"].startswith("incomplete")  # the receipt does not claim it
    assert {k["key_id"] for k in doc["keys_destroyed"]} >= {i.epoch_id for i in gone}
    lingering = [i for i in gone if i.wrapped_key and bytes(i.wrapped_key) in raw]
    assert lingering, "the WAL still holds the purged wrapped keys (what this test is about)"
    assert all(cannot_unwrap(app, i) for i in gone)
    # Once the reader is gone, the next run compacts and says so.
    again = purge(app, as_of=app.clock.now())
    assert again.complete and again.compaction.status == "complete"
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*") if p.is_file())
    assert not [i for i in gone if i.wrapped_key and bytes(i.wrapped_key) in raw]


@pytest.mark.slow
def test_cli_purge_exits_non_zero_when_compaction_is_blocked(sqlite_app: AppContext) -> None:
    import subprocess
    import sys

    from .test_lock import cli_env

    app = sqlite_app
    seed(app)
    db = Path(app.settings.database_url.split("///", 1)[1])
    reader = sqlite3.connect(db)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM vault_item").fetchone()
    try:
        run = subprocess.run([sys.executable, "-m", "meeting_governance", "purge", "--json"],
                             env=cli_env(app), capture_output=True, text=True, timeout=300)
    finally:
        reader.rollback()
        reader.close()
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["purged"] == 3 and report["complete"] is False and report["keys_destroyed"]
    assert "purge incomplete: compaction incomplete" in run.stderr
    assert "Traceback" not in run.stderr
