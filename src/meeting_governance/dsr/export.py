"""Access: the person's bundle (a zip) of opt-outs and transcripts of the meetings they attended.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from meeting_governance import formats, speakers
from meeting_governance.context import AppContext
from meeting_governance.dsr.requests import (
    _NOT_ASKED,
    _blinds,
    _complete,
    _held_ids,
    _live_transcripts,
    _optouts_of,
    _request_for,
    list_requests,
    subject,
    subject_blind,
)
from meeting_governance.epochs import Owner, standing
from meeting_governance.errors import InputError
from meeting_governance.models import (
    DsrDecision,
    Recording,
    RecordingParticipant,
    Transcript,
)
from meeting_governance.people import PersonIdentity
from meeting_governance.segments import Segment
from meeting_governance.store import read_content, read_participants, subject_owner


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
                  reference: str | None = None, actor: str | None = None,
                  full_transcript: bool = False, reason: str | None = None) -> ExportReport:
    """Write the person's bundle (a zip, 0600): manifest, opt-outs with history, transcripts.

    Each transcript holds the person's own turns in full (labels linked to them, `speakers`)
    and everything else as "another participant spoke (start–end)": other people's words are
    not the person's data. `full_transcript` (the DPO's choice, with a `reason`) gives the whole
    text instead; the choice and the sealed reason are recorded against the request.
    Every decryption is audited with the request reference; the request is then completed.
    Other attendees' names and addresses are left out. `identity`
    (`people.person_identity`) adds every other identifier of the person.
    """
    from meeting_governance import optouts as registry

    who = subject(email, object_id)
    actor = actor or app.actor
    reason = " ".join((reason or "").split())
    if full_transcript and not reason:
        raise InputError("--full-transcript needs --reason: say why this person gets the other "
                         "participants' words too (it is kept, sealed, with the request)")
    if reason and not full_transcript:
        raise InputError("--reason goes with --full-transcript (the default export needs none)")
    if len(reason) > MAX_REASON:
        raise InputError(f"--reason: too long ({len(reason)} characters; at most {MAX_REASON})")
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
        if full_transcript:
            record_decision(app, session, ref, reason, actor=actor)
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
            views = speakers.names_for(app, session, row, content)
            mine = own_labels(session, row.id, blinds)
            document, vtt = (full_document(content, views, mine) if full_transcript
                             else own_document(content, views, mine))
            files[f"{base}.json"] = json.dumps(document, ensure_ascii=False, indent=2)
            files[f"{base}.vtt"] = vtt
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
            "full_transcript": full_transcript,
            "notes": [FULL_NOTE if full_transcript else OWN_NOTE,
                      "The names and addresses of the other attendees are not included.",
                      "Each transcript is given as JSON and WebVTT; a speaker shown by name "
                      "says how it was named (attendance, teams_timeline or dpo)."],
        }
        files["manifest.json"] = json.dumps(manifest, ensure_ascii=False, indent=2, default=str)
        digest, size = _write_zip(out, files)
        app.audit(session, "dsr.export", target_type="dsr_request", target_id=ref, actor=actor,
                  subject_blind=blind, identifiers=len(blinds), transcripts=len(meetings),
                  optouts=len(opt_data), held=len(held), sha256=digest,
                  full_transcript=full_transcript)
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




# -- what of a transcript is the person's ------------------------------------------------------
MAX_REASON = 1000
DECISION_EPOCH = standing("dsr_decision")  # kept as long as the request log
OWN_NOTE = ("Each transcript holds your own words in full (the speaker labels attributed to you) "
            "and, for everyone else, only when another participant spoke.")
FULL_NOTE = ("The data protection officer chose to give the full transcripts for this request "
             "(the reason is recorded with the request).")
OTHER = "another participant spoke"
UNIDENTIFIED = "an unidentified participant spoke"


def decision_owner(decision_id: str) -> Owner:
    return Owner("dsr_decision", decision_id, "reason")


def record_decision(app: AppContext, session: Session, reference: str, reason: str, *,
                    actor: str) -> DsrDecision:
    """The DPO chose the full transcript for `reference`: row, sealed reason, audit entry."""
    decision_id = uuid.uuid4().hex
    row = DsrDecision(id=decision_id, reference=reference, full_transcript=True,
                      reason_item=app.vault.seal_text(session, reason, owner=decision_owner(
                          decision_id), epoch=DECISION_EPOCH, purpose="dsr_reason"),
                      decided_by=actor, decided_at=app.clock.now())
    session.add(row)
    session.flush()
    app.audit(session, "dsr.full_transcript", target_type="dsr_request", target_id=reference,
              actor=actor, decision_id=decision_id, reason_given=True)
    return row


def own_labels(session: Session, transcript_id: str, blinds: Sequence[str]) -> set[str]:
    """Labels of the transcript linked to the person (under any of their identifiers)."""
    wanted = set(blinds)
    return {link.label for link in speakers.links(session, transcript_id)
            if wanted & ({link.person_blind} | set(link.identifiers.split()))}


def _hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _span(start: float, end: float) -> str:
    """Whole seconds that cover the speech: the start rounded down, the end up."""
    return f"{_hms(max(0, math.floor(start)))}–{_hms(max(0, math.ceil(end)))}"


def own_document(content: dict[str, Any], views: dict[str, speakers.SpeakerView],
                 own: set[str]) -> tuple[dict[str, Any], str]:
    """The person's own segments in full; each run of anyone else's as one placeholder with
    its times only (named others: "another participant spoke", unnamed: "an unidentified
    participant spoke"). No word, label or name of anyone else is carried over."""
    items: list[dict[str, Any]] = []
    for segment in _segments(content):
        if segment.speaker in own:
            view = views.get(segment.speaker or "")
            shown = view.shown if view else segment.speaker
            items.append({"start": segment.start, "end": segment.end, "text": segment.text,
                          "speaker": shown, "speaker_source": view.method if view else None,
                          "yours": True})
            continue
        kind = OTHER if segment.speaker and views.get(segment.speaker, None) is not None \
            and views[segment.speaker].name else UNIDENTIFIED
        last = items[-1] if items else None
        if last is not None and not last.get("yours") and last["kind"] == kind:
            last["end"] = max(last["end"], segment.end)
        else:
            items.append({"start": segment.start, "end": segment.end, "kind": kind,
                          "yours": False})
    for item in items:
        if not item["yours"]:
            item["text"] = f"{item.pop('kind')} ({_span(item['start'], item['end'])})"
    cues = [Segment(start=i["start"], end=i["end"], text=i["text"],
                    speaker=i["speaker"] if i["yours"] else None) for i in items]
    notes = speakers.naming_notes({k: v for k, v in views.items() if k in own})
    document = {"version": content.get("version"), "language": content.get("language"),
                "duration": content.get("duration"), "segments": items,
                "your_speaker_labels": sorted(own),
                "how_you_were_named": notes}
    return document, formats.to_vtt(cues, notes)


def full_document(content: dict[str, Any], views: dict[str, speakers.SpeakerView],
                  own: set[str]) -> tuple[dict[str, Any], str]:
    """The whole transcript (the DPO's choice): every word, but only the person's own labels
    carry a name (and how it was named); the other attendees' names stay out, as their
    addresses do, so other labels read "Speaker N"."""
    views = {label: view for label, view in views.items() if label in own}
    segments = speakers.named_segments(_segments(content), views)
    notes = speakers.naming_notes(views)
    document = {**content, "segments": [formats.segment_json(s) for s in segments],
                "your_speaker_labels": sorted(own),
                "how_you_were_named": notes}
    document.pop("turns", None)
    return document, formats.to_vtt(segments, notes)
