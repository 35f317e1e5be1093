"""Fast set-up of many stored transcripts (tests and bench/purge.py).

`vault.seal` encrypts for real; the rows it would add to a session are collected and written
with one executemany per table, in one transaction, so 100 000 transcripts take seconds.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select

from meeting_governance import epochs
from meeting_governance.context import AppContext
from meeting_governance.epochs import Owner
from meeting_governance.models import (
    Recording,
    RecordingParticipant,
    Transcript,
    TranscriptParticipant,
    VaultItem,
)


class _Collector:
    """Stands in for a Session: `Vault.seal` only ever calls `add`."""

    def __init__(self) -> None:
        self.items: list[VaultItem] = []

    def add(self, obj: VaultItem) -> None:
        self.items.append(obj)


@dataclass(frozen=True)
class Seeded:
    transcript_ids: list[str]
    items: dict[str, list[str]]  # transcript id -> its vault item ids


def bulk_seed(app: AppContext, n: int, *, retain_until: datetime, policy: str = "standard",
              meeting_end: datetime | None = None, words: str = "quarterly numbers",
              organizer_id: str = "00000000-0000-0000-0000-0000000000aa",
              people: int = 2, chunk: int = 5000, with_recordings: bool = False) -> Seeded:
    """Insert `n` sealed transcripts (content, participants, subject) due at `retain_until`;
    with `with_recordings`, each with its recording (sealed subject, participant list)."""
    vault = app.vault
    end = meeting_end or retain_until - timedelta(days=90)
    ids: list[str] = []
    items: dict[str, list[str]] = {}
    now = app.clock.now()
    with app.session() as session:  # the epoch keys, made (and committed) once
        epoch = epochs.active(session, app.keys, vault.retention_epoch(retain_until), now)
        metadata = epochs.active(session, app.keys, vault.metadata_epoch(), now)
    with app.engine.begin() as conn:
        next_recording = int(conn.execute(select(func.max(Recording.id))).scalar() or 0) + 1
        for start in range(0, n, chunk):
            collector = _Collector()
            rows: list[dict[str, Any]] = []
            blinds: list[dict[str, Any]] = []
            recordings: list[dict[str, Any]] = []
            recording_people: list[dict[str, Any]] = []
            for i in range(start, min(n, start + chunk)):
                tid = uuid.uuid4().hex
                recording_id = None
                if with_recordings:
                    recording_id = next_recording
                    next_recording += 1
                    recordings.append({
                        "id": recording_id, "graph_recording_id": f"rec-{tid}",
                        "meeting_id": f"meeting-{i}", "organizer_id": organizer_id,
                        "state": "stored", "reason": "", "attempts": 0,
                        "subject_item": vault.seal_text(
                            collector, f"subject {i}", purpose="subject",  # type: ignore[arg-type]
                            owner=Owner("recording", str(recording_id), "subject"),
                            epoch=metadata),
                        "first_seen_at": now, "updated_at": now})
                content = json.dumps({"segments": [{"text": f"{words} {i}"}]})
                c = vault.seal(collector, content.encode(), purpose="transcript",  # type: ignore[arg-type]
                               owner=Owner("transcript", tid, "content"), epoch=epoch)
                p = vault.seal_json(collector, [{"email": f"p{i}@example.org"}],  # type: ignore[arg-type]
                                    owner=Owner("transcript", tid, "participants"), epoch=epoch)
                s = vault.seal_text(collector, f"subject {i}",  # type: ignore[arg-type]
                                    owner=Owner("transcript", tid, "subject"), epoch=epoch)
                items[tid] = [c, p, s] + ([recordings[-1]["subject_item"]] if with_recordings else [])
                ids.append(tid)
                rows.append({"id": tid, "recording_id": recording_id, "meeting_id": f"meeting-{i}",
                             "organizer_id": organizer_id, "meeting_start": end - timedelta(hours=1),
                             "meeting_end": end, "duration_s": 3600.0, "language": "en",
                             "model": "tiny.en", "version": 1, "content_item": c,
                             "participants_item": p, "subject_item": s,
                             "retention_policy": policy, "retain_until": retain_until,
                             "legal_hold": False, "created_at": now, "updated_at": now,
                             "purged_at": None, "purge_reason": ""})
                for k in range(people):
                    blind = vault.blind_email(f"person{(i + k) % 997}@example.org")
                    blinds.append({"transcript_id": tid, "blind": blind})
                    if recording_id is not None:
                        recording_people.append({"recording_id": recording_id, "blind": blind})
            conn.execute(insert(VaultItem), [
                {"id": it.id, "purpose": it.purpose, "kek_version": it.kek_version,
                 "epoch_id": it.epoch_id, "owner_table": it.owner_table, "owner_id": it.owner_id,
                 "field": it.field, "wrapped_key": it.wrapped_key, "nonce": it.nonce,
                 "ciphertext": it.ciphertext, "created_at": it.created_at, "shredded_at": None}
                for it in collector.items])
            if recordings:
                conn.execute(insert(Recording), recordings)
                conn.execute(insert(RecordingParticipant), recording_people)
            conn.execute(insert(Transcript), rows)
            if blinds:
                conn.execute(insert(TranscriptParticipant), blinds)
    return Seeded(ids, items)
