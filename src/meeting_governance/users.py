"""Local accounts of the web app: argon2id password hashes, three roles, disable instead of delete.

Accounts signed in through Entra ID get a row too (`source="entra"`, no password), named by their
object id, so an address never sits in clear in the `app_user` table.
Disabled rows stay, so the audit log's actors keep meaning something. An account's web sessions
(`web_session`) end with `disable_user` and `revoke_sessions`, in the same transaction.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete
from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.errors import InputError, NotFoundError
from meeting_governance.models import User, WebSession

ROLES: tuple[str, ...] = ("coordinator", "dpo", "admin")
MIN_PASSWORD_LENGTH = 12
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# argon2-cffi's defaults are RFC 9106's low-memory recommendation for argon2id.
_hasher = PasswordHasher()


@functools.cache
def dummy_hash() -> str:
    """Verified against when the user name is unknown, so a miss costs as long as a hit.

    Made on first use, not at import: hashing is slow by design (about 0.1 s here), and
    `users list` or `--help` need none. The web app makes it as it starts (`create_app`), so
    its first miss is no slower than the rest."""
    return _hasher.hash("not a password of anyone")


@dataclass(frozen=True, slots=True)
class UserView:
    """An account as callers see it: never the hash."""

    id: int
    name: str
    role: str
    source: str
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None

    @staticmethod
    def of(user: User) -> UserView:
        assert user.id is not None
        return UserView(id=user.id, name=user.name, role=user.role, source=user.source,
                        created_at=user.created_at, disabled_at=user.disabled_at)


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}: allowed roles are {', '.join(ROLES)}")
    return role


def validate_name(name: str) -> str:
    name = name.strip()
    if not _NAME_RE.match(name):
        raise InputError("a user name is 1–64 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return name


def check_password_strength(password: str, name: str) -> None:
    """Length matters most (NIST SP 800-63B); also refuse the user's own name and one repeated
    character."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InputError(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise InputError("the password is too long: use at most 1024 characters")
    if name.casefold() in password.casefold() or len(set(password)) < 4:
        raise InputError("the password is too easy to guess: do not use the user name "
                         "or a repeated character")


def _get(session: Session, name: str) -> User | None:
    return session.exec(select(User).where(User.name == name)).first()


def add_user(app: AppContext, session: Session, name: str, role: str, password: str, *,
             actor: str | None = None) -> UserView:
    """Create a local account; InputError on a bad name or role, a taken name or a weak password."""
    name = validate_name(name)
    validate_role(role)
    check_password_strength(password, name)
    if _get(session, name) is not None:
        raise InputError(f"a user named {name!r} already exists")
    user = User(name=name, role=role, password_hash=_hasher.hash(password), source="local",
                created_at=app.clock.now())
    session.add(user)
    session.flush()
    assert user.id is not None
    app.audit(session, "user.add", target_type="user", target_id=str(user.id), actor=actor,
              role=role, source="local")
    return UserView.of(user)


def authenticate(app: AppContext, name: str, password: str) -> UserView | None:
    """The account if the name and password match an enabled local account, else None.

    Always runs one argon2 verification, so timing does not tell which names exist. The
    verification (slow by design) runs outside any transaction: it never holds a database lock
    that other sign-ins, pages or commands would wait for.
    """
    name = name.strip()
    with app.session() as session:
        user = _get(session, name) if name else None
        stored = user.password_hash if user is not None and user.source == "local" else None
        user_id = user.id if user is not None else None
    try:
        _hasher.verify(stored or dummy_hash(), password)
    except (VerificationError, InvalidHashError):
        return None
    if stored is None or user_id is None:
        return None
    with app.session() as session:
        current = session.get(User, user_id)
        # Re-read: the account may have been disabled or its password changed meanwhile.
        if current is None or current.disabled_at is not None or current.password_hash != stored:
            return None
        if _hasher.check_needs_rehash(stored):
            current.password_hash = _hasher.hash(password)
            session.add(current)
        return UserView.of(current)


def get_user(session: Session, user_id: int) -> UserView | None:
    user = session.get(User, user_id)
    return UserView.of(user) if user is not None else None


def list_users(session: Session, *, include_disabled: bool = True) -> list[UserView]:
    query = select(User)
    if not include_disabled:
        query = query.where(col(User.disabled_at).is_(None))
    return [UserView.of(u) for u in session.exec(query.order_by(col(User.name))).all()]


def disable_user(app: AppContext, session: Session, name: str, *,
                 actor: str | None = None) -> UserView:
    """Disable an account (idempotent); its sessions end at once, in every `serve` process."""
    user = _get(session, name)
    if user is None:
        raise NotFoundError(f"no user named {name!r} (see `meeting-governance users list`)")
    if user.disabled_at is None:
        user.disabled_at = app.clock.now()
        session.add(user)
        session.flush()
        assert user.id is not None
        ended = _end_sessions(session, user.id)
        app.audit(session, "user.disable", target_type="user", target_id=str(user.id), actor=actor,
                  sessions_ended=ended)
    return UserView.of(user)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A signed-in session as an operator sees it (no token, nothing to replay)."""

    ref: str  # the first characters of the stored hash: enough to tell sessions apart
    method: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def _end_sessions(session: Session, user_id: int) -> int:
    result = session.exec(delete(WebSession).where(col(WebSession.user_id) == user_id))
    return int(result.rowcount or 0)


def list_sessions(session: Session, name: str) -> list[SessionInfo]:
    """The account's signed-in sessions (expired ones that were not swept yet included)."""
    user = _get(session, name)
    if user is None:
        raise NotFoundError(f"no user named {name!r} (see `meeting-governance users list`)")
    rows = session.exec(select(WebSession).where(WebSession.user_id == user.id)
                        .order_by(col(WebSession.created_at))).all()
    return [SessionInfo(ref=r.id[:12], method=r.method, created_at=r.created_at,
                        last_seen_at=r.last_seen_at, expires_at=r.expires_at) for r in rows]


def revoke_sessions(app: AppContext, session: Session, name: str, *,
                    actor: str | None = None) -> int:
    """End every session of the account now (a lost laptop, a shared computer); the account
    stays enabled and can sign in again. Returns how many sessions ended."""
    user = _get(session, name)
    if user is None:
        raise NotFoundError(f"no user named {name!r} (see `meeting-governance users list`)")
    assert user.id is not None
    ended = _end_sessions(session, user.id)
    app.audit(session, "user.sessions_revoke", target_type="user", target_id=str(user.id),
              actor=actor, sessions_ended=ended)
    return ended


def upsert_entra_user(app: AppContext, session: Session, object_id: str, role: str) -> UserView:
    """The row of an Entra ID user at sign-in: created on first sign-in, role kept in step with
    the token's claims. A disabled row stays disabled (an admin's decision beats the token)."""
    validate_role(role)
    name = f"entra:{object_id}"
    user = _get(session, name)
    if user is None:
        user = User(name=name, role=role, password_hash=None, source="entra",
                    created_at=app.clock.now())
        session.add(user)
        session.flush()
        app.audit(session, "user.add", target_type="user", target_id=str(user.id), actor=name,
                  role=role, source="entra")
    elif user.role != role:
        user.role = role
        session.add(user)
        session.flush()
        app.audit(session, "user.role", target_type="user", target_id=str(user.id), actor=name,
                  role=role, source="entra")
    return UserView.of(user)
