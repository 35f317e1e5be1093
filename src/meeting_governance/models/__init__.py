"""Every table, in one place. Alembic migrations (migrations/) create them; never `create_all`.

Privacy rule for this module: no column holds a transcript, an e-mail address, a display name
or a meeting subject in clear. Such values live in `vault_item` (sealed, one data key each) and
are referenced by id; identities are looked up through keyed hashes (`*_blind` columns).

One module per part of the product (`vault`, `audit`, `recordings`, `optouts`, `holds`, `users`,
`dsr`, `operations`); every table is importable from here, and a module is loaded the first time
one of its tables is named (`lazy.exports`), so a command builds only the tables it touches —
building all 26 SQLModel classes costs a CLI command about 0.06 s (bench/cli.py). Foreign keys
stay within a module, so a loaded table never names one that is not. `load_all()` is for what
needs the whole schema (Alembic, the schema tests).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from meeting_governance.lazy import exports

if TYPE_CHECKING:  # what mypy and readers see; at run time each module loads on first use
    from meeting_governance.models.audit import AuditCheckpoint, AuditEntry, AuditHead
    from meeting_governance.models.base import utcnow
    from meeting_governance.models.dsr import DsrDecision, DsrRequest
    from meeting_governance.models.holds import Hold, HoldIdentifier
    from meeting_governance.models.operations import JobRun, PurgeReceipt, ServiceLock
    from meeting_governance.models.optouts import (
        IdentityCache,
        OptOut,
        OptOutIdentifier,
        RegistryState,
    )
    from meeting_governance.models.recordings import (
        DeltaLink,
        Recording,
        RecordingParticipant,
        SpeakerLink,
        Transcript,
        TranscriptParticipant,
    )
    from meeting_governance.models.users import LoginAttempt, User, WebSession
    from meeting_governance.models.vault import KekVersion, KeyEpoch, VaultItem

MODULES = ("vault", "audit", "recordings", "optouts", "holds", "users", "dsr", "operations")

__all__ = ["AuditCheckpoint", "AuditEntry", "AuditHead", "DeltaLink", "DsrDecision",
           "DsrRequest", "Hold", "HoldIdentifier", "IdentityCache", "JobRun", "KekVersion",
           "KeyEpoch", "LoginAttempt", "OptOut", "OptOutIdentifier", "PurgeReceipt", "Recording",
           "RecordingParticipant", "RegistryState", "ServiceLock", "SpeakerLink", "Transcript",
           "TranscriptParticipant", "User", "VaultItem", "WebSession", "utcnow"]


def load_all() -> None:
    """Define every table (Alembic's autogenerate and the schema tests compare all of them)."""
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}")


__getattr__, __dir__ = exports(__name__, __file__)
