"""An audit log that cannot be rewritten quietly: signed checkpoints outside the database.

Each attack here leaves a chain that holds on its own (`audit.verify` says intact) — someone
with write access to the database can do all of them — and each is caught by the checkpoints
in the file outside it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import delete, insert, text
from sqlmodel import Session, col, select

from meeting_governance import audit, checkpoints
from meeting_governance.context import AppContext
from meeting_governance.models import AuditCheckpoint, AuditEntry

from .conftest import assert_one_clear_line, raw, run_cli


def add_entries(app: AppContext, n: int, action: str = "transcript.read") -> None:
    with app.session() as session:
        for i in range(n):
            app.audit(session, action, target_type="transcript", target_id=f"t{i}",
                      reason="ticket 7")


def rehash_from(app: AppContext, first_seq: int) -> None:
    """What a careful attacker does after deleting entries: renumber the rest and recompute
    every hash after the gap, and the head, so the chain holds again."""
    with Session(app.engine) as session:
        rows = session.exec(select(AuditEntry).where(col(AuditEntry.seq) >= first_seq)
                            .order_by(col(AuditEntry.seq))).all()
        before = session.get(AuditEntry, first_seq - 1)
        prev_hash = before.hash if before else audit.GENESIS
        fresh = []
        seq = first_seq - 1
        for row in rows:
            seq += 1
            digest = audit.entry_hash(prev_hash=prev_hash, seq=seq, at=row.at, actor=row.actor,
                                      action=row.action, target_type=row.target_type,
                                      target_id=row.target_id, details=row.details)
            fresh.append({"seq": seq, "at": row.at, "actor": row.actor, "action": row.action,
                          "target_type": row.target_type, "target_id": row.target_id,
                          "details": row.details, "prev_hash": prev_hash, "hash": digest})
            prev_hash = digest
    with app.engine.begin() as conn:
        conn.execute(delete(AuditEntry).where(col(AuditEntry.seq) >= first_seq))
        if fresh:
            conn.execute(insert(AuditEntry), fresh)
        conn.execute(text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"),
                     {"s": seq, "h": prev_hash})


def test_checkpoint_goes_to_the_database_the_file_and_the_log(
        app: AppContext, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="meeting_governance")
    add_entries(app, 3)
    point = checkpoints.take(app, reason="test")
    seq, digest = raw(app, "SELECT seq, hash FROM audit_head")[0]
    assert (point.head_seq, point.head_hash) == (seq, digest)
    lines = app.settings.checkpoint_file.read_text().splitlines()
    assert json.loads(lines[-1])["checkpoint"]["head_hash"] == digest
    assert oct(app.settings.checkpoint_file.stat().st_mode & 0o777) == "0o600"
    with app.session() as session:
        assert session.get(AuditCheckpoint, 2) is not None  # init wrote the first
    assert any(r.getMessage() == "audit checkpoint" and getattr(r, "head_seq", None) == seq
               for r in caplog.records)
    result = checkpoints.verify(app)
    assert result.ok and result.checkpoints == 2 and result.latest_checkpoint_seq == seq


def test_dropped_tail_is_reported(app: AppContext) -> None:
    add_entries(app, 6)
    checkpoints.take(app, reason="test")
    total = raw(app, "SELECT seq FROM audit_head")[0][0]
    # Drop the last three entries and point the head at what is left: the chain holds.
    raw(app, "DELETE FROM audit_entry WHERE seq > :s", s=total - 3)
    last = raw(app, "SELECT hash FROM audit_entry WHERE seq = :s", s=total - 3)[0][0]
    raw(app, "UPDATE audit_head SET seq = :s, hash = :h", s=total - 3, h=last)
    assert audit.verify(app.engine).ok
    result = checkpoints.verify(app)
    assert not result.ok and result.first_bad_seq == total - 2
    assert f"entry {total - 2} is missing" in result.problem


def test_rehash_after_removing_entries_is_reported(app: AppContext) -> None:
    add_entries(app, 2)
    checkpoints.take(app, reason="before")
    good = raw(app, "SELECT seq FROM audit_head")[0][0]
    add_entries(app, 5)
    checkpoints.take(app, reason="after")
    # Remove the two `transcript.read` entries in the middle, then rehash everything after.
    raw(app, "DELETE FROM audit_entry WHERE seq IN (:a, :b)", a=good + 2, b=good + 3)
    rehash_from(app, good + 2)
    assert audit.verify(app.engine).ok  # the chain alone is fooled
    result = checkpoints.verify(app)
    assert not result.ok and f"entries after entry {good} were removed" in result.problem
    # Padded back to the old length with forged entries: the checkpoint's hash catches it, and
    # the last checkpoint that still holds bounds where the rewrite began.
    add_entries(app, 2, action="forged")
    rehash_from(app, good + 1)
    result = checkpoints.verify(app)
    assert not result.ok and "rewritten" in result.problem
    assert result.first_bad_seq == good + 1
    assert f"between {good + 1} and" in result.problem


def test_an_older_database_restored_is_reported(app: AppContext, tmp_path: Path) -> None:
    if app.engine.dialect.name != "sqlite":
        # PostgreSQL: the same attack as a dropped tail (rows deleted back to an old state).
        add_entries(app, 4)
        seq = raw(app, "SELECT seq FROM audit_head")[0][0]
        checkpoints.take(app, reason="test")
        raw(app, "DELETE FROM audit_entry WHERE seq > :s", s=seq - 4)
        last = raw(app, "SELECT hash FROM audit_entry WHERE seq = :s", s=seq - 4)[0][0]
        raw(app, "UPDATE audit_head SET seq = :s, hash = :h", s=seq - 4, h=last)
        assert not checkpoints.verify(app).ok
        return
    db = Path(app.settings.database_url.split("///", 1)[1])
    from meeting_governance.db import checkpoint as fold

    fold(app.engine)
    shutil.copy(db, tmp_path / "old.db")
    add_entries(app, 4)
    checkpoints.take(app, reason="test")
    app.engine.dispose()
    shutil.copy(tmp_path / "old.db", db)
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    assert audit.verify(app.engine).ok
    result = checkpoints.verify(app)
    assert not result.ok and "older database was restored" in result.problem


def test_a_forged_checkpoint_line_is_reported(app: AppContext) -> None:
    checkpoints.take(app, reason="test")
    path = app.settings.checkpoint_file
    doc = json.loads(path.read_text().splitlines()[-1])
    doc["checkpoint"]["head_hash"] = "0" * 64
    with path.open("a") as handle:
        handle.write(json.dumps(doc) + "\n")
    result = checkpoints.verify(app)
    assert not result.ok and "not a checkpoint signed by this installation" in result.problem


@pytest.mark.slow
def test_cli_checkpoint_and_verify(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_cli(["init"], home).returncode == 0
    for who in ("olga@example.org", "oscar@example.org"):
        assert run_cli(["optout", "add", "--email", who], home).returncode == 0
    made = run_cli(["audit", "checkpoint"], home)
    assert made.returncode == 0 and "checkpoint at entry" in made.stdout, made.stderr
    ok = run_cli(["audit", "verify"], home)
    assert ok.returncode == 0 and "consistent with 2 signed checkpoints" in ok.stdout, ok.stderr
    import sqlite3

    with sqlite3.connect(home / "meeting-governance.db") as conn:
        conn.execute("DELETE FROM audit_entry WHERE seq = (SELECT max(seq) FROM audit_entry)")
        seq, digest = conn.execute("SELECT seq, hash FROM audit_entry ORDER BY seq DESC "
                                   "LIMIT 1").fetchone()
        conn.execute("UPDATE audit_head SET seq = ?, hash = ?", (seq, digest))
    broken = run_cli(["audit", "verify"], home)
    assert broken.returncode != 0
    assert_one_clear_line(broken.stderr, f"entry {seq + 1}", "missing")
