"""The decision: participants × opt-outs × policy → Allow | Block(reason) | Wait.

A pure function of its inputs (no I/O, no clock of its own), so the one rule that must never
break — no transcript of a meeting with an opted-out participant; unknown means no — is
tested exhaustively with hypothesis. The pipeline gathers the inputs and applies the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from meeting_governance.identity import Participant, ParticipantKind


class Verdict(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"
    WAIT = "wait"


REASON_OPTED_OUT = "opted out"
REASON_UNKNOWN = "participants unknown"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str
    optout_ids: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


def unknown_participants(participants: Sequence[Participant], *, allow_anonymous: bool,
                         allow_rooms: bool = False) -> int:
    """How many participants the registry can neither match nor clear: everyone but those the
    directory resolved, and the anonymous/phone participants or rooms a setting lets through."""
    count = 0
    for person in participants:
        if person.known:
            continue
        if allow_anonymous and person.kind in (ParticipantKind.ANONYMOUS, ParticipantKind.PHONE):
            continue
        if allow_rooms and person.kind is ParticipantKind.ROOM:
            continue
        count += 1
    return count


def decide(
    *,
    participants: Sequence[Participant],
    attendance_known: bool,
    matched_optout_ids: Sequence[str],
    allow_anonymous: bool,
    now: datetime,
    deadline: datetime,
    lookup_failed: str | None = None,
    allow_rooms: bool = False,
    attendance_detail: str | None = None,
    attendance_settles_at: datetime | None = None,
) -> Decision:
    """Apply the rules in order of strength.

    1. Any matching active opt-out blocks, whatever else is known.
    2. Anything unknown (a Graph or directory error, no attendance report for this recording,
       one not yet settled, a participant the directory did not resolve, an anonymous or phone
       participant, a meeting room, an empty list) waits until the deadline, then blocks.
       Anonymous and phone participants pass only when `allow_anonymous` says so, rooms only
       when `allow_rooms` does.
    3. Otherwise allow.
    """
    if matched_optout_ids:
        ids = tuple(sorted(set(matched_optout_ids)))
        return Decision(Verdict.BLOCK, f"{REASON_OPTED_OUT} ({len(ids)} opt-out"
                        f"{'s' if len(ids) != 1 else ''})", ids)
    problems: list[str] = []
    if lookup_failed:
        problems.append(lookup_failed)
    if not participants:
        problems.append("no participants known")
    if not attendance_known:
        problems.append(attendance_detail or "no attendance report yet")
    elif attendance_settles_at is not None and now < attendance_settles_at:
        problems.append("the attendance report may still change (trusted from "
                        f"{attendance_settles_at:%Y-%m-%d %H:%M} UTC)")
    unresolved = sum(1 for p in participants if p.identifiable and not p.resolved)
    unknown = unknown_participants(participants, allow_anonymous=allow_anonymous,
                                   allow_rooms=allow_rooms)
    if unresolved:
        problems.append(f"{unresolved} participant{'s' if unresolved != 1 else ''} not "
                        "resolved in the directory")
    if unknown - unresolved:
        others = unknown - unresolved
        problems.append(f"{others} participant{'s' if others != 1 else ''} without a "
                        "matchable identity")
    if problems:
        detail = "; ".join(dict.fromkeys(problems))
        if now >= deadline:
            return Decision(Verdict.BLOCK, f"{REASON_UNKNOWN}: {detail}")
        return Decision(Verdict.WAIT, f"waiting for participants: {detail}")
    return Decision(Verdict.ALLOW, "no opt-out covers this meeting; every participant identified")
