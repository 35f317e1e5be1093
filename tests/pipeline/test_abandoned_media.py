"""Media a killed worker left in staging is removed by the next run, unless someone holds it.

A worker SIGKILLed between committing a recording's end state and deleting its media leaves the
file behind, and nothing would lease that recording again (tests/reliability/test_kill.py
reaches this by chance; here each case is set up on purpose)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from meeting_governance.models import Recording
from meeting_governance.pipeline import poll, process

from .conftest import Env


def _leave_media(e: Env, recording_id: int) -> None:
    folder = e.settings.staging_dir / f"rec-{recording_id}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recording-abandoned.mp4").write_bytes(b"\x00" * 1024)


def test_the_next_run_removes_media_no_worker_will_come_back_for(fake_env: Env) -> None:
    e = fake_env
    poll(e.app, e.graph())
    with e.app.session() as session:
        ids = list(session.exec(select(Recording.id).order_by(col(Recording.id))).all())
    stored, pending, held = ids[0], ids[1], ids[2]
    with e.app.session() as session:
        rows = {r.id: r for r in session.exec(select(Recording)).all()}
        rows[stored].state = "stored"
        rows[held].state = "downloading"  # another worker is on it right now
        rows[held].lease_owner = "host:1"
        rows[held].lease_expires_at = e.app.clock.now() + timedelta(hours=1)
        for row in (rows[stored], rows[held]):
            session.add(row)
        session.commit()
    for recording_id in (stored, pending, held, 10_000_000):  # the last: no such recording
        _leave_media(e, recording_id)

    process(e.app, e.services, limit=0)

    # Settled or gone: removed. Still leasable (pending, or held now): left to whoever leases it.
    left = sorted(p.name for p in e.settings.staging_dir.iterdir())
    assert left == sorted([f"rec-{pending}", f"rec-{held}"]), left
    assert (e.settings.staging_dir / f"rec-{held}" / "recording-abandoned.mp4").is_file()


def test_an_empty_or_missing_staging_directory_is_fine(fake_env: Env) -> None:
    e = fake_env
    process(e.app, e.services, limit=0)
    if e.settings.staging_dir.exists():
        assert list(e.settings.staging_dir.iterdir()) == []
