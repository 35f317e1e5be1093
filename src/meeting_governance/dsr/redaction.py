"""Per-person redaction: one person's turns out of every transcript of their meetings.

For each live transcript of a meeting the person attended (found as erasure finds them), the
segments and turns whose speaker label is linked to the person (`speakers`) are removed and the
others' words kept, unchanged. A turn is *uncertain* when its label is not linked to somebody
else (an unnamed "Speaker N", or a segment without a label): it could be the person's, so
`dsr.redact_uncertain = "redact"` (the default) removes it and "keep" leaves it; the report
counts both. The person's entries also leave the sealed participant list and the blind index.

The result is a new version under a new data key, exactly as rectification does it: the new
document and participant list are sealed, the old items shredded in the same transaction, and
then every epoch that wrapped an old item is rotated (`epochs.settle`), so the old version is
unreadable in backups too. Each transcript gets one audit entry (counts, never words); a signed
receipt lists the transcripts, versions and destroyed keys. Held transcripts are not changed
(that would destroy held evidence) and are reported.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col

from meeting_governance import epochs, receipts
from meeting_governance.context import AppContext
from meeting_governance.db import checkpoint, is_sqlite
from meeting_governance.epochs import Owner
from meeting_governance.errors import InputError
from meeting_governance.models import SpeakerLink, Transcript, TranscriptParticipant
from meeting_governance.people import PersonIdentity
from meeting_governance.store import content_owner, read_content, read_participants

REDACTED_ACTION = "transcript.redacted"
POLICIES = ("redact", "keep")


@dataclass(frozen=True)
class Redacted:
    """What one transcript lost (counts only)."""

    transcript_id: str
    from_version: int
    to_version: int
    own_turns: int  # segments of labels linked to the person
    uncertain_removed: int
    uncertain_kept: int
    kept: int  # segments of other people left as they were


@dataclass(frozen=True, kw_only=True)
class RedactionReport:
    reference: str | None
    dry_run: bool
    policy: str
    redacted: tuple[Redacted, ...]
    unchanged: tuple[str, ...]  # transcripts in which nothing of the person's was found
    held: tuple[str, ...]
    keys_destroyed: tuple[str, ...] = ()
    receipt: Path | None = None

    @property
    def uncertain_removed(self) -> int:
        return sum(r.uncertain_removed for r in self.redacted)

    @property
    def uncertain_kept(self) -> int:
        return sum(r.uncertain_kept for r in self.redacted)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["receipt"] = str(self.receipt) if self.receipt else None
        return data


def split_turns(segments: Sequence[Mapping[str, Any]], own: set[str], others: set[str],
                policy: str) -> tuple[list[Mapping[str, Any]], dict[str, int]]:
    """The segments that stay, and the counts: pure, so the rule is tested on its own.

    `own`: labels linked to the person; `others`: labels linked to somebody else."""
    kept: list[Mapping[str, Any]] = []
    counts = {"own": 0, "uncertain_removed": 0, "uncertain_kept": 0, "kept": 0}
    for segment in segments:
        label = segment.get("speaker")
        if label in own:
            counts["own"] += 1
        elif label in others:
            kept.append(segment)
            counts["kept"] += 1
        elif policy == "redact":
            counts["uncertain_removed"] += 1
        else:
            kept.append(segment)
            counts["uncertain_kept"] += 1
    return kept, counts


def _labels(links: Sequence[SpeakerLink], blinds: set[str]) -> tuple[set[str], set[str]]:
    own: set[str] = set()
    others: set[str] = set()
    for link in links:
        mine = blinds & ({link.person_blind} | set(link.identifiers.split()))
        (own if mine else others).add(link.label)
    return own, others


def redact_one(app: AppContext, session: Session, row: Transcript, blinds: set[str], *,
               policy: str, actor: str, reference: str | None,
               dry_run: bool) -> Redacted | None:
    """Redact one (locked, unheld) transcript in the caller's transaction; None: nothing of
    the person's was found, so nothing changed."""
    from meeting_governance import speakers

    content = read_content(app, session, row)
    links = speakers.links(session, row.id)
    own, others = _labels(links, blinds)
    segments = [s for s in content.get("segments") or [] if isinstance(s, dict)]
    kept, counts = split_turns(segments, own, others, policy)
    people = read_participants(app, session, row)
    staying = [p for p in people if not blinds & set(app.vault.blind_identities(
        email=p.get("email"), object_id=p.get("object_id")))]
    if len(kept) == len(segments) and len(staying) == len(people):
        return None
    result = Redacted(row.id, row.version, row.version + 1, counts["own"],
                      counts["uncertain_removed"], counts["uncertain_kept"], counts["kept"])
    if dry_run:
        return result
    turns = [t for t in content.get("turns") or [] if isinstance(t, dict)
             and t.get("speaker") not in own
             and (t.get("speaker") in others or policy == "keep")]
    now = app.clock.now()
    document = {**content, "segments": kept,
                "redactions": [*content.get("redactions", []),
                               {"version": row.version + 1, "at": now.isoformat(), "by": actor,
                                "reference": reference, "policy": policy,
                                "removed": counts["own"] + counts["uncertain_removed"]}]}
    if "turns" in content:
        document["turns"] = turns
    epoch = app.vault.retention_epoch(row.retain_until)
    old_items = [row.content_item, row.participants_item]
    row.content_item = app.vault.seal(
        session, json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8"),
        purpose="transcript", owner=content_owner(row.id), epoch=epoch)
    row.participants_item = app.vault.seal_json(
        session, staying, purpose="participants",
        owner=Owner("transcript", row.id, "participants"), epoch=epoch)
    for item in old_items:
        app.vault.shred(session, item)
    session.exec(delete(SpeakerLink).where(col(SpeakerLink.transcript_id) == row.id,
                                           col(SpeakerLink.label).in_(sorted(own))))
    session.exec(delete(TranscriptParticipant).where(
        col(TranscriptParticipant.transcript_id) == row.id,
        col(TranscriptParticipant.blind).in_(sorted(blinds))))
    row.version += 1
    row.updated_at = now
    session.add(row)
    app.audit(session, REDACTED_ACTION, target_type="transcript", target_id=row.id, actor=actor,
              from_version=result.from_version, to_version=result.to_version,
              own_turns=result.own_turns, uncertain_removed=result.uncertain_removed,
              uncertain_kept=result.uncertain_kept, kept=result.kept, policy=policy,
              reference=reference)
    return result


def redact_person(app: AppContext, identity: PersonIdentity | None = None, /, *,
                  email: str | None = None, object_id: str | None = None,
                  reference: str | None = None, actor: str | None = None,
                  dry_run: bool = False, kind: str = "erasure",
                  policy: str | None = None) -> RedactionReport:
    """Remove the person's turns from every transcript of every meeting they attended, keeping
    everyone else's words; logs (or fulfils) a `kind` request and writes a signed receipt."""
    from meeting_governance.dsr import requests as dsr

    who = dsr.subject(email, object_id)
    policy = policy or app.settings.dsr.redact_uncertain
    if policy not in POLICIES:
        raise InputError(f"redaction policy {policy!r}: choose redact or keep")
    reference = dsr.check_reference(reference) if reference else None
    actor = actor or app.actor
    blinds = set(dsr._blinds(app, who, identity))
    done: list[Redacted] = []
    unchanged: list[str] = []
    with app.session() as session:
        req = None if dry_run else dsr._request_for(app, session, kind, who, reference, actor)
        ref = req.reference if req is not None else reference
        rows = dsr._live_transcripts(session, sorted(blinds),
                                     lock=not dry_run and not is_sqlite(app.engine))
        held = dsr._held_ids(session, [r.id for r in rows])
        for row in rows:
            if row.id in held:
                continue
            result = redact_one(app, session, row, blinds, policy=policy, actor=actor,
                                reference=ref, dry_run=dry_run)
            if result is None:
                unchanged.append(row.id)
            else:
                done.append(result)
        if req is not None:
            app.audit(session, "dsr.redact", target_type="dsr_request", target_id=req.reference,
                      actor=actor, subject_blind=dsr.subject_blind(app, who),
                      redacted=len(done), unchanged=len(unchanged), held=len(held),
                      uncertain_removed=sum(r.uncertain_removed for r in done),
                      uncertain_kept=sum(r.uncertain_kept for r in done), policy=policy)
            dsr._complete(app, session, req, actor)
    report = RedactionReport(reference=ref, dry_run=dry_run, policy=policy,
                             redacted=tuple(done), unchanged=tuple(unchanged),
                             held=tuple(sorted(held)))
    if dry_run or req is None:
        return report
    destroyed = epochs.settle(app, reason="redaction", retire=False,
                              batch_size=app.settings.keys.rotate_batch_size)
    checkpoint(app.engine)  # SQLite: no old ciphertext may linger in the WAL
    path = _receipt(app, report, destroyed)
    return RedactionReport(reference=ref, dry_run=False, policy=policy, redacted=tuple(done),
                           unchanged=tuple(unchanged), held=report.held,
                           keys_destroyed=tuple(d.key_id for d in destroyed), receipt=path)


def _receipt(app: AppContext, report: RedactionReport,
             destroyed: Sequence[epochs.Destroyed]) -> Path:
    """Signed evidence of the redaction (ids, versions, counts, keys destroyed; no words)."""
    receipt_id = uuid.uuid4().hex
    body = {"receipt_id": receipt_id, "kind": "redaction",
            "created_at": app.clock.now().isoformat(), "reference": report.reference,
            "policy": report.policy,
            "transcripts": [asdict(r) for r in report.redacted],
            "held": list(report.held),
            "keys_destroyed": [{"key_id": d.key_id, "epoch": d.label,
                                "fingerprint": d.fingerprint, "reason": d.reason}
                               for d in destroyed]}
    written = receipts.write(app.settings.receipts_dir, receipt_id,
                             receipts.sign(body, app.keys.signing_key()))
    with app.session() as session:
        app.audit(session, "redaction.receipt", target_type="dsr_request",
                  target_id=report.reference or "", sha256=written.sha256,
                  receipt_id=receipt_id, transcripts=len(report.redacted))
    return written.path


__all__ = ["POLICIES", "REDACTED_ACTION", "Redacted", "RedactionReport", "redact_one",
           "redact_person", "split_turns"]
