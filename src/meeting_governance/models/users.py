"""Local web accounts, their sessions and sign-in throttling (`users`, `web`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from meeting_governance.dbtypes import UTCDateTime
from meeting_governance.models.base import utcnow


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
