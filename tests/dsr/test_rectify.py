"""Rectification: one readable version remains, the old data key is shredded, the audit log
shows the correction but not what it said."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from meeting_governance import holds
from meeting_governance.context import AppContext
from meeting_governance.db import checkpoint
from meeting_governance.epochs import payload_owner
from meeting_governance.errors import InputError, ShreddedError
from meeting_governance.models import AuditEntry, Transcript, VaultItem
from meeting_governance.rectify import editable_text, parse_edited, rectify
from meeting_governance.store import read_content
from meeting_governance.transcribe import Segment

from .helpers import ALICE, content, make_transcript, person


def _stored(app: AppContext) -> Transcript:
    return make_transcript(app, words=["the quarterly numbres", "are up by ten percent"],
                           people=[person(ALICE)], meeting_id="m-1")


def test_rectify_leaves_one_readable_version(app: AppContext) -> None:
    row = _stored(app)
    old_item = row.content_item
    with app.session() as session:
        text = editable_text(read_content(app, session, row))
    edited = text.replace("numbres", "numbers")
    report = rectify(app, row.id, edited, actor="dpo", reason="typo reported by Alice",
                     reference="DSR-2026-0009", expected_version=1)
    assert (report.from_version, report.to_version, report.segments_changed) == (1, 2, 1)
    with app.session() as session:
        fresh = session.get(Transcript, row.id)
        assert fresh is not None and fresh.version == 2 and fresh.content_item != old_item
        doc = read_content(app, session, fresh)
        assert [s["text"] for s in doc["segments"]] == ["the quarterly numbers",
                                                        "are up by ten percent"]
        assert doc["segments"][1]["end"] == 1.9  # untouched times keep full precision
        assert doc["corrections"][0]["reason"] == "typo reported by Alice"
        assert doc["language"] == "en" and doc["model"] == "tiny.en"
        old = session.get(VaultItem, old_item)
        assert old is not None and old.shredded_at is not None and old.ciphertext is None
        with pytest.raises(ShreddedError):
            app.vault.open_item(old, owner=payload_owner(old))
        readable = [v for v in session.exec(select(VaultItem).where(
            VaultItem.purpose == "transcript")).all() if v.ciphertext is not None]
        assert [v.id for v in readable] == [fresh.content_item]
        entry = session.exec(select(AuditEntry).where(
            AuditEntry.action == "transcript.rectified")).one()
        details = json.loads(entry.details)
        assert details == {"from_version": 1, "to_version": 2, "segments_changed": 1,
                           "reason_given": True, "reference": "DSR-2026-0009"}
        assert "numbers" not in entry.details and "Alice" not in entry.details
    # A second correction by someone still holding version 1 is refused.
    with pytest.raises(InputError, match="changed while you edited"):
        rectify(app, row.id, edited.replace("ten", "eleven"), expected_version=1)


def test_input_forms_and_refusals(app: AppContext) -> None:
    row = _stored(app)
    with pytest.raises(InputError, match="same as the stored"):
        rectify(app, row.id, "the quarterly numbres\nare up by ten percent\n")
    with pytest.raises(InputError, match="empty"):
        rectify(app, row.id, "# only a comment\n\n")
    with pytest.raises(InputError, match="line 2"):
        rectify(app, row.id, "00:00:00.000 --> 00:00:00.900 | a\nno stamp here\nthird\n")
    # Plain lines, one per segment, keep the original times.
    rectify(app, row.id, "the quarterly numbers\nare up by ten percent\n")
    # A JSON document, as `transcript export --format json` writes it.
    rectify(app, row.id, content("replaced entirely"))
    with app.session() as session:
        fresh = session.get(Transcript, row.id)
        assert fresh is not None and fresh.version == 3
        assert [s["text"] for s in read_content(app, session, fresh)["segments"]] == \
            ["replaced entirely"]
    with pytest.raises(InputError, match="reference"):
        rectify(app, row.id, "x\n", reference="a person@example.org")
    holds.set_hold(app, reason="complaint", transcript_id=row.id)
    with pytest.raises(InputError, match="legal hold"):
        rectify(app, row.id, [Segment(0.0, 1.0, "anything")])


def test_parse_edited_rejects_backwards_times() -> None:
    with pytest.raises(InputError, match="ends before it starts"):
        parse_edited("00:00:05.000 --> 00:00:01.000 | words", [])


def test_old_version_is_gone_from_the_sqlite_file(sqlite_app: AppContext, home: Path) -> None:
    from tests.conftest import scan_for

    app = sqlite_app
    row = _stored(app)
    with app.session() as session:
        item = session.get(VaultItem, row.content_item)
        assert item is not None and item.ciphertext and item.wrapped_key
        needles = [bytes(item.ciphertext), bytes(item.wrapped_key)]
    checkpoint(app.engine)
    assert scan_for(home, needles)
    rectify(app, row.id, "the quarterly numbers\nare up by ten percent\n")
    checkpoint(app.engine)
    assert scan_for(home, needles) == []
