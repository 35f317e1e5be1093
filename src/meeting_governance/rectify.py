"""Rectification: correct a stored transcript without keeping what it used to say.

The corrected document is sealed as a new vault item (a new data key) and the old item is
crypto-shredded in the same transaction, so exactly one readable version exists; then the
epoch that wrapped the old data key is rotated (its other items re-wrapped under a new key,
the old key destroyed), so no copy of the database taken before the correction can show the
old text any more. The audit
log records that version N became N+1 (and the request reference), never the text. The reason
for the correction goes inside the new sealed document, so it shares the transcript's fate at
purge time. A transcript under legal hold is not rectified: that would destroy held evidence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlmodel import Session, col, select

from meeting_governance import epochs, formats
from meeting_governance.context import AppContext
from meeting_governance.db import checkpoint, is_sqlite
from meeting_governance.dsr import check_reference
from meeting_governance.errors import InputError, NotFoundError
from meeting_governance.holds import is_held
from meeting_governance.models import Transcript
from meeting_governance.segments import Segment
from meeting_governance.store import content_owner, read_content

MAX_REASON = 500
_LINE = re.compile(r"^\s*\[?(\d+:\d{2}:\d{2}[.,]\d{1,3})\s*-->\s*(\d+:\d{2}:\d{2}[.,]\d{1,3})\]?"
                   r"\s*\|?\s?(.*)$")
EDIT_HEADER = ("# Correct the words after the '|' of each line, then save and quit.\n"
               "# Lines starting with '#' are ignored; keep the timestamps as they are.\n"
               "# An empty file (or unchanged text) cancels the edit.\n")


@dataclass(frozen=True)
class RectifyReport:
    transcript_id: str
    from_version: int
    to_version: int
    segments_changed: int
    keys_destroyed: tuple[str, ...] = ()


def editable_text(content: dict[str, Any]) -> str:
    """The text a person edits: one `start --> end | words` line per segment."""
    lines = [EDIT_HEADER]
    for seg in content.get("segments") or []:
        start = formats.vtt_timestamp(float(seg.get("start") or 0.0))
        end = formats.vtt_timestamp(float(seg.get("end") or 0.0))
        lines.append(f"{start} --> {end} | {seg.get('text', '')}\n")
    return "".join(lines)


def _seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.replace(",", ".").split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def parse_edited(text: str, old: Sequence[Segment]) -> list[Segment]:
    """Read edited text back: timestamped lines, or (if every stamp was removed) exactly one
    plain line per original segment, which keeps the original times."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise InputError("the edited text is empty; nothing was changed")
    matches = [_LINE.match(ln) for ln in lines]
    if all(m is not None for m in matches):
        segments = []
        for i, m in enumerate(matches):
            assert m is not None
            start, end = _seconds(m.group(1)), _seconds(m.group(2))
            if end < start:
                raise InputError(f"a segment ends before it starts ({m.group(1)} --> {m.group(2)})")
            if i < len(old) and _key(old[i])[:2] == (round(start, 3), round(end, 3)):
                start, end = old[i].start, old[i].end  # unchanged times keep full precision
            segments.append(Segment(start=start, end=end, text=m.group(3).strip()))
        return segments
    if not any(matches) and len(lines) == len(old):
        return [Segment(start=s.start, end=s.end, text=ln.strip()) for s, ln in zip(old, lines,
                                                                                   strict=True)]
    bad = next(i for i, m in enumerate(matches) if m is None)
    raise InputError(f"line {bad + 1} of the edited text has no 'HH:MM:SS.mmm --> HH:MM:SS.mmm |' "
                     "prefix; keep one timestamped line per segment")


def _old_segments(content: dict[str, Any]) -> list[Segment]:
    out = []
    for s in content.get("segments") or []:
        speaker, source = formats.speaker_fields(s)
        out.append(Segment(start=float(s.get("start") or 0.0), end=float(s.get("end") or 0.0),
                           text=str(s.get("text", "")), speaker=speaker, speaker_source=source))
    return out


def _keep_speakers(old: Sequence[Segment], new: list[Segment]) -> list[Segment]:
    """Edited text carries words and times only: a segment whose times are unchanged keeps its
    speaker label (a JSON document brings its own labels and is taken as it is)."""
    labels = {(round(s.start, 3), round(s.end, 3)): s for s in old if s.speaker}
    out = []
    for segment in new:
        before = labels.get((round(segment.start, 3), round(segment.end, 3)))
        if segment.speaker is None and before is not None:
            segment = replace(segment, speaker=before.speaker,
                              speaker_source=before.speaker_source)
        out.append(segment)
    return out


def _as_segments(new: str | Sequence[Segment], old: Sequence[Segment]) -> list[Segment]:
    if isinstance(new, str):
        stripped = new.lstrip()
        if stripped.startswith("{"):  # a JSON document as `transcript export --format json` writes
            return list(formats.from_json(stripped).segments)
        return _keep_speakers(old, parse_edited(new, old))
    return list(new)


def rectify(app: AppContext, transcript_id: str, new: str | Sequence[Segment], *,
            actor: str | None = None, reason: str = "", reference: str | None = None,
            expected_version: int | None = None) -> RectifyReport:
    """Store the corrected segments as version N+1 under a new data key; shred version N.

    `new` is edited text (see `editable_text`), a JSON document or segments. With
    `expected_version`, a transcript changed meanwhile by someone else is refused.
    """
    actor = actor or app.actor
    reference = check_reference(reference) if reference else None
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        raise InputError(f"reason: too long ({len(reason)} characters; at most {MAX_REASON})")
    with app.session() as session:
        row = _locked(app, session, transcript_id)
        if row.purged_at is not None or row.content_item is None:
            raise InputError(f"transcript {row.id} was purged; there is nothing to correct")
        if expected_version is not None and row.version != expected_version:
            raise InputError(f"transcript {row.id} changed while you edited it (version "
                             f"{row.version}, you edited {expected_version}); edit it again")
        if is_held(session, row.id):
            raise InputError(f"transcript {row.id} is under legal hold; correcting it would "
                             "destroy the held version — release the hold first")
        content = read_content(app, session, row)
        old = _old_segments(content)
        segments = _as_segments(new, old)
        changed = _changes(old, segments)
        if changed == 0:
            raise InputError("the corrected text is the same as the stored one; nothing changed")
        from_version = row.version
        document = {**content,
                    "segments": [formats.segment_json(s) for s in segments],
                    "corrections": [*content.get("corrections", []),
                                    {"version": from_version + 1,
                                     "at": app.clock.now().isoformat(),
                                     "by": actor, "reason": reason or None,
                                     "reference": reference}]}
        old_item = row.content_item
        row.content_item = app.vault.seal(
            session, json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8"),
            purpose="transcript", owner=content_owner(row.id),
            epoch=app.vault.retention_epoch(row.retain_until))
        app.vault.shred(session, old_item)
        row.version = from_version + 1
        row.updated_at = app.clock.now()
        session.add(row)
        app.audit(session, "transcript.rectified", target_type="transcript", target_id=row.id,
                  actor=actor, from_version=from_version, to_version=row.version,
                  segments_changed=changed, reason_given=bool(reason), reference=reference)
    destroyed = epochs.settle(app, reason="rectification", retire=False,
                              batch_size=app.settings.keys.rotate_batch_size)
    checkpoint(app.engine)  # SQLite: the old ciphertext must not linger in the WAL
    return RectifyReport(row.id, from_version, from_version + 1, changed,
                         tuple(d.key_id for d in destroyed))


def _locked(app: AppContext, session: Session, transcript_id: str) -> Transcript:
    query = select(Transcript).where(col(Transcript.id) == transcript_id.strip())
    if not is_sqlite(app.engine):
        query = query.with_for_update()
    row = session.exec(query).first()
    if row is None:
        raise NotFoundError(f"transcript {transcript_id.strip()} does not exist: "
                            "see `meeting-governance transcript list`")
    return row


def _key(segment: Segment) -> tuple[float, float, str, str | None]:
    # A corrected speaker label is a change too (a JSON document can carry one).
    return (round(segment.start, 3), round(segment.end, 3), segment.text.strip(),
            segment.speaker)


def _changes(old: Sequence[Segment], new: Sequence[Segment]) -> int:
    """How many segments differ (added or removed ones count too)."""
    pairs = sum(1 for a, b in zip(old, new, strict=False) if _key(a) != _key(b))
    return pairs + abs(len(old) - len(new))


__all__ = ["EDIT_HEADER", "RectifyReport", "editable_text", "parse_edited", "rectify"]
