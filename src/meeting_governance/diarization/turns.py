"""Speaker turns on a transcript's timeline, and which turn a transcript segment belongs to.

Pure functions and small records only: the transcriber, the exports and (later) redaction all
read these, and none of them needs the encoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# How a speaker label was named. "unnamed" ("Speaker 2") is all diarization itself can say;
# the others are evidence recorded with the label (the attendance report, Teams' own speaker
# timeline, a DPO who listened), never a guess.
SPEAKER_SOURCES = ("unnamed", "attendance", "teams_timeline", "dpo", "teams")  # "teams": older name
UNNAMED = "unnamed"
# A segment with no turn under it takes the nearest turn's speaker only this close (seconds).
NEAREST_TURN_S = 1.0


def speaker_label(index: int) -> str:
    """The label of the `index`-th speaker (0-based) in order of first appearance."""
    return f"Speaker {index + 1}"


@dataclass(frozen=True)
class SpeakerTurn:
    """One speaker talking from `start` to `end` (seconds from the start of the recording)."""

    start: float
    end: float
    speaker: str
    speaker_source: str = UNNAMED


def speaker_for(start: float, end: float, turns: Sequence[SpeakerTurn]) -> SpeakerTurn | None:
    """The turn whose speaker talks most during [start, end]; None when nobody is near.

    Overlap is summed per speaker (one segment may span two turns of the same person); a
    segment that overlaps no turn takes the nearest one within NEAREST_TURN_S.
    """
    spoken: dict[str, float] = {}
    first: dict[str, SpeakerTurn] = {}
    for turn in turns:
        overlap = min(end, turn.end) - max(start, turn.start)
        if overlap > 0:
            spoken[turn.speaker] = spoken.get(turn.speaker, 0.0) + overlap
            first.setdefault(turn.speaker, turn)
    if spoken:
        best = max(spoken.items(), key=lambda item: item[1])[0]  # first of equals wins
        return first[best]
    nearest: tuple[float, SpeakerTurn] | None = None
    for turn in turns:
        gap = max(turn.start - end, start - turn.end, 0.0)
        if gap <= NEAREST_TURN_S and (nearest is None or gap < nearest[0]):
            nearest = (gap, turn)
    return nearest[1] if nearest else None


def merge_runs(pieces: Iterable[tuple[float, float, str]], max_gap: float = 0.0
               ) -> list[SpeakerTurn]:
    """Consecutive (start, end, speaker) pieces of one speaker, at most `max_gap` apart, as
    one turn each; input sorted by start."""
    turns: list[SpeakerTurn] = []
    for start, end, speaker in pieces:
        if end <= start:
            continue
        if turns and turns[-1].speaker == speaker and start - turns[-1].end <= max_gap:
            last = turns[-1]
            turns[-1] = SpeakerTurn(last.start, max(last.end, end), speaker)
        else:
            turns.append(SpeakerTurn(start, end, speaker))
    return turns
