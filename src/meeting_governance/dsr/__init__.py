"""Data-subject requests: the request log, access (export), erasure, redaction and withdrawal.

One package along its seams (issue 15): `requests` (the log, who a request is about, finding
what is held), `export` (access), `erasure` (crypto-shredding and withdrawal of consent),
`redaction` (one person's turns out of transcripts). The public names are re-exported here, so
`from meeting_governance.dsr import export_person` keeps working. Rectification lives in
`rectify`, anonymised statistics in `stats`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meeting_governance.lazy import exports

if TYPE_CHECKING:  # what mypy and readers see; at run time each module loads on first use
    from meeting_governance.dsr.erasure import (
        ERASURE_REASON,
        HELD_NOTE,
        OPTOUTS_KEPT_NOTE,
        ErasureReport,
        HeldTranscript,
        HoldReason,
        WithdrawalReport,
        erase_person,
        withdraw_consent,
    )
    from meeting_governance.dsr.export import ExportReport, _recordings_without_transcript, export_person
    from meeting_governance.dsr.redaction import Redacted, RedactionReport, redact_person
    from meeting_governance.dsr.requests import (
        KINDS,
        STATUSES,
        DecisionView,
        PersonSummary,
        RequestView,
        Subject,
        _blinds,
        _complete,
        _held_ids,
        _live_transcripts,
        _optouts_of,
        _request_for,
        check_reference,
        close_request,
        decisions,
        find_person,
        list_requests,
        open_request,
        subject,
        subject_blind,
    )

__all__ = [
    "ERASURE_REASON",
    "HELD_NOTE",
    "KINDS",
    "OPTOUTS_KEPT_NOTE",
    "STATUSES",
    "DecisionView",
    "ErasureReport",
    "ExportReport",
    "HeldTranscript",
    "HoldReason",
    "PersonSummary",
    "Redacted",
    "RedactionReport",
    "RequestView",
    "Subject",
    "WithdrawalReport",
    "_blinds",
    "_complete",
    "_held_ids",
    "_live_transcripts",
    "_optouts_of",
    "_recordings_without_transcript",
    "_request_for",
    "check_reference",
    "close_request",
    "decisions",
    "erase_person",
    "export_person",
    "find_person",
    "list_requests",
    "open_request",
    "redact_person",
    "subject",
    "subject_blind",
    "withdraw_consent",
]

__getattr__, __dir__ = exports(__name__, __file__)
