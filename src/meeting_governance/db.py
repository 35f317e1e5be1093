"""Engine, sessions and migrations.

SQLite is the embedded default (WAL, foreign keys, busy timeout, secure_delete so freed pages
are zeroed); PostgreSQL is for several workers. The schema is only ever built by Alembic
(`migrate`), never by `create_all`, so a deployed database and a test database are the same.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DatabaseError as SADatabaseError
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from meeting_governance.errors import DatabaseError

if TYPE_CHECKING:  # Alembic loads only when there is something to migrate (it costs ~0.3 s)
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(busy_timeout_ms: int, path: str | None = None) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        if path and os.path.exists(path):
            os.chmod(path, 0o600)  # only the service reads it, wherever database.url puts it
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


def make_engine(url: str, *, busy_timeout_ms: int = 15000, pool_size: int = 5,
                echo: bool = False) -> Engine:
    """Create the engine; for SQLite also create the parent directory (0700)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = create_engine(
            url, echo=echo, connect_args={"timeout": busy_timeout_ms / 1000,
                                          "check_same_thread": False},
        )
        db_path = path if path and path != ":memory:" else None
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms, db_path))
        # pysqlite's own transaction handling defers BEGIN; take the write lock at BEGIN so
        # read-then-write transactions do not deadlock into "database is locked".
        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        return engine
    engine = create_engine(url, echo=echo, pool_size=pool_size, pool_pre_ping=True)

    @event.listens_for(engine, "handle_error")
    def _failed_ping_means_discard(context: Any) -> None:
        # A connection whose socket dropped mid-statement can come back to the pool still
        # "ACTIVE"; the pre-ping then fails with a ProgrammingError ("can't change 'autocommit'
        # now"), which the driver does not count as a disconnect, so the error would reach the
        # caller. Whatever makes a ping fail, that connection is of no use: discard it and let
        # the pool open a new one (seen when PostgreSQL backends are terminated under load).
        if context.is_pre_ping:
            context.is_disconnect = True

    return engine


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


_REVISION = re.compile(r"^revision\b[^=]*=\s*[\"']([^\"']+)[\"']", re.M)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=]*=(.*)$", re.M)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


def scripted_heads() -> frozenset[str]:
    """The head revisions of `migrations/versions`, read from the scripts' text (no Alembic):
    every revision that no other names as its `down_revision`."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found = _REVISION.search(source)
        if found:
            revisions.add(found.group(1))
        down = _DOWN_REVISION.search(source)
        if down:
            parents.update(_QUOTED.findall(down.group(1)))
    return frozenset(revisions - parents)


def _stored_revisions(engine: Engine) -> frozenset[str] | None:
    """What `alembic_version` holds, or None when it cannot be read (a new database)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except (OperationalError, SADatabaseError):
        return None
    return frozenset(str(r[0]) for r in rows)


def migrate(engine: Engine) -> list[str]:
    """Bring the schema to the newest revision; returns the revisions applied (empty: none).

    Every command calls this when it opens the database; when the stored revision already is
    the scripts' head it returns at once, without importing Alembic (bench/cli.py)."""
    heads = scripted_heads()
    if heads and _stored_revisions(engine) == heads:
        return []
    from alembic import command
    from alembic.script import ScriptDirectory

    before = current_revision(engine)
    try:
        command.upgrade(alembic_config(engine), "head")
    except (OperationalError, SADatabaseError) as exc:
        raise DatabaseError(_explain(exc, engine)) from exc
    after = current_revision(engine)
    if before == after:
        return []
    script = ScriptDirectory.from_config(alembic_config(engine))
    applied = []
    for rev in script.iterate_revisions(after, before):
        applied.append(rev.revision)
    return list(reversed(applied))


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except (OperationalError, SADatabaseError) as exc:
        raise DatabaseError(_explain(exc, engine)) from exc


def head_revision() -> str | None:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


def check_schema(engine: Engine) -> None:
    """Refuse to run against a database that is not migrated to this version's schema."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        raise DatabaseError(
            f"database schema is at {current or 'nothing'}, this version needs {head}: "
            "run `meeting-governance init` to apply the migrations"
        )


def _explain(exc: Exception, engine: Engine) -> str:
    where = engine.url.render_as_string(hide_password=True)
    detail = str(getattr(exc, "orig", exc)).splitlines()[0]
    if isinstance(exc, SAIntegrityError):
        return (f"the database refused a change that breaks one of its rules ({detail}); "
                "nothing of it was saved")
    if "file is not a database" in detail or "malformed" in detail:
        return (f"the database at {where} is damaged or not a database ({detail}); "
                "restore it from a backup, or move it aside and run `meeting-governance init`")
    return f"cannot use the database at {where}: {detail}"


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed when the block ends, rolled back on any exception."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except (OperationalError, SADatabaseError) as exc:
        session.rollback()
        raise DatabaseError(_explain(exc, engine)) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def checkpoint(engine: Engine) -> None:
    """Fold the WAL into the main file and truncate it (after a purge, so nothing lingers)."""
    if is_sqlite(engine):
        with engine.connect() as conn:
            # On the driver connection (autocommit): through SQLAlchemy the statement would run
            # inside our BEGIN IMMEDIATE, where SQLite refuses to checkpoint ("table is locked").
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

