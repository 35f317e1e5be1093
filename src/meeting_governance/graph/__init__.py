"""Microsoft Graph: the app-only client, discovery, participants, directory, transcripts, download.

The pipeline calls only these names; the database and the gate live elsewhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meeting_governance.lazy import exports

if TYPE_CHECKING:  # what mypy and readers see; at run time each module loads on first use
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

__getattr__, __dir__ = exports(__name__, __file__)
