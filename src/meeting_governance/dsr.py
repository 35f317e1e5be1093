"""Data-subject requests: the request log, access (export), erasure and withdrawal of consent.

A person is named by exactly one identity, an e-mail/UPN or an Entra object id, and found
through the blind index, never by a stored address — under every identifier the directory
knows for them (`people.person_identity`: object id, mail, UPN, aliases, other mails, a guest's
own address), so an access request finds the meeting where Teams listed them by another
address, and an erasure erases it. The log keeps only the blind value of the identity given.
Rectification lives in `rectify`, anonymised statistics in `stats`.

Erasure goes through `purge.tombstone`, the very function the retention purge uses, so an erased
transcript is destroyed exactly as a purged one is (data key and ciphertext gone, tombstone
left, one audit entry each); then every epoch that wrapped an erased item is rotated, so the
erased transcripts are unreadable in database backups taken before the erasure too.
Transcripts under legal hold are spared and reported with their hold reasons. Opt-outs are
kept on purpose: erasing one would let the person be transcribed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, or_
from sqlmodel import Session, col, select

from meeting_governance import epochs, formats
from meeting_governance.context import AppContext
from meeting_governance.db import checkpoint, is_sqlite
from meeting_governance.errors import InputError, NotFoundError, ShreddedError
from meeting_governance.holds import active_holds, covered_by, held_filter, hold_kind, reason_owner
from meeting_governance.identity import validated_email, validated_object_id
from meeting_governance.models import (
    DsrRequest,
    Hold,
    OptOut,
    Recording,
    RecordingParticipant,
    Transcript,
    TranscriptParticipant,
)
from meeting_governance.people import PersonIdentity, Registration, who_is
from meeting_governance.segments import Segment
from meeting_governance.store import read_content, read_participants, subject_owner

KINDS = ("access", "erasure", "rectification", "withdrawal")
_NOT_ASKED = who_is((), 1, asked=False)
STATUSES = ("open", "completed", "closed")  # completed: fulfilled by this tool; closed: by hand
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")  # also a safe file name
ERASURE_REASON = "erasure"

OPTOUTS_KEPT_NOTE = ("The person's opt-outs were kept: erasing an opt-out would let their next "
                     "meetings be recorded and transcribed again.")
HELD_NOTE = ("Transcripts under legal hold were not erased; they will be when the hold is "
             "released and the request is carried out again.")


# -- who ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Subject:
    """The person a request is about, as given (normalised), never stored in clear."""

    email: str | None = None
    object_id: str | None = None

    def given(self) -> dict[str, str]:
        """The identity searched, for the person's own copy (the export manifest)."""
        return {"email": self.email} if self.email else {"object_id": self.object_id or ""}


def subject(email: str | None = None, object_id: str | None = None) -> Subject:
    """Validate that exactly one identity was given, and normalise it."""
    email = (email or "").strip() or None
    object_id = (object_id or "").strip() or None
    if email and object_id:
        raise InputError("give either --email or --object-id, not both: a request is about "
                         "one identity (make a second request for the other)")
    if email:
        return Subject(email=validated_email(email))
    if object_id:
        return Subject(object_id=validated_object_id(object_id))
    raise InputError("say whose data: give --email ADDRESS or --object-id GUID")


def subject_blind(app: AppContext, who: Subject) -> str:
    if who.email:
        return app.vault.blind_email(who.email)
    assert who.object_id
    return app.vault.blind_object_id(who.object_id)


# -- the request log ------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RequestView:
    """A logged request as the DPO sees it; `overdue` is judged at the clock's now."""

    reference: str
    kind: str
    subject_blind: str
    received_at: datetime
    due_at: datetime
    status: str
    closed_at: datetime | None
    handled_by: str
    overdue: bool
    days_left: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _view(row: DsrRequest, now: datetime) -> RequestView:
    is_open = row.status == "open"
    return RequestView(reference=row.reference, kind=row.kind, subject_blind=row.subject_blind,
                       received_at=row.received_at, due_at=row.due_at, status=row.status,
                       closed_at=row.closed_at, handled_by=row.handled_by,
                       overdue=is_open and row.due_at < now,
                       days_left=(row.due_at - now).days if is_open else 0)


def _next_reference(session: Session, year: int) -> str:
    prefix = f"DSR-{year}-"
    taken = session.exec(select(DsrRequest.reference).where(
        col(DsrRequest.reference).startswith(prefix))).all()
    numbers = [int(r[len(prefix):]) for r in taken if r[len(prefix):].isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1:04d}"


def check_reference(reference: str) -> str:
    """A reference as typed, checked: it goes into audit entries and file names."""
    ref = reference.strip()
    if not _REFERENCE.match(ref):
        raise InputError("a reference is 1-40 letters, digits, '.', '_' or '-' "
                         "(like DSR-2026-0001)")
    return ref


def open_request(app: AppContext, session: Session, kind: str, *, email: str | None = None,
                 object_id: str | None = None, reference: str | None = None,
                 received_at: datetime | None = None, actor: str | None = None) -> DsrRequest:
    """Log a request; due `dsr.due_days` after it was received (the legal deadline)."""
    return _open(app, session, kind, subject(email, object_id), reference=reference,
                 received_at=received_at, actor=actor)


def _open(app: AppContext, session: Session, kind: str, who: Subject, *,
          reference: str | None, received_at: datetime | None,
          actor: str | None) -> DsrRequest:
    if kind not in KINDS:
        raise InputError(f"unknown request kind {kind!r}; choose one of {', '.join(KINDS)}")
    now = app.clock.now()
    received = received_at or now
    if received.tzinfo is None:
        raise InputError("the received date needs a time zone (or give a bare date: UTC)")
    if received > now:
        raise InputError("a request cannot be received in the future")
    if reference:
        ref = check_reference(reference)
        if session.get(DsrRequest, ref) is not None:
            raise InputError(f"request {ref} is already in the log; see `dsr list`")
    else:
        ref = _next_reference(session, received.year)
    row = DsrRequest(reference=ref, kind=kind, subject_blind=subject_blind(app, who),
                     received_at=received,
                     due_at=received + timedelta(days=app.settings.dsr.due_days),
                     status="open", handled_by=actor or app.actor)
    session.add(row)
    session.flush()
    app.audit(session, "dsr.open", target_type="dsr_request", target_id=ref, actor=actor,
              kind=kind, subject_blind=row.subject_blind, due_at=row.due_at.isoformat())
    return row


def _request_for(app: AppContext, session: Session, kind: str, who: Subject,
                 reference: str | None, actor: str) -> DsrRequest:
    """The logged request this action fulfils: the one named (checked), or a new one."""
    if reference:
        row = session.get(DsrRequest, check_reference(reference))
        if row is not None:
            if row.subject_blind != subject_blind(app, who):
                raise InputError(f"request {row.reference} was logged for another identity; "
                                 "check the reference and the --email/--object-id")
            if row.kind != kind:
                raise InputError(f"request {row.reference} is a {row.kind} request, "
                                 f"not {kind}; log a new request for this")
            return row
    return _open(app, session, kind, who, reference=reference, received_at=None, actor=actor)


def _complete(app: AppContext, session: Session, row: DsrRequest, actor: str) -> None:
    if row.status == "open":
        row.status = "completed"
        row.closed_at = app.clock.now()
    row.handled_by = actor
    session.add(row)


def close_request(app: AppContext, session: Session, reference: str, *,
                  actor: str | None = None, status: str = "closed") -> DsrRequest:
    """Close a request by hand (answered outside this tool, rejected, withdrawn)."""
    if status not in ("completed", "closed"):
        raise InputError("a request is closed as completed or closed")
    row = session.get(DsrRequest, reference.strip())
    if row is None:
        raise NotFoundError(f"request {reference.strip()} is not in the log; see `dsr list`")
    if row.status != "open":
        raise InputError(f"request {row.reference} is already {row.status}")
    row.status = status
    row.closed_at = app.clock.now()
    row.handled_by = actor or app.actor
    session.add(row)
    app.audit(session, "dsr.close", target_type="dsr_request", target_id=row.reference,
              actor=actor, status=status)
    return row


def list_requests(app: AppContext, session: Session, *, open_only: bool = False,
                  overdue: bool = False, blind: str | None = None) -> list[RequestView]:
    """The log, oldest due date first; `overdue` implies open and past due."""
    now = app.clock.now()
    query = select(DsrRequest)
    if open_only or overdue:
        query = query.where(DsrRequest.status == "open")
    if overdue:
        query = query.where(col(DsrRequest.due_at) < now)
    if blind:
        query = query.where(DsrRequest.subject_blind == blind)
    rows = session.exec(query.order_by(col(DsrRequest.due_at), col(DsrRequest.reference))).all()
    return [_view(r, now) for r in rows]


# -- finding what is held ---------------------------------------------------------------------
def _live_transcripts(session: Session, blinds: Sequence[str], *,
                      lock: bool = False) -> list[Transcript]:
    """Unpurged transcripts of meetings the person attended: by the transcript's own index and,
    in case that is incomplete, by its recording's participant list (as holds do)."""
    by_transcript = select(TranscriptParticipant.transcript_id).where(
        col(TranscriptParticipant.blind).in_(list(blinds)))
    by_recording = select(RecordingParticipant.recording_id).where(
        col(RecordingParticipant.blind).in_(list(blinds)))
    query = select(Transcript).where(
        col(Transcript.purged_at).is_(None),
        or_(col(Transcript.id).in_(by_transcript), col(Transcript.recording_id).in_(by_recording)),
    ).order_by(col(Transcript.meeting_start), col(Transcript.id))
    if lock:
        query = query.with_for_update(of=Transcript)
    return list(session.exec(query).all())


def _held_ids(session: Session, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    return set(session.exec(select(Transcript.id).where(
        col(Transcript.id).in_(list(ids)), held_filter(active_holds(session)))).all())


def _optouts_of(session: Session, blinds: Sequence[str]) -> list[OptOut]:
    return list(session.exec(select(OptOut).where(or_(
        col(OptOut.email_blind).in_(list(blinds)), col(OptOut.object_id_blind).in_(list(blinds))))
        .order_by(col(OptOut.created_at), col(OptOut.id))).all())


@dataclass(frozen=True)
class PersonSummary:
    """What is held about a person, in counts only (nothing decrypted): for the DPO's screen."""

    subject_blind: str
    transcripts: int
    held: int
    optouts: int
    active_optouts: int
    requests: tuple[RequestView, ...]


def _blinds(app: AppContext, who: Subject, identity: PersonIdentity | None) -> list[str]:
    """The identity given plus, when resolved, every other identifier of the person."""
    blinds = {subject_blind(app, who)}
    if identity is not None:
        blinds.update(identity.blinds)
    return sorted(blinds)


def find_person(app: AppContext, identity: PersonIdentity | None = None, /, *,
                email: str | None = None, object_id: str | None = None) -> PersonSummary:
    who = subject(email, object_id)
    blind = subject_blind(app, who)
    blinds = _blinds(app, who, identity)
    with app.session() as session:
        rows = _live_transcripts(session, blinds)
        opts = _optouts_of(session, blinds)
        return PersonSummary(
            subject_blind=blind, transcripts=len(rows),
            held=len(_held_ids(session, [r.id for r in rows])), optouts=len(opts),
            active_optouts=sum(1 for o in opts if o.revoked_at is None),
            requests=tuple(list_requests(app, session, blind=blind)))


# -- access ---------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ExportReport:
    reference: str
    path: Path
    sha256: str
    size: int
    transcript_ids: tuple[str, ...]
    optouts: int
    held: int


def _segments(content: dict[str, Any]) -> list[Segment]:
    """Segments of a stored document, leniently (older documents may lack some fields)."""
    out = []
    for item in content.get("segments") or []:
        if isinstance(item, dict):
            speaker = item.get("speaker")
            out.append(Segment(start=float(item.get("start") or 0.0),
                               end=float(item.get("end") or 0.0), text=str(item.get("text", "")),
                               speaker=str(speaker) if speaker else None,
                               speaker_source=str(item.get("speaker_source") or "unnamed")
                               if speaker else None))
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _own_entries(app: AppContext, people: list[dict[str, Any]],
                 blinds: Sequence[str]) -> list[dict[str, Any]]:
    """The person's own entries in a participant list; the other attendees are not theirs."""
    wanted = set(blinds)
    return [p for p in people
            if wanted & set(app.vault.blind_identities(email=p.get("email"),
                                                       object_id=p.get("object_id")))]


def export_person(app: AppContext, identity: PersonIdentity | None = None, /, *,
                  email: str | None = None, object_id: str | None = None, out: Path,
                  reference: str | None = None, actor: str | None = None) -> ExportReport:
    """Write the person's bundle (a zip, 0600): manifest, opt-outs with history, transcripts.

    Every decryption is audited with the request reference; the request is then completed.
    Other attendees' names and addresses are left out: they are not the subject's data.
    `identity` (`people.person_identity`) adds every other identifier of the person.
    """
    from meeting_governance import optouts as registry

    who = subject(email, object_id)
    actor = actor or app.actor
    out = Path(out)
    if out.exists():
        raise InputError(f"{out} already exists; an export never overwrites a file")
    if not out.parent.is_dir():
        raise InputError(f"{out.parent} is not a directory")
    blind = subject_blind(app, who)
    blinds = _blinds(app, who, identity)
    with app.session() as session:
        req = _request_for(app, session, "access", who, reference, actor)
        ref = req.reference
        rows = _live_transcripts(session, blinds)
        held = _held_ids(session, [r.id for r in rows])
        files: dict[str, str] = {}
        meetings = []
        for row in rows:
            content = read_content(app, session, row)
            topic = (app.vault.open_text(session, row.subject_item, owner=subject_owner(row.id))
                     if row.subject_item else None)
            own = _own_entries(app, read_participants(app, session, row), blinds)
            app.audit(session, "transcript.read", target_type="transcript", target_id=row.id,
                      actor=actor, reason="data-subject access", reference=ref)
            base = f"transcripts/{row.id}"
            files[f"{base}.json"] = json.dumps(content, ensure_ascii=False, indent=2)
            files[f"{base}.vtt"] = formats.to_vtt(_segments(content))
            meetings.append({
                "transcript_id": row.id, "meeting_id": row.meeting_id, "subject": topic,
                "meeting_start": _iso(row.meeting_start), "meeting_end": _iso(row.meeting_end),
                "duration_s": row.duration_s, "language": row.language, "version": row.version,
                "retention_policy": row.retention_policy, "retain_until": _iso(row.retain_until),
                "legal_hold": row.id in held, "you_as_participant": own,
                "files": [f"{base}.json", f"{base}.vtt"]})
        opt_rows = _optouts_of(session, blinds)
        opt_data = []
        for opt in opt_rows:
            view = registry.get_optout(app, session, opt.id)
            trail = [{"seq": e.seq, "at": e.at.isoformat(), "actor": e.actor,
                      "action": e.action, "details": json.loads(e.details)}
                     for e in registry.history(app, session, opt.id)]
            app.audit(session, "optout.read", target_type="optout", target_id=opt.id,
                      actor=actor, reason="data-subject access", reference=ref)
            opt_data.append({**view.as_dict(), "history": trail})
        files["optouts.json"] = json.dumps(opt_data, ensure_ascii=False, indent=2, default=str)
        untranscribed = _recordings_without_transcript(session, blinds)
        manifest = {
            "reference": ref, "generated_at": app.clock.now().isoformat(),
            "identities_searched": who.given(),
            "identifiers_searched": len(blinds),
            "how_identifiers_were_found": identity.note if identity else
            PersonIdentity((blind,), False, _NOT_ASKED).note,
            "counts": {"meetings": len(meetings) + len(untranscribed),
                       "transcripts": len(meetings),
                       "optouts": len(opt_data), "under_legal_hold": len(held)},
            "meetings": meetings,
            "recordings_not_transcribed": untranscribed,
            "requests": [v.as_dict() for v in list_requests(app, session, blind=blind)],
            "notes": ["Transcripts are the full text of meetings you attended; the names and "
                      "addresses of the other attendees are not included.",
                      "Each transcript is given as JSON (as stored) and WebVTT."],
        }
        files["manifest.json"] = json.dumps(manifest, ensure_ascii=False, indent=2, default=str)
        digest, size = _write_zip(out, files)
        app.audit(session, "dsr.export", target_type="dsr_request", target_id=ref, actor=actor,
                  subject_blind=blind, identifiers=len(blinds), transcripts=len(meetings),
                  optouts=len(opt_data), held=len(held), sha256=digest)
        _complete(app, session, req, actor)
    return ExportReport(reference=ref, path=out, sha256=digest, size=size,
                        transcript_ids=tuple(r.id for r in rows),
                        optouts=len(opt_data), held=len(held))


def _recordings_without_transcript(session: Session,
                                   blinds: str | Sequence[str]) -> list[dict[str, Any]]:
    """Meetings the person attended that were not (or not yet) transcribed: metadata only."""
    wanted = [blinds] if isinstance(blinds, str) else list(blinds)
    with_transcript = select(Transcript.recording_id).where(
        col(Transcript.recording_id).is_not(None), col(Transcript.purged_at).is_(None))
    rows = session.exec(select(Recording).where(
        col(Recording.id).in_(select(RecordingParticipant.recording_id).where(
            col(RecordingParticipant.blind).in_(wanted))),
        col(Recording.id).not_in(with_transcript)).order_by(col(Recording.id))).all()
    return [{"meeting_id": r.meeting_id, "meeting_start": _iso(r.meeting_start),
             "meeting_end": _iso(r.meeting_end), "state": r.state, "reason": r.reason}
            for r in rows]


def _write_zip(out: Path, files: dict[str, str]) -> tuple[str, int]:
    """Write beside the target, 0600 from the first byte, then move into place."""
    part = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle, \
                zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
            for name in ["manifest.json", *sorted(n for n in files if n != "manifest.json")]:
                bundle.writestr(name, files[name])
        os.replace(part, out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    data = out.read_bytes()
    return hashlib.sha256(data).hexdigest(), len(data)


# -- erasure ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class HoldReason:
    hold_id: str  # "" for a transcript flagged as held without a hold record
    kind: str  # transcript | person | meeting | flag
    reason: str | None  # decrypted for the DPO's report only; None if it was shredded


@dataclass(frozen=True)
class HeldTranscript:
    transcript_id: str
    meeting_id: str
    meeting_start: datetime | None
    holds: tuple[HoldReason, ...]


@dataclass(frozen=True, kw_only=True)
class ErasureReport:
    reference: str | None  # None for a dry run without --reference
    dry_run: bool
    erased: tuple[str, ...]  # transcript ids (to be) crypto-shredded
    held: tuple[HeldTranscript, ...]
    recording_links_removed: int  # the person's blind values on recordings' participant lists
    optouts_kept: int
    notes: tuple[str, ...]
    keys_destroyed: tuple[str, ...] = ()  # epoch keys rotated away because of this erasure

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hold_reasons(app: AppContext, session: Session, held: Sequence[Transcript], *,
                  reference: str | None, actor: str, dry_run: bool) -> list[HeldTranscript]:
    if not held:
        return []
    ids = {r.id for r in held}
    reasons: dict[str, list[HoldReason]] = {i: [] for i in ids}
    opened: list[str] = []
    for hold in session.exec(select(Hold).where(col(Hold.released_at).is_(None))
                             .order_by(col(Hold.set_at))).all():
        covers = ids.intersection(covered_by(session, hold))
        if not covers:
            continue
        try:
            text = (app.vault.open_text(session, hold.reason_item, owner=reason_owner(hold.id))
                    if hold.reason_item else None)
        except ShreddedError:
            text = None
        opened.append(hold.id)
        for tid in covers:
            reasons[tid].append(HoldReason(hold.id, hold_kind(hold), text))
    if opened:
        app.audit(session, "hold.reasons_read", target_type="legal_hold", actor=actor,
                  holds=",".join(opened), reason="data-subject erasure report",
                  reference=reference, dry_run=dry_run)
    return [HeldTranscript(r.id, r.meeting_id, r.meeting_start,
                           tuple(reasons[r.id]) or (HoldReason("", "flag", None),))
            for r in held]


def erase_person(app: AppContext, identity: PersonIdentity | None = None, /, *,
                 email: str | None = None, object_id: str | None = None,
                 reference: str | None = None, actor: str | None = None,
                 dry_run: bool = False) -> ErasureReport:
    """Crypto-shred the transcripts of every meeting the person attended, except held ones.

    Also removes the person's blind values from recordings' participant lists (a held
    transcript keeps its own, so the hold still finds it). A dry run changes nothing; the hold
    reasons it shows are still audited, as every decryption is.
    """
    from meeting_governance.purge import tombstone

    who = subject(email, object_id)
    reference = check_reference(reference) if reference else None
    actor = actor or app.actor
    blind = subject_blind(app, who)
    blinds = _blinds(app, who, identity)
    with app.session() as session:
        req = None if dry_run else _request_for(app, session, "erasure", who, reference, actor)
        ref = req.reference if req is not None else (reference or None)
        rows = _live_transcripts(session, blinds, lock=not dry_run and not is_sqlite(app.engine))
        held_ids = _held_ids(session, [r.id for r in rows])
        held_rows = [r for r in rows if r.id in held_ids]
        doomed = [r for r in rows if r.id not in held_ids]
        held = _hold_reasons(app, session, held_rows, reference=ref, actor=actor,
                             dry_run=dry_run)
        kept_recordings = sorted({r.recording_id for r in held_rows if r.recording_id is not None})
        links = select(RecordingParticipant.id).where(col(RecordingParticipant.blind).in_(blinds))
        if kept_recordings:
            links = links.where(col(RecordingParticipant.recording_id).not_in(kept_recordings))
        link_ids = list(session.exec(links).all())
        kept_optouts = int(session.exec(select(func.count()).select_from(OptOut).where(or_(
            col(OptOut.email_blind).in_(blinds), col(OptOut.object_id_blind).in_(blinds)))).one())
        erased: list[str] = [r.id for r in doomed]
        if req is not None:
            erased = tombstone(app, session, doomed, reason=ERASURE_REASON, run_id=req.reference)
            if link_ids:
                session.exec(delete(RecordingParticipant).where(
                    col(RecordingParticipant.id).in_(link_ids)))
            app.audit(session, "dsr.erase", target_type="dsr_request", target_id=req.reference,
                      actor=actor, subject_blind=blind, identifiers=len(blinds),
                      erased=len(erased), held=len(held),
                      links_removed=len(link_ids), optouts_kept=kept_optouts)
            _complete(app, session, req, actor)
    destroyed: list[str] = []
    if req is not None:
        # Every epoch that wrapped an erased item is rotated: survivors re-wrapped under a new
        # key, the old key destroyed, so no copy of the database can show the erased items.
        destroyed = [d.key_id for d in epochs.settle(
            app, reason="erasure", retire=False, batch_size=app.settings.keys.rotate_batch_size)]
        checkpoint(app.engine)  # SQLite: no shredded key may linger in the WAL
    notes = [OPTOUTS_KEPT_NOTE] + ([HELD_NOTE] if held else [])
    return ErasureReport(reference=ref, dry_run=dry_run, erased=tuple(erased), held=tuple(held),
                         recording_links_removed=len(link_ids), optouts_kept=kept_optouts,
                         notes=tuple(notes), keys_destroyed=tuple(destroyed))


# -- withdrawal of consent --------------------------------------------------------------------
@dataclass(frozen=True)
class WithdrawalReport:
    reference: str
    optout_id: str


def withdraw_consent(app: AppContext, registration: Registration | None = None, /, *,
                     email: str | None = None, object_id: str | None = None,
                     name: str | None = None, reference: str | None = None,
                     actor: str | None = None) -> WithdrawalReport:
    """Withdrawal of consent is an opt-out from every meeting, recording and transcription,
    matching every identifier `registration` (the directory's answer) names."""
    from meeting_governance import optouts as registry

    who = subject(email, object_id)
    actor = actor or app.actor
    with app.session() as session:
        req = _request_for(app, session, "withdrawal", who, reference, actor)
        view = registry.add_optout(app, session, registry.OptOutRequest(
            email=who.email, object_id=who.object_id, name=name,
            note=f"withdrawal of consent, request {req.reference}"), actor=actor,
            registration=registration)
        app.audit(session, "dsr.withdraw", target_type="dsr_request", target_id=req.reference,
                  actor=actor, optout_id=view.id)
        _complete(app, session, req, actor)
        return WithdrawalReport(req.reference, view.id)


__all__ = [
    "ERASURE_REASON", "KINDS", "STATUSES", "ErasureReport", "ExportReport", "HeldTranscript",
    "HoldReason", "PersonSummary", "RequestView", "Subject", "WithdrawalReport",
    "check_reference", "close_request", "erase_person", "export_person", "find_person", "list_requests",
    "open_request", "subject", "subject_blind", "withdraw_consent",
]
