"""After a purge and checkpoint, nothing of the transcript is left in the SQLite file, the WAL
or anywhere in the data directory: neither its words nor its key or ciphertext bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import select

from meeting_governance.context import AppContext
from meeting_governance.models import VaultItem
from meeting_governance.purge import evidence as purge_evidence
from meeting_governance.purge import purge
from tests.conftest import scan_for

from .helpers import ALICE, T0, make_transcript, person

WORDS = "Xylophonequartz zebracorn merger with Quibbleworth"


@pytest.mark.parametrize("vacuum", [True, False], ids=["vacuum", "secure-delete-only"])
def test_no_trace_left_on_disk(sqlite_app: AppContext, monkeypatch: pytest.MonkeyPatch,
                               vacuum: bool) -> None:
    app = sqlite_app
    if not vacuum:
        monkeypatch.setattr(purge_evidence, "VACUUM_MAX_BYTES", 0)
    home: Path = app.settings.home
    due = [make_transcript(app, words=f"{WORDS} {i}", meeting_id=f"m{i}",
                           subject="Quibbleworth acquisition", with_recording=True,
                           participants=[person(ALICE)]) for i in range(5)]
    keep = make_transcript(app, words="nothing to see", meeting_id="keep",
                           retain_until=T0.replace(year=2030))
    assert scan_for(home, [b"Xylophonequartz", b"Quibbleworth", ALICE.encode()]) == []

    with app.session() as session:
        items = session.exec(select(VaultItem)).all()
        keep_items = {keep.content_item, keep.participants_item, keep.subject_item}
        secrets_due = [bytes(i.ciphertext[:24]) for i in items  # type: ignore[index]
                       if i.id not in keep_items] + [bytes(i.wrapped_key[:24])  # type: ignore[index]
                                                     for i in items if i.id not in keep_items]
        secrets_kept = [bytes(i.ciphertext[:24]) for i in items  # type: ignore[index]
                        if i.id == keep.content_item]
    assert len(secrets_due) == 2 * 5 * 4

    report = purge(app, as_of=T0)
    assert report.purged == len(due)
    assert report.vacuumed is vacuum
    wal = home / "meeting-governance.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    assert scan_for(home, [b"Xylophonequartz", b"zebracorn", b"Quibbleworth", ALICE.encode()]) == []
    assert scan_for(home, secrets_due) == []
    # The scan does see ciphertext that is still alive: it is looking in the right place.
    assert scan_for(home, secrets_kept) != []
