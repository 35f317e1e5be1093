"""The database on both engines: migrations, pragmas, damage, time zones, transactions."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import StatementError
from sqlmodel import Session, SQLModel

from meeting_governance import models
from meeting_governance.context import AppContext, initialise
from meeting_governance.db import (
    check_schema,
    current_revision,
    head_revision,
    make_engine,
    migrate,
    session_scope,
)
from meeting_governance.errors import DatabaseError
from meeting_governance.models import KekVersion, TranscriptParticipant

from .conftest import raw

models.load_all()  # the schema tests compare every table, not only those imported so far


def test_migrations_create_every_table(app: AppContext) -> None:
    tables = set(inspect(app.engine).get_table_names())
    expected = set(SQLModel.metadata.tables)
    assert len(expected) == 26, sorted(expected)  # every model module was loaded
    assert expected <= tables, f"missing: {sorted(expected - tables)}"
    assert "alembic_version" in tables
    assert current_revision(app.engine) == head_revision()
    check_schema(app.engine)


def test_every_model_column_exists(app: AppContext) -> None:
    inspector = inspect(app.engine)
    for name, table in SQLModel.metadata.tables.items():
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert set(table.columns.keys()) <= columns, name


def test_migrating_twice_applies_nothing(app: AppContext) -> None:
    assert migrate(app.engine) == []
    report = initialise(app.settings, app.settings.home / "config.toml")
    assert not report.changed
    assert report.migrations == ()
    assert any("up to date" in line for line in report.existing)


def test_fresh_database_reports_the_revisions_applied(settings: object) -> None:
    from meeting_governance.config import Settings

    assert isinstance(settings, Settings)
    engine = make_engine(settings.database_url)
    try:
        with pytest.raises(DatabaseError, match="run `meeting-governance init`"):
            check_schema(engine)
        applied = migrate(engine)
        assert applied[-1] == head_revision()
        assert applied[0] == "0001"
    finally:
        engine.dispose()


def test_sqlite_pragmas(sqlite_app: AppContext) -> None:
    with sqlite_app.engine.connect() as conn:
        def pragma(name: str) -> object:
            return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

        assert pragma("journal_mode") == "wal"
        assert pragma("foreign_keys") == 1
        assert pragma("secure_delete") == 1
        assert pragma("busy_timeout") == sqlite_app.settings.database.busy_timeout_ms


def test_foreign_keys_are_enforced(app: AppContext) -> None:
    with pytest.raises(DatabaseError), app.session() as session:
        session.add(TranscriptParticipant(transcript_id="no-such-transcript", blind="b" * 64))


def test_transaction_rolls_back_on_error(app: AppContext) -> None:
    with pytest.raises(RuntimeError), app.session() as session:
        session.add(KekVersion(version=99, created_at=datetime.now(UTC)))
        session.flush()
        raise RuntimeError("boom")
    with Session(app.engine) as session:
        assert session.get(KekVersion, 99) is None


@pytest.mark.parametrize("damage", ["garbage", "truncated", "header-only"])
def test_damaged_sqlite_file_is_a_clear_error(sqlite_app: AppContext, tmp_path: Path,
                                              damage: str) -> None:
    from meeting_governance.db import checkpoint

    checkpoint(sqlite_app.engine)
    sqlite_app.close()
    db = Path(sqlite_app.settings.database_url.split("///", 1)[1])
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if damage == "garbage":
        db.write_bytes(bytes(range(256)) * 40)
    elif damage == "truncated":
        copy = tmp_path / "copy.db"
        shutil.copyfile(db, copy)
        db.write_bytes(copy.read_bytes()[:20000])
    else:
        db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)
    engine = make_engine(sqlite_app.settings.database_url)
    try:
        with pytest.raises(DatabaseError) as info:
            migrate(engine)
            # A truncated file can still answer the first query: reading every table must fail.
            for table in SQLModel.metadata.tables:
                raw_app = AppContext(settings=sqlite_app.settings, engine=engine,
                                     keys=sqlite_app.keys, vault=sqlite_app.vault,
                                     clock=sqlite_app.clock)
                raw(raw_app, f"SELECT * FROM {table}")
        message = str(info.value)
        assert "damaged or not a database" in message or "cannot use the database" in message
        assert "Traceback" not in message
        assert "\n" not in message
    finally:
        engine.dispose()


def test_utc_datetimes_round_trip_aware(app: AppContext) -> None:
    cest = timezone(timedelta(hours=2))
    written = datetime(2026, 3, 29, 3, 30, 15, 123456, tzinfo=cest)
    with app.session() as session:
        session.add(KekVersion(version=42, created_at=written))
    with Session(app.engine) as session:
        row = session.get(KekVersion, 42)
        assert row is not None
        assert row.created_at.tzinfo is not None
        assert row.created_at.utcoffset() == timedelta(0)
        assert row.created_at == written
        assert row.created_at.microsecond == 123456


def test_naive_datetime_is_refused(app: AppContext) -> None:
    with pytest.raises(StatementError, match="naive datetime"), app.session() as session:
        session.add(KekVersion(version=43, created_at=datetime(2026, 1, 1, 12, 0)))
    with Session(app.engine) as session:
        assert session.get(KekVersion, 43) is None


def test_session_scope_commits(app: AppContext) -> None:
    with session_scope(app.engine) as session:
        session.add(KekVersion(version=44, created_at=datetime.now(UTC)))
    assert raw(app, "SELECT version FROM kek_version WHERE version = 44") == [(44,)]
