"""What the service itself keeps: purge receipts, locks and leases, job runs."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from meeting_governance.dbtypes import UTCDateTime
from meeting_governance.models.base import utcnow


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
