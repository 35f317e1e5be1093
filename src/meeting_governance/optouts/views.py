"""An opt-out decrypted for display: the one record (`OptOutView`, `to_json`) that the CLI,
the web API, the pages and the DSR export all show."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, time
from typing import Any

from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.epochs import Owner, standing
from meeting_governance.errors import ShreddedError
from meeting_governance.models import OptOut, VaultItem
from meeting_governance.vault import Vault

IN_CHUNK = 500  # bound parameters per IN list: well under SQLite's and PostgreSQL's limits
EPOCH = standing("optout")  # opt-outs are kept as long as the registry (SECURITY.md)


def chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterable[list[str]]:
    """`values` in lists short enough for one `IN (…)`."""
    for i in range(0, len(values), size):
        yield list(values[i: i + size])


def _day(value: datetime) -> str:
    if value.time() in (time.min, time(23, 59, 59, 999999)):
        return value.date().isoformat()
    return value.isoformat(timespec="minutes").replace("+00:00", " UTC")


@dataclass(frozen=True, kw_only=True)
class OptOutView:
    """One opt-out, decrypted for display. Values of an erased (shredded) identity are None."""

    id: str
    name: str | None
    email: str | None
    object_id: str | None
    scope: str  # all | meeting | range
    meeting: str | None  # the reference as it was entered
    valid_from: datetime | None
    valid_until: datetime | None
    covers_recording: bool
    covers_transcription: bool
    note: str | None
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None

    @property
    def active(self) -> bool:
        """Not revoked (a date range that has passed is still active, it just matches nothing new)."""
        return self.revoked_at is None

    @property
    def covers(self) -> str:
        """recording | transcription | both (the CSV and CLI spelling)."""
        if self.covers_recording and self.covers_transcription:
            return "both"
        return "recording" if self.covers_recording else "transcription"

    @property
    def person(self) -> str:
        """Who, for people reading: name and address when known."""
        ident = self.email or (f"Entra user {self.object_id}" if self.object_id else None)
        if self.name and ident:
            return f"{self.name} ({ident})"
        return self.name or ident or "a person whose identity was erased"

    def summary(self) -> str:
        """One sentence saying what this opt-out blocks."""
        what = {"both": "recorded or transcribed", "recording": "recorded",
                "transcription": "transcribed"}[self.covers]
        if self.scope == "meeting":
            # the ?context=… of a join link is noise to a reader; the path names the meeting
            ref = (self.meeting or "").split("?", 1)[0] if "://" in (self.meeting or "") else self.meeting
            lead = f"The meeting {ref or '(its reference was erased)'} will not be {what}"
        elif self.scope == "range":
            if self.valid_from and self.valid_until:
                span = f"from {_day(self.valid_from)} to {_day(self.valid_until)}"
            elif self.valid_from:
                span = f"from {_day(self.valid_from)} onwards"
            else:
                span = f"until {_day(self.valid_until)}" if self.valid_until else ""
            lead = f"Meetings {span} will not be {what}"
        else:
            lead = f"No meeting will be {what}"
        sentence = f"{lead} while {self.person} attends."
        if self.revoked_at is not None:
            return (f"Revoked on {_day(self.revoked_at)}: it no longer blocks anything "
                    f"(it said: {sentence})")
        return sentence

    def to_json(self) -> dict[str, Any]:
        """The one JSON shape of an opt-out: every field (times as ISO 8601) plus `active`,
        `covers` and `summary`. `optout list --json`, the web API and the DSR export print it."""
        data = asdict(self)
        for name, value in data.items():
            if isinstance(value, datetime):  # UTC as "Z", as the API's schema writes it
                data[name] = value.isoformat().replace("+00:00", "Z")
        data.update(active=self.active, covers=self.covers, summary=self.summary())
        return data

    as_dict = to_json  # the older name (dsr.py calls it)


# What `to_json` adds to the fields (the web API's schema is built from both).
COMPUTED: dict[str, type] = {"active": bool, "covers": str, "summary": str}
FIELDS = tuple(f.name for f in fields(OptOutView))


def open_items(vault: Vault, session: Session,
               owned: Iterable[tuple[str | None, Owner]]) -> dict[str, Any]:
    """Load and open many vault items in a few queries (no N+1); shredded ones map to None.
    Each item is opened as the field that points at it (a moved item fails to open)."""
    owners = {i: owner for i, owner in owned if i}
    opened: dict[str, Any] = {}
    for chunk in chunks(sorted(owners)):
        for item in session.exec(select(VaultItem).where(col(VaultItem.id).in_(chunk))).all():
            try:
                opened[item.id] = vault.open_item(item, owner=owners[item.id])
            except ShreddedError:
                opened[item.id] = None
    return opened


def views_of(app: AppContext, session: Session, rows: Sequence[OptOut]) -> list[OptOutView]:
    """Rows as views, every sealed value opened in a few queries."""
    items = open_items(app.vault, session, (
        (item, Owner("optout", r.id, name)) for r in rows for item, name in
        ((r.identity_item, "identity"), (r.note_item, "note"),
         (r.revoke_reason_item, "revoke_reason"))))

    def text(item_id: str | None) -> str | None:
        raw = items.get(item_id) if item_id else None
        return raw.decode("utf-8") if raw is not None else None

    views = []
    for row in rows:
        raw = items.get(row.identity_item) if row.identity_item else None
        ident: dict[str, Any] = json.loads(raw) if raw else {}
        views.append(OptOutView(
            id=row.id, name=ident.get("name"), email=ident.get("email"),
            object_id=ident.get("object_id"), scope=row.scope, meeting=ident.get("meeting"),
            valid_from=row.valid_from, valid_until=row.valid_until,
            covers_recording=row.covers_recording, covers_transcription=row.covers_transcription,
            note=text(row.note_item), created_by=row.created_by, created_at=row.created_at,
            revoked_at=row.revoked_at, revoked_by=row.revoked_by,
            revoke_reason=text(row.revoke_reason_item),
        ))
    return views
