"""The promise that reaches backups: a copy of the database taken before a purge, an erasure or
a rectification, opened with the keyring as it is afterwards, yields none of what was purged,
erased or corrected — and the live database still opens everything else.

The copy is a real backup: SQLite's online backup API, or on PostgreSQL a copy of every table
of the installation's schema. It is opened by a second installation pointed at the copy, with
the *current* keyring file (or token): exactly what an attacker with an old backup and today's
keys has. Runs on both databases and both keyrings.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from sqlmodel import Session, select

from meeting_governance.context import AppContext, initialise
from meeting_governance.db import is_sqlite
from meeting_governance.dsr import erase_person
from meeting_governance.epochs import payload_owner
from meeting_governance.errors import KeyError_
from meeting_governance.holds import set_hold
from meeting_governance.models import Hold, KeyEpoch, OptOut, Recording, Transcript, VaultItem
from meeting_governance.optouts import OptOutRequest, add_optout
from meeting_governance.purge import purge
from meeting_governance.rectify import rectify
from meeting_governance.transcribe import Segment
from tests.conftest import POSTGRES_URL, make_settings

from .helpers import ALICE, make_transcript, person

XAVIER = "xavier.erased@example.org"


@pytest.fixture
def app(home: Path, db_url: str, keyring_kind: dict[str, object]) -> Iterator[AppContext]:
    settings = make_settings(home, db_url, keys=keyring_kind)
    initialise(settings, settings.home / "config.toml")
    ctx = AppContext.open(settings)
    ctx.actor = "test"
    try:
        yield ctx
    finally:
        ctx.close()


# -- taking and opening a backup ------------------------------------------------------------------
@dataclass
class Backup:
    app: AppContext
    cleanup: Any

    def items(self) -> list[VaultItem]:
        with Session(self.app.engine) as session:
            return list(session.exec(select(VaultItem)).all())

    def open(self, item_id: str) -> bytes:
        """What the backup yields for one item, with today's keyring."""
        with Session(self.app.engine) as session:
            item = session.get(VaultItem, item_id)
            assert item is not None and item.wrapped_key is not None, "the backup holds it"
            return self.app.vault.open_item(item, owner=payload_owner(item))


def take_backup(app: AppContext, tmp_path: Path) -> Backup:
    """A full copy of the installation's database, opened with the live keyring."""
    if is_sqlite(app.engine):
        target = tmp_path / f"backup-{uuid.uuid4().hex[:6]}.db"
        source = sqlite3.connect(app.settings.database_url.split("///", 1)[1])
        copy = sqlite3.connect(target)
        source.backup(copy)
        source.close()
        copy.close()
        url = f"sqlite:///{target}"
        drop = None
    else:
        schema = f"b_{uuid.uuid4().hex[:12]}"
        with app.engine.begin() as conn:
            live = conn.execute(sqlalchemy.text("SELECT current_schema()")).scalar()
            tables = conn.execute(sqlalchemy.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
                {"s": live}).scalars().all()
            conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
            for table in tables:
                conn.execute(sqlalchemy.text(
                    f'CREATE TABLE "{schema}"."{table}" AS TABLE "{live}"."{table}"'))
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"

        def drop() -> None:
            admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    settings = make_settings(app.settings.home, url,
                             keys=app.settings.keys.model_dump())
    return Backup(AppContext.open(settings, apply_migrations=False), drop)


@pytest.fixture
def backups(app: AppContext, tmp_path: Path) -> Iterator[list[Backup]]:
    taken: list[Backup] = []
    yield taken
    for backup in taken:
        backup.app.close()
        if backup.cleanup:
            backup.cleanup()


def items_of(app: AppContext, *transcript_ids: str) -> list[str]:
    with Session(app.engine) as session:
        rows = [session.get(Transcript, t) for t in transcript_ids]
        return [i for r in rows if r for i in (r.content_item, r.participants_item,
                                                r.subject_item) if i]


def live_open(app: AppContext, item_id: str) -> bytes:
    with Session(app.engine) as session:
        item = session.get(VaultItem, item_id)
        assert item is not None
        return app.vault.open_item(item, owner=payload_owner(item))


def assert_gone(backup: Backup, item_ids: list[str]) -> None:
    assert item_ids
    for item_id in item_ids:
        with pytest.raises(KeyError_, match="destroyed"):
            backup.open(item_id)


def optout_and_hold(app: AppContext, held_transcript: str) -> tuple[str, str]:
    with app.session() as session:
        view = add_optout(app, session, OptOutRequest(email="olga.optout@example.org",
                                                      note="asked by phone"), actor="test")
    hold = set_hold(app, transcript_id=held_transcript, reason="complaint by Hannah Held")
    with Session(app.engine) as session:
        opt, held = session.get(OptOut, view.id), session.get(Hold, hold.id)
        assert opt is not None and opt.identity_item and held is not None and held.reason_item
        return opt.identity_item, held.reason_item


# -- the three ways data must go ------------------------------------------------------------------
def test_backup_before_a_purge(app: AppContext, tmp_path: Path, backups: list[Backup]) -> None:
    now = app.clock.now()
    due = [make_transcript(app, words=f"alpha secret {i}", meeting_id=f"due-{i}",
                           retain_until=now - timedelta(hours=1), with_recording=True)
           for i in range(2)]
    held = make_transcript(app, words="charlie held", meeting_id="held",
                           retain_until=now - timedelta(hours=1))
    later = make_transcript(app, words="bravo kept", meeting_id="later",
                            retain_until=now + timedelta(days=60))
    registry = optout_and_hold(app, held.id)
    backups.append(take_backup(app, tmp_path))
    backup = backups[0]
    doomed = items_of(app, *(t.id for t in due))
    with Session(app.engine) as session:
        doomed += [r.subject_item for r in session.exec(select(Recording)) if r.subject_item]
    assert len(doomed) == 8
    assert b"alpha secret" in backup.open(doomed[0])
    for item_id in doomed:
        backup.open(item_id)  # before the purge the backup opens everything

    report = purge(app, as_of=now)
    assert report.purged == 2 and report.held == 1 and report.keys_destroyed

    assert_gone(backup, doomed)
    for item_id in items_of(app, later.id) + list(registry):
        backup.open(item_id)  # epochs the purge did not touch: the backup still opens them
    for item_id in items_of(app, held.id, later.id) + list(registry):
        live_open(app, item_id)  # and the live database opens every survivor
    assert b"charlie held" in live_open(app, items_of(app, held.id)[0])
    with Session(app.engine) as session:  # the held transcript moved to the hold epoch's key
        labels = {session.get(KeyEpoch, session.get(VaultItem, i).epoch_id).label  # type: ignore[union-attr,arg-type]
                  for i in items_of(app, held.id)}
    assert labels == {"hold"}
    every_backup_item_accounted_for(app, backup)


def test_backup_before_an_erasure(app: AppContext, tmp_path: Path, backups: list[Backup]) -> None:
    now = app.clock.now()
    soon = now + timedelta(days=30)
    xs = [make_transcript(app, words=f"xavier said {i}", meeting_id=f"x-{i}", retain_until=soon,
                          participants=[person(XAVIER), person(ALICE)]) for i in range(2)]
    neighbour = make_transcript(app, words="same week, without xavier", meeting_id="n",
                                retain_until=soon, participants=[person(ALICE)])
    elsewhere = make_transcript(app, words="another week", meeting_id="e",
                                retain_until=now + timedelta(days=120), participants=[person(ALICE)])
    registry = optout_and_hold(app, elsewhere.id)
    backups.append(take_backup(app, tmp_path))
    doomed = items_of(app, *(t.id for t in xs))

    report = erase_person(app, email=XAVIER)
    assert sorted(report.erased) == sorted(t.id for t in xs) and report.keys_destroyed

    assert_gone(backups[0], doomed)
    for item_id in items_of(app, elsewhere.id) + list(registry):
        backups[0].open(item_id)
    for item_id in items_of(app, neighbour.id, elsewhere.id):
        live_open(app, item_id)
    assert b"same week" in live_open(app, items_of(app, neighbour.id)[0])
    every_backup_item_accounted_for(app, backups[0])


def test_backup_before_a_rectification(app: AppContext, tmp_path: Path,
                                       backups: list[Backup]) -> None:
    now = app.clock.now()
    row = make_transcript(app, words="the wrong figure was nine", meeting_id="r",
                          retain_until=now + timedelta(days=30))
    other = make_transcript(app, words="untouched", meeting_id="o",
                            retain_until=now + timedelta(days=30))
    backups.append(take_backup(app, tmp_path))
    old_content = row.content_item
    assert old_content and b"nine" in backups[0].open(old_content)

    report = rectify(app, row.id, [Segment(start=0.0, end=1.0, text="the right figure is ten")])
    assert report.keys_destroyed

    assert_gone(backups[0], [old_content])
    with Session(app.engine) as session:
        fresh = session.get(Transcript, row.id)
        assert fresh is not None and fresh.content_item != old_content
        assert fresh.content_item is not None
    assert b"ten" in live_open(app, fresh.content_item)
    for item_id in items_of(app, other.id):
        live_open(app, item_id)
    every_backup_item_accounted_for(app, backups[0])


def every_backup_item_accounted_for(app: AppContext, backup: Backup) -> None:
    """Every item in the backup either opens with today's keyring or sits under a key that the
    live installation records as destroyed (and the keyring no longer has): nothing in between."""
    with Session(app.engine) as session:
        destroyed = {e.id for e in session.exec(select(KeyEpoch)).all() if e.state == "destroyed"}
    for item in backup.items():
        if item.wrapped_key is None:
            continue
        try:
            backup.open(item.id)
        except KeyError_:
            assert item.epoch_id in destroyed and not app.keys.exists(item.epoch_id or "")
