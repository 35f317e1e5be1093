"""The opt-out registry: who asked not to be recorded or transcribed, and the gate's `matching`.

Routes and CLI stay thin over these functions. No personal value reaches a column in clear:
e-mail, object id and name are stored as blind-index values (to find and match) plus one sealed
JSON copy for display; the meeting reference as entered, the note and the revoke reason are
sealed too. Audit entries carry the opt-out id and blind values only.

Matching is by every identifier of a person — Entra object id, mail, UPN, aliases, other
mails, a guest's own address (`optout_identifier`, filled from the directory by
`optout_identities`) — never by display name (anyone can be called "Alex Smith"), with indexed
`IN (…)` queries over the participants' blind values. Every change bumps the registry version
(`optout_identities.bump_registry`), which the store of a transcript waits on.

One module per job, every public name importable from here as before:

- `validation`: `OptOutRequest` as typed, `validate` / `check` field by field, `parse_when`;
- `views`: `OptOutView`, the one record the CLI, the web API and the pages show (`to_json`);
- `registry`: add, revoke, get, list, history (sealed, audited, versioned);
- `csv_import`: a CSV validated whole, then stored all or nothing;
- `matching`: the gate's query (`matching`, `matching_rows`) and its pure rule (`applies`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meeting_governance.lazy import exports

if TYPE_CHECKING:  # what mypy and readers see; at run time each module loads on first use
    from meeting_governance.meetingref import meeting_keys, normalise_meeting_ref
    from meeting_governance.optouts.csv_import import (
        MAX_CSV_BYTES,
        MAX_CSV_ROWS,
        CsvImportError,
        RowProblem,
        import_csv,
        parse_csv,
    )
    from meeting_governance.optouts.matching import (
        MeetingRef,
        applies,
        identity_query,
        matching,
        matching_rows,
    )
    from meeting_governance.optouts.registry import (
        add_optout,
        get_optout,
        history,
        list_optouts,
        revoke_optout,
    )
    from meeting_governance.optouts.validation import (
        COVERS,
        MAX_NAME,
        MAX_NOTE,
        MAX_REASON,
        PURPOSES,
        FieldError,
        OptOutRequest,
        blind_name,
        check,
        cleaned_identity,
        normalise_name,
        parse_when,
        validate,
    )
    from meeting_governance.optouts.views import EPOCH, IN_CHUNK, OptOutView

__all__ = [
    "COVERS", "EPOCH", "IN_CHUNK", "MAX_CSV_BYTES", "MAX_CSV_ROWS", "MAX_NAME", "MAX_NOTE",
    "MAX_REASON", "PURPOSES", "CsvImportError", "FieldError", "MeetingRef", "OptOutRequest",
    "OptOutView", "RowProblem", "add_optout", "applies", "blind_name", "check",
    "cleaned_identity", "get_optout", "history", "identity_query", "import_csv",
    "list_optouts", "matching", "matching_rows", "meeting_keys", "normalise_meeting_ref",
    "normalise_name", "parse_csv", "parse_when", "revoke_optout", "validate",
]

__getattr__, __dir__ = exports(__name__, __file__)
