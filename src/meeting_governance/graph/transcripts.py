"""Teams' own speaker timeline: `callTranscript` `metadataContent`, where the tenant has
meeting transcription on (permission `OnlineMeetingTranscript.Read.All`).

`GET /users/{organizer}/onlineMeetings/{meeting}/transcripts` lists the meeting's transcripts
(`createdDateTime`, `endDateTime`); `GET .../transcripts/{id}/metadataContent` is WebVTT whose
cue payloads are JSON objects with the speaker's name, the times and the spoken text. Only who
spoke when is used (`speakers.parse_timeline` drops the text at once): the body is never
stored or logged. No transcript, or a 403 (permission not granted, transcription off) or 404,
means "not available": naming then uses the other evidence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from meeting_governance.errors import GraphError
from meeting_governance.graph.client import GraphClient, quote_segment
from meeting_governance.graph.recordings import parse_graph_datetime

log = logging.getLogger(__name__)
NOT_AVAILABLE = (403, 404)


def _overlaps(item: dict[str, object], window: Sequence[datetime | None]) -> bool:
    times = [t for t in window if t is not None]
    if len(times) != 2:
        return True  # a recording we cannot place: every transcript of the meeting
    start = parse_graph_datetime(item.get("createdDateTime"))
    end = parse_graph_datetime(item.get("endDateTime"))
    if start is None or end is None:
        return False
    return start <= max(times) and end >= min(times)


def speaker_timelines(client: GraphClient, organizer_id: str, meeting_id: str,
                      window: Sequence[datetime | None]) -> list[str] | None:
    """The `metadataContent` bodies of the meeting's transcripts that overlap the recording's
    `window`, or None when Teams has none for us (403/404: not an error)."""
    base = client.url("users", organizer_id, "onlineMeetings", meeting_id, "transcripts")
    try:
        items, _ = client.get_all(base, kind="transcripts")
        bodies = []
        for item in items:
            tid = item.get("id")
            if not isinstance(tid, str) or not tid or not _overlaps(item, window):
                continue
            response = client.request("GET", f"{base}/{quote_segment(tid)}/metadataContent",
                                      kind="transcript_metadata",
                                      headers={"Accept": "text/vtt"})
            try:
                bodies.append(response.content.decode("utf-8", errors="replace"))
            finally:
                response.close()
    except GraphError as exc:
        if exc.status in NOT_AVAILABLE:
            log.info("Teams speaker timeline not available",
                     extra={"status": exc.status, "code": exc.code})
            return None
        raise
    return bodies or None


__all__ = ["speaker_timelines"]
