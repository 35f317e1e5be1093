"""Ids as people type them: the whole id, or any unique prefix of at least `MIN_PREFIX` characters.

Transcript, opt-out, hold and purge ids are 32 hex digits: nobody retypes those, and tables
on a narrow terminal fold them. Every command that takes such an id resolves it here, so a
prefix that matches nothing or several rows is one clear error (exit 2) saying how many matched
and where to look, never a guess.
"""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import Session, col, select

from meeting_governance.errors import NotFoundError, UsageError

MIN_PREFIX = 4


class UnknownIdError(NotFoundError, UsageError):
    """No row has this id or an id starting with it (exit 2: the command line is wrong)."""

_ID_CHARS = re.compile(r"[0-9A-Za-z_-]+")


def resolve_id(session: Session, column: Any, given: str, *, kind: str, listing: str) -> str:
    """The one id in `column` equal to `given`, or else starting with it.

    `kind` names the thing ("transcript") and `listing` the command that lists them, for the
    error. An exact match always wins, whatever its length."""
    text = given.strip()
    if not text:
        raise UsageError(f"no {kind} id given: see `meeting-governance {listing}`")
    exact = session.exec(select(column).where(column == text)).first()
    if exact is not None:
        return str(exact)
    if len(text) < MIN_PREFIX or not _ID_CHARS.fullmatch(text):
        raise UnknownIdError(f"{kind} {text} does not exist (a shortened id needs at least "
                             f"{MIN_PREFIX} characters): see `meeting-governance {listing}`")
    matches = session.exec(select(column).where(col(column).startswith(text, autoescape=True))
                           .order_by(column).limit(11)).all()
    if len(matches) == 1:
        return str(matches[0])
    if not matches:
        raise UnknownIdError(f"{kind} {text} does not exist (no {kind} id starts with it): "
                             f"see `meeting-governance {listing}`")
    count = "more than 10" if len(matches) > 10 else str(len(matches))
    raise UsageError(f"{count} {kind} ids start with {text!r}: give more characters "
                     f"(see `meeting-governance {listing}`)")


__all__ = ["MIN_PREFIX", "UnknownIdError", "resolve_id"]
