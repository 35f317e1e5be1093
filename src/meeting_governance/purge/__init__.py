"""The purge: crypto-shred every transcript whose retention ended, leave a tombstone, prove it.

Due = `retain_until <= as_of`, not purged, and no hold in force (transcript, person or meeting;
see `holds`). Each batch is one transaction that shreds the vault items (data key and
ciphertext), deletes the participant index, turns the row into a tombstone and writes one audit
entry per transcript, so a kill at any instant leaves each transcript either untouched or fully
purged, and the next run carries on. Recordings that never became transcripts lose their
metadata the same way (`purge_metadata`).

Then `epochs.settle` destroys the keys: every epoch that lost an item is rotated (survivors
re-wrapped under a new key, the old key destroyed) and every epoch whose period has ended is
retired (held or extended items re-wrapped where they now belong, the key destroyed). That is
what reaches backups, replicas, WAL and free pages: whatever bytes of a purged item remain
anywhere, the only key that could unwrap its data key is gone. Compaction (SQLite WAL
checkpoint and VACUUM) is still done, but the guarantee no longer depends on it; when it cannot
complete (a reader holds a transaction) the report and the receipt say so and the command
exits non-zero.

Finally an audit checkpoint is signed and a receipt written (`purge.evidence`): the
tombstones, the keys destroyed (ids and fingerprints) and the checkpoint. Only one purge runs
at a time (`locks.hold`).

One module per job: `selection` (what is due), `tombstones` (what a purged transcript leaves;
`dsr` erases through it too), `evidence` (receipt, compaction, staging), `lock`, and `run`
(the order of it all). Every public name is importable from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meeting_governance.lazy import exports

if TYPE_CHECKING:  # what mypy and readers see; at run time each module loads on first use
    from meeting_governance.purge.evidence import RECEIPT_ACTION, Compaction, clean_staging
    from meeting_governance.purge.lock import LOCK_NAME, LOCK_TTL, purge_lock
    from meeting_governance.purge.run import Progress, PurgeFailure, PurgeReport, purge
    from meeting_governance.purge.selection import MAX_BATCH, DueSummary, summarise
    from meeting_governance.purge.tombstones import PURGE_ACTION, tombstone

__all__ = ["LOCK_NAME", "LOCK_TTL", "MAX_BATCH", "PURGE_ACTION", "RECEIPT_ACTION", "Compaction",
           "DueSummary", "Progress", "PurgeFailure", "PurgeReport", "clean_staging",
           "purge", "purge_lock", "summarise", "tombstone"]

__getattr__, __dir__ = exports(__name__, __file__)
