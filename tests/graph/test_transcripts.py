"""Teams' speaker timeline through the real client and the emulator: the documented routes,
the metadataContent format, and 403/404 meaning "not available" rather than an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meeting_governance import speakers
from meeting_governance.errors import GraphError
from meeting_governance.graph.transcripts import speaker_timelines

from .emulator_scenario import MEETING_FULL, MEETING_MIXED, ORG_A, ORG_B, TEAMS_SAID, WINDOW

START = datetime(2026, 11, 2, 9, tzinfo=UTC)


def test_the_timeline_gives_who_spoke_when_and_the_parser_drops_the_words(emulator, client):
    bodies = speaker_timelines(client, ORG_A, MEETING_FULL, WINDOW)
    assert bodies is not None and len(bodies) == 1
    assert bodies[0].startswith("WEBVTT")  # as documented: text/vtt with JSON cue payloads
    paths = [r.path for r in emulator.requests.all()]
    assert any(p.endswith("/transcripts") for p in paths)
    assert any(p.endswith("/transcripts/tr-full/metadataContent") for p in paths)
    cues = speakers.parse_timeline(bodies[0], START)
    assert cues == [speakers.TimelineCue(1.5, 4.0, "Owner A"),
                    speakers.TimelineCue(4.0, 9.25, "M1")]
    assert TEAMS_SAID not in repr(cues)


def test_no_transcript_a_missing_permission_or_meeting_is_not_available(emulator, client):
    assert speaker_timelines(client, ORG_B, MEETING_MIXED, WINDOW) is None  # none recorded
    assert speaker_timelines(client, ORG_A, "MSo-nosuch==", WINDOW) is None  # 404
    emulator.faults.set(forbidden_count=1, match="/transcripts")
    assert speaker_timelines(client, ORG_A, MEETING_FULL, WINDOW) is None  # 403
    # Only transcripts of this recording's time count.
    later = (START + timedelta(days=1), START + timedelta(days=1, hours=1))
    assert speaker_timelines(client, ORG_A, MEETING_FULL, later) is None


def test_other_failures_are_graph_errors(emulator, make_client):
    client = make_client(max_retries=0)
    emulator.faults.set(unavailable_count=1, match="/transcripts")
    with pytest.raises(GraphError):
        speaker_timelines(client, ORG_A, MEETING_FULL, WINDOW)
