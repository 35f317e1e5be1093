"""Every table, in one place. Alembic migrations (migrations/) create them; never `create_all`.

Privacy rule for this module: no column holds a transcript, an e-mail address, a display name
or a meeting subject in clear. Such values live in `vault_item` (sealed, one data key each) and
are referenced by id; identities are looked up through keyed hashes (`*_blind` columns).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from meeting_governance.dbtypes import UTCDateTime


def utcnow() -> datetime:
    return datetime.now(UTC)


class VaultItem(SQLModel, table=True):
    """One sealed value: AES-256-GCM ciphertext under its own data key, wrapped by the key of
    its epoch (`epoch_id`, see `epochs`), bound to the row and field that own it.

    Crypto-shredding sets `wrapped_key`, `nonce` and `ciphertext` to NULL and stamps
    `shredded_at`; the epoch key that wrapped it is then destroyed, which is what reaches the
    copies of the database that row deletion cannot. `kek_version` > 0 marks an item from
    before epoch keys (wrapped by a KEK version; `keys migrate` re-seals it).
    """

    __tablename__ = "vault_item"

    id: str = Field(primary_key=True, max_length=64)
    purpose: str = Field(max_length=40, index=True)
    kek_version: int = Field(default=0, index=True)
    epoch_id: str | None = Field(default=None, max_length=40, index=True)
    owner_table: str | None = Field(default=None, max_length=40)
    owner_id: str | None = Field(default=None, max_length=64)
    field: str | None = Field(default=None, max_length=40)
    wrapped_key: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    nonce: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    shredded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class KeyEpoch(SQLModel, table=True):
    """One epoch key: which epoch it serves, and whether it still exists.

    The key material is in the keyring (file or HSM), never here. `label` names the epoch
    (`retention:2026-03-02`, `metadata:…`, `hold`, `standing:optout`); a label has one active
    generation at a time, and a rotation or a retirement destroys the old one.
    """

    __tablename__ = "key_epoch"

    id: str = Field(primary_key=True, max_length=40)
    label: str = Field(max_length=80, index=True)
    kind: str = Field(max_length=20)
    generation: int = 1
    period_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    state: str = Field(default="active", max_length=12, index=True)  # active|closing|destroyed
    fingerprint: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    destroyed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    destroyed_reason: str = Field(default="", max_length=40)


class KekVersion(SQLModel, table=True):
    """KEK versions of databases from before epoch keys (kept for `keys migrate` and history)."""

    __tablename__ = "kek_version"

    version: int = Field(primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement of the audit chain head (also written outside the database)."""

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    head_seq: int
    head_hash: str = Field(max_length=64)
    line: str  # the signed canonical JSON, exactly as written to the checkpoint file


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained. `details` is canonical JSON with ids and blind values only."""

    __tablename__ = "audit_entry"

    seq: int = Field(primary_key=True)
    at: datetime = Field(sa_type=UTCDateTime)
    actor: str = Field(max_length=200)
    action: str = Field(max_length=80, index=True)
    target_type: str = Field(default="", max_length=40)
    target_id: str = Field(default="", max_length=200, index=True)
    details: str = Field(default="{}")
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """A single row holding the chain head: appenders lock it, so entries are never interleaved,
    and `audit verify` compares it with the last entry, so a deleted tail is detected too."""

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    hash: str = Field(default="0" * 64, max_length=64)


class Recording(SQLModel, table=True):
    """One Graph recording, idempotent on its Graph id, and where it stands in the pipeline."""

    __tablename__ = "recording"

    id: int | None = Field(default=None, primary_key=True)
    graph_recording_id: str = Field(max_length=1024, unique=True)
    meeting_id: str = Field(max_length=1024, index=True)
    organizer_id: str = Field(max_length=64, index=True)
    call_id: str | None = Field(default=None, max_length=200)
    recorded_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The recording's own end (`callRecording.endDateTime`): with `recorded_at`, the window an
    # attendance report must overlap to count (a recurring meeting has one report per occurrence).
    recording_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    meeting_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    meeting_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    subject_item: str | None = Field(default=None, max_length=64)  # vault_item id
    state: str = Field(default="discovered", max_length=20, index=True)
    reason: str = Field(default="", max_length=500)
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    first_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    media_sha256: str | None = Field(default=None, max_length=64)
    media_bytes: int | None = None


class RecordingParticipant(SQLModel, table=True):
    """Blind-index values of a recording's participants (no address in clear)."""

    __tablename__ = "recording_participant"
    __table_args__ = (UniqueConstraint("recording_id", "blind"),)

    id: int | None = Field(default=None, primary_key=True)
    recording_id: int = Field(foreign_key="recording.id", index=True)
    blind: str = Field(max_length=64, index=True)


class Transcript(SQLModel, table=True):
    """A stored transcript's metadata; after purge the same row is the tombstone."""

    __tablename__ = "transcript"
    # The purge reads "unpurged, due by date" in retain_until order straight off this index,
    # without rescanning the ever-growing tombstones (purged_at set) or sorting.
    __table_args__ = (Index("ix_transcript_due", "purged_at", "retain_until"),)

    id: str = Field(primary_key=True, max_length=40)
    recording_id: int | None = Field(default=None, foreign_key="recording.id", index=True)
    meeting_id: str = Field(default="", max_length=1024, index=True)
    organizer_id: str = Field(default="", max_length=64, index=True)
    meeting_start: datetime | None = Field(default=None, sa_type=UTCDateTime)
    meeting_end: datetime | None = Field(default=None, sa_type=UTCDateTime)
    duration_s: float = 0.0
    language: str = Field(default="", max_length=16)
    model: str = Field(default="", max_length=200)
    version: int = 1
    content_item: str | None = Field(default=None, max_length=64)       # segments JSON
    participants_item: str | None = Field(default=None, max_length=64)  # names + addresses JSON
    subject_item: str | None = Field(default=None, max_length=64)
    retention_policy: str = Field(default="", max_length=100)
    retain_until: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    legal_hold: bool = Field(default=False, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    purged_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    purge_reason: str = Field(default="", max_length=40)


class TranscriptParticipant(SQLModel, table=True):
    """Blind-index values of the people in a transcript's meeting, for access and erasure."""

    __tablename__ = "transcript_participant"
    __table_args__ = (UniqueConstraint("transcript_id", "blind"),)

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True, max_length=40)
    blind: str = Field(max_length=64, index=True)


class OptOut(SQLModel, table=True):
    """A person's "do not record / transcribe me". Revoked rows stay, for the history."""

    __tablename__ = "optout"

    id: str = Field(primary_key=True, max_length=40)
    email_blind: str | None = Field(default=None, max_length=64, index=True)
    object_id_blind: str | None = Field(default=None, max_length=64, index=True)
    name_blind: str | None = Field(default=None, max_length=64, index=True)  # for search only
    identity_item: str | None = Field(default=None, max_length=64)  # sealed {name, email, oid}
    scope: str = Field(default="all", max_length=10)  # all | meeting | range
    meeting_key: str | None = Field(default=None, max_length=64, index=True)  # blind of meeting
    valid_from: datetime | None = Field(default=None, sa_type=UTCDateTime)
    valid_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    covers_recording: bool = True
    covers_transcription: bool = True
    note_item: str | None = Field(default=None, max_length=64)
    created_by: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    revoked_by: str | None = Field(default=None, max_length=200)
    revoke_reason_item: str | None = Field(default=None, max_length=64)
    # The directory's answer for the identity registered: pending (not asked yet), found,
    # not_found (matched by the registered identifier only), ambiguous (several accounts).
    resolution: str = Field(default="pending", max_length=20)
    resolved_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)


class OptOutIdentifier(SQLModel, table=True):
    """Every identifier an opt-out matches, as blind-index values: the one registered and those
    the directory resolved it to (object id, mail, UPN, aliases, other mails, a guest's own
    address). Rows are only ever added: a person losing an alias never loses their opt-out."""

    __tablename__ = "optout_identifier"
    __table_args__ = (UniqueConstraint("optout_id", "blind"),)

    id: int | None = Field(default=None, primary_key=True)
    optout_id: str = Field(foreign_key="optout.id", index=True, max_length=40)
    blind: str = Field(max_length=64, index=True)
    source: str = Field(default="registered", max_length=12)  # registered | directory
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class IdentityCache(SQLModel, table=True):
    """The directory's answer for one looked-up identifier (object id or address, as a blind
    value): the blind values of every identifier of the account(s) it reaches. Refreshed when
    older than `directory.max_age_hours`; only answers that found someone are kept."""

    __tablename__ = "identity_cache"

    key_blind: str = Field(primary_key=True, max_length=64)
    identifiers: str = Field(sa_column=Column(Text, nullable=False))  # blind values, spaced
    resolved_at: datetime = Field(index=True, sa_type=UTCDateTime)


class RegistryState(SQLModel, table=True):
    """One row whose version every opt-out change bumps: storing a transcript reads it
    `FOR SHARE` (PostgreSQL), so a registration and a store never interleave."""

    __tablename__ = "registry_state"

    id: int = Field(default=1, primary_key=True)
    version: int = 0
    updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Hold(SQLModel, table=True):
    """A legal hold on a transcript, a person (blind) or a meeting."""

    __tablename__ = "legal_hold"

    id: str = Field(primary_key=True, max_length=40)
    transcript_id: str | None = Field(default=None, max_length=40, index=True)
    person_blind: str | None = Field(default=None, max_length=64, index=True)
    meeting_id: str | None = Field(default=None, max_length=1024, index=True)
    reason_item: str | None = Field(default=None, max_length=64)
    set_by: str = Field(default="", max_length=200)
    set_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    released_at: datetime | None = Field(default=None, index=True, sa_type=UTCDateTime)
    released_by: str | None = Field(default=None, max_length=200)
    release_reason_item: str | None = Field(default=None, max_length=64)


class HoldIdentifier(SQLModel, table=True):
    """Every identifier of the person a person hold names (blind values), so the hold covers
    transcripts that know them by another address or only by object id."""

    __tablename__ = "hold_identifier"
    __table_args__ = (UniqueConstraint("hold_id", "blind"),)

    id: int | None = Field(default=None, primary_key=True)
    hold_id: str = Field(foreign_key="legal_hold.id", index=True, max_length=40)
    blind: str = Field(max_length=64, index=True)


class DeltaLink(SQLModel, table=True):
    """The last `@odata.deltaLink` per organiser, so each poll asks only for what is new."""

    __tablename__ = "delta_link"

    organizer_id: str = Field(primary_key=True, max_length=64)
    link: str = Field(max_length=8000)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # What built the link (`recordings.link_fingerprint`); another value means another
    # configuration built it, and it is not replayed. NULL: stored before this was recorded.
    fingerprint: str | None = Field(default=None, max_length=40)


class User(SQLModel, table=True):
    """A local account of the web app (argon2id hash), or an Entra user seen at sign-in."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    role: str = Field(max_length=20)  # coordinator | dpo | admin
    password_hash: str | None = Field(default=None, max_length=400)
    source: str = Field(default="local", max_length=10)  # local | entra
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DsrRequest(SQLModel, table=True):
    """A data-subject request: reference, dates and status (the subject only as a blind value)."""

    __tablename__ = "dsr_request"

    reference: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=20)  # access | erasure | rectification | withdrawal
    subject_blind: str = Field(max_length=64, index=True)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    due_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="open", max_length=20, index=True)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    handled_by: str = Field(default="", max_length=200)


class PurgeReceipt(SQLModel, table=True):
    """Where each signed purge receipt went, and its digest."""

    __tablename__ = "purge_receipt"

    id: str = Field(primary_key=True, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    path: str = Field(max_length=1000)
    sha256: str = Field(max_length=64)
    purged_count: int = 0


class ServiceLock(SQLModel, table=True):
    """Named leases for things only one process may do (the SQLite daemon, the poller, the purge)."""

    __tablename__ = "service_lock"

    name: str = Field(primary_key=True, max_length=80)
    owner: str = Field(max_length=200)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class WebSession(SQLModel, table=True):
    """A signed-in browser session of the web app, shared by every `serve` process.

    The browser's cookie holds a random token; only its SHA-256 is stored here, so a copy of
    the database cannot be replayed as a cookie. Nothing personal: the user is a row id, and
    the display name from Entra ID is sealed under a key derived from the cookie token
    (unreadable without the browser's cookie). Deleting the row ends the session everywhere.
    """

    __tablename__ = "web_session"

    id: str = Field(primary_key=True, max_length=64)  # sha256 hex of the cookie token
    user_id: int = Field(foreign_key="app_user.id", index=True)
    method: str = Field(default="local", max_length=10)  # local | entra
    display_sealed: bytes | None = Field(default=None,
                                         sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(index=True, sa_type=UTCDateTime)  # absolute: never extended


class LoginAttempt(SQLModel, table=True):
    """One sign-in attempt counted against one throttle key (a user name or a client address).

    `key` is a keyed hash: neither the name typed (which may be someone's e-mail address) nor
    the client address is stored. An attempt is `pending` while its password is checked, and
    counts against the limit from the moment it is reserved.
    """

    __tablename__ = "login_attempt"
    __table_args__ = (Index("ix_login_attempt_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64)
    attempt: str = Field(max_length=32, index=True)  # the two rows of one attempt share it
    at: datetime = Field(index=True, sa_type=UTCDateTime)
    outcome: str = Field(default="pending", max_length=10)  # pending | failed


class JobRun(SQLModel, table=True):
    """How each scheduled job last went, shared by every daemon process and host: what
    `/healthz` and the last-success metric read. The error is a cause safe to show (a
    configuration key, a Graph code, a status; addresses masked), never personal data."""

    __tablename__ = "job_run"

    job: str = Field(primary_key=True, max_length=40)
    last_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_failure_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_cause: str = Field(default="", max_length=40)
    last_error: str = Field(default="", max_length=500)
    failures: int = 0  # in a row, since the last success
    worker: str = Field(default="", max_length=200)


class SpeakerLink(SQLModel, table=True):
    """A speaker label of one transcript version named as a person, with the evidence.

    No name or address: the person is the blind value of their object id (or address when that
    is all that is known), plus every other identifier's blind value, so a data-subject request
    under any of them finds the link. The name is read at display time from the transcript's
    sealed participant list. `method` is how the label was named (`attendance`,
    `teams_timeline`, `dpo`); `evidence` says why, in times and counts only.
    """

    __tablename__ = "speaker_link"
    __table_args__ = (UniqueConstraint("transcript_id", "label"),)

    id: int | None = Field(default=None, primary_key=True)
    transcript_id: str = Field(foreign_key="transcript.id", index=True, max_length=40)
    version: int = 1  # the transcript version the label was named on
    label: str = Field(max_length=40)  # "Speaker 2", as diarization gave it
    person_blind: str = Field(max_length=64, index=True)
    identifiers: str = Field(default="", sa_column=Column(Text, nullable=False,
                                                           server_default=""))
    method: str = Field(max_length=16)  # attendance | teams_timeline | dpo
    evidence: str = Field(default="", max_length=300)  # times and counts, never a name
    assigned_by: str | None = Field(default=None, max_length=200)  # the DPO, for `dpo`
    assigned_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DsrDecision(SQLModel, table=True):
    """A DPO's choice for one request: the full transcript instead of the person's own turns.

    The reason is sealed (it may name people) in the standing `dsr_decision` epoch."""

    __tablename__ = "dsr_decision"

    id: str = Field(primary_key=True, max_length=40)
    reference: str = Field(foreign_key="dsr_request.reference", index=True, max_length=40)
    full_transcript: bool = False
    reason_item: str | None = Field(default=None, max_length=64)
    decided_by: str = Field(default="", max_length=200)
    decided_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
