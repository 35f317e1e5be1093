"""Local accounts of the web app: argon2id password hashes, three roles, disable instead of delete.

Accounts signed in through Entra ID get a row too (`source="entra"`, no password), named by their
object id, so an address never sits in clear in the `app_user` table.
Disabled rows stay, so the audit log's actors keep meaning something.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.errors import InputError, NotFoundError
from meeting_governance.models import User

ROLES: tuple[str, ...] = ("coordinator", "dpo", "admin")
MIN_PASSWORD_LENGTH = 12
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# argon2-cffi's defaults are RFC 9106's low-memory recommendation for argon2id.
_hasher = PasswordHasher()
# Verified against when the user name is unknown, so a miss costs as long as a hit.
_DUMMY_HASH = _hasher.hash("not a password of anyone")


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


def authenticate(app: AppContext, session: Session, name: str, password: str) -> UserView | None:
    """The account if the name and password match an enabled local account, else None.

    Always runs one argon2 verification, so timing does not tell which names exist.
    """
    user = _get(session, name.strip()) if name.strip() else None
    stored = user.password_hash if user is not None and user.source == "local" else None
    try:
        _hasher.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or stored is None or user.disabled_at is not None:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
        session.add(user)
    return UserView.of(user)


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
    """Disable an account (idempotent); its sessions stop working at their next request."""
    user = _get(session, name)
    if user is None:
        raise NotFoundError(f"no user named {name!r}")
    if user.disabled_at is None:
        user.disabled_at = app.clock.now()
        session.add(user)
        session.flush()
        app.audit(session, "user.disable", target_type="user", target_id=str(user.id), actor=actor)
    return UserView.of(user)


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
