"""Turns and the speaker of a segment: pure functions, checked against their definitions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.diarization.turns import (
    NEAREST_TURN_S,
    SpeakerTurn,
    merge_runs,
    speaker_for,
    speaker_label,
)

TURNS = (SpeakerTurn(0.0, 4.0, "Speaker 1"), SpeakerTurn(4.0, 5.0, "Speaker 2"),
         SpeakerTurn(6.0, 7.0, "Speaker 1"), SpeakerTurn(12.0, 14.0, "Speaker 3"))


def test_most_spoken_wins_and_a_speakers_turns_add_up() -> None:
    assert speaker_for(0.5, 3.0, TURNS).speaker == "Speaker 1"  # type: ignore[union-attr]
    assert speaker_for(3.8, 5.0, TURNS).speaker == "Speaker 2"  # type: ignore[union-attr]
    # 0.6 s of Speaker 2, but 0.5 + 0.5 s of Speaker 1 on either side of it.
    assert speaker_for(3.5, 6.5, TURNS).speaker == "Speaker 1"  # type: ignore[union-attr]


def test_a_segment_between_turns_takes_a_near_one_only() -> None:
    assert speaker_for(7.5, 8.0, TURNS).speaker == "Speaker 1"  # type: ignore[union-attr]
    assert speaker_for(9.0, 10.0, TURNS) is None  # 2 s from anyone: not attributed
    assert speaker_for(1.0, 2.0, ()) is None


turn_lists = st.lists(st.tuples(st.floats(0, 100), st.floats(0.01, 10), st.integers(0, 3)),
                      max_size=12).map(lambda items: tuple(
    SpeakerTurn(round(a, 3), round(a + d, 3), speaker_label(s)) for a, d, s in items))


@given(turn_lists, st.floats(0, 100), st.floats(0, 10))
def test_the_answer_is_a_speaker_with_the_most_overlap(turns: tuple[SpeakerTurn, ...],
                                                       start: float, length: float) -> None:
    end = start + length
    found = speaker_for(start, end, turns)
    spoken: dict[str, float] = {}
    for turn in turns:
        spoken[turn.speaker] = spoken.get(turn.speaker, 0.0) + max(
            0.0, min(end, turn.end) - max(start, turn.start))
    if any(v > 0 for v in spoken.values()):
        assert found is not None and spoken[found.speaker] == max(spoken.values())
    elif found is not None:
        assert max(found.start - end, start - found.end, 0.0) <= NEAREST_TURN_S


def test_runs_of_one_speaker_merge_across_small_gaps_only() -> None:
    runs = merge_runs([(0, 1, "A"), (1, 2, "A"), (2.5, 3, "A"), (3, 4, "B"), (4, 4, "B")],
                      max_gap=0.2)
    assert [(t.start, t.end, t.speaker) for t in runs] == [(0, 2, "A"), (2.5, 3, "A"), (3, 4, "B")]
    assert speaker_label(0) == "Speaker 1"
