"""One recording through every state, top to bottom: discover → resolve participants → decide →
download → (decide again) → transcribe → (check once more, inside the store's transaction) →
encrypt and store.

Who was there is read again for every decision: the meeting and this recording's attendance
from Graph, every identifier of each person from the directory (`people`). The last check runs
in the transaction that stores the transcript, after waiting on the registry version
(`optout_identities.lock_registry`): an opt-out registered at any moment before the store wins.

Each step is a function; each state change is one transaction with its audit entry, so after a
crash every recording resumes from its last durable state. Work is claimed with a lease
(`FOR UPDATE SKIP LOCKED` on PostgreSQL) that the holder renews while it works; an expired lease
hands the item to another worker, and the store step only commits for the lease holder, so a
recording is never transcribed into two transcripts.

One package along its seams (issue 15), each module importing only those before it:
`discovery` (poll, delta links, organisers), `claiming` (leases through `locks`, the next
items, the lease-holder check), `storing` (the last check and the sealed transcript) and
`processing` (gates, download, transcription, failures and the worker loop). The public names
are re-exported here, so `from meeting_governance.pipeline import process` keeps working.
Importing the package loads the model's code (`transcribe`, numpy), as the single module did:
the CLI imports it only inside the commands that run the pipeline.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meeting_governance.lazy import exports

if TYPE_CHECKING:  # what mypy and readers see; at run time each module loads on first use
    from meeting_governance.pipeline.claiming import (
        LeaseKeeper,
        Outcome,
        ProcessReport,
        claim,
        release,
        renew_lease,
    )
    from meeting_governance.pipeline.discovery import MAX_ID, PollReport, _store_discovery, poll
    from meeting_governance.pipeline.processing import (
        Reporter,
        Services,
        SilentReporter,
        process,
        process_one,
    )

__all__ = ["MAX_ID", "LeaseKeeper", "Outcome", "PollReport", "ProcessReport", "Reporter",
           "Services", "SilentReporter", "_store_discovery", "claim", "poll", "process",
           "process_one", "release", "renew_lease"]

__getattr__, __dir__ = exports(__name__, __file__)
