"""Microsoft Graph: the app-only client, discovery, participants, directory, transcripts, download.

The pipeline calls only these names; the database and the gate live elsewhere.
"""

from meeting_governance.graph.client import GraphClient, Pages, odata_string, quote_segment
from meeting_governance.graph.download import DownloadResult, download_recording
from meeting_governance.graph.participants import MeetingInfo, resolve_participants
from meeting_governance.graph.recordings import (
    Discovery,
    RecordingRef,
    discover,
    group_organizers,
)

__all__ = [
    "Discovery",
    "DownloadResult",
    "GraphClient",
    "MeetingInfo",
    "Pages",
    "RecordingRef",
    "discover",
    "download_recording",
    "group_organizers",
    "odata_string",
    "quote_segment",
    "resolve_participants",
]
