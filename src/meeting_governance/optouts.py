"""The opt-out registry: who asked not to be recorded or transcribed, and the gate's `matching`.

Routes and CLI stay thin over these functions. No personal value reaches a column in clear:
e-mail, object id and name are stored as blind-index values (to find and match) plus one sealed
JSON copy for display; the meeting reference as entered, the note and the revoke reason are
sealed too. Audit entries carry the opt-out id and blind values only.

Matching is by every identifier of a person — Entra object id, mail, UPN, aliases, other
mails, a guest's own address (`optout_identifier`, filled from the directory by
`optout_identities`) — never by display name (anyone can be called "Alex Smith"), with indexed
`IN (…)` queries over the participants' blind values. Every change bumps the registry version
(`optout_identities.bump_registry`), which the store of a transcript waits on.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import insert, or_
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from meeting_governance import audit
from meeting_governance.context import AppContext
from meeting_governance.epochs import Owner, standing
from meeting_governance.errors import InputError, NotFoundError, ShreddedError
from meeting_governance.identity import Participant, validated_email, validated_object_id
from meeting_governance.ids import resolve_id
from meeting_governance.meetingref import (
    blind_meeting,
    meeting_keys,
    normalise_meeting_ref,
)
from meeting_governance.models import AuditEntry, OptOut, OptOutIdentifier, VaultItem
from meeting_governance.optout_identities import bump_registry, record_registration
from meeting_governance.people import Registration
from meeting_governance.vault import Vault

__all__ = [
    "COVERS", "CsvImportError", "FieldError", "MeetingRef", "OptOutRequest", "OptOutView",
    "RowProblem", "add_optout", "applies", "blind_name", "check", "cleaned_identity",
    "get_optout", "history",
    "identity_query", "import_csv", "list_optouts", "matching", "meeting_keys",
    "normalise_meeting_ref", "normalise_name", "parse_csv", "parse_when", "revoke_optout",
    "validate",
]

PURPOSES: tuple[str, ...] = ("recording", "transcription")
COVERS = {"recording": (True, False), "transcription": (False, True), "both": (True, True)}

MAX_NAME = 200
MAX_NOTE = 2000
MAX_REASON = 2000
MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_CSV_ROWS = 50_000
IN_CHUNK = 500  # bound parameters per IN list: well under SQLite's and PostgreSQL's limits
_TARGET = "optout"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# -- requests and validation -------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class OptOutRequest:
    """What a coordinator asks for, as typed (the form, a CSV row or the CLI)."""

    email: str | None = None
    object_id: str | None = None
    name: str | None = None
    meeting: str | None = None  # a Graph meeting id or a Teams join link
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    covers_recording: bool = True
    covers_transcription: bool = True
    note: str | None = None


@dataclass(frozen=True)
class FieldError:
    """One problem tied to one form field (the web form shows it next to that field)."""

    field: str  # email | object_id | name | meeting | valid_from | valid_until | covers | note
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True)
class _Clean:
    email: str | None
    object_id: str | None
    name: str | None
    meeting: str | None
    meeting_key: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    note: str | None

    @property
    def scope(self) -> str:
        if self.meeting_key:
            return "meeting"
        return "range" if (self.valid_from or self.valid_until) else "all"


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def _aware(value: datetime | None) -> datetime | None:
    """Naive times are read as UTC (what `parse_when` does for the CLI and CSV)."""
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).astimezone(UTC)


# Cells starting with these are formulas to Excel and LibreOffice (CSV injection, OWASP).
_FORMULA_START = ("=", "+", "@", "\t", "\r")


def _clean(req: OptOutRequest) -> tuple[_Clean | None, list[FieldError]]:
    errors: list[FieldError] = []
    email = object_id = meeting_key = None
    if _blank(req.email) and _blank(req.object_id):
        errors.append(FieldError("email", "give an e-mail address or an Entra object id (or both)"))
    if not _blank(req.email):
        try:
            email = validated_email(req.email or "")
        except InputError as exc:
            errors.append(FieldError("email", str(exc)))
    if not _blank(req.object_id):
        try:
            object_id = validated_object_id(req.object_id or "")
        except InputError as exc:
            errors.append(FieldError("object_id", str(exc)))
    name = " ".join((req.name or "").split()) or None
    if name and len(name) > MAX_NAME:
        errors.append(FieldError("name", f"too long ({len(name)} characters; at most {MAX_NAME})"))
    elif name and _CONTROL.search(name):
        errors.append(FieldError("name", "contains control characters"))
    elif name and name[0] in _FORMULA_START:
        errors.append(FieldError("name", f"must not start with {name[0]!r} (a spreadsheet would "
                                         "run it as a formula)"))
    meeting = (req.meeting or "").strip() or None
    if meeting:
        try:
            meeting_key = normalise_meeting_ref(meeting)
        except InputError as exc:
            errors.append(FieldError("meeting", str(exc).removeprefix("meeting: ")))
    valid_from, valid_until = _aware(req.valid_from), _aware(req.valid_until)
    if meeting and (valid_from or valid_until):
        errors.append(FieldError("meeting", "choose one meeting or a date range, not both"))
    if valid_from and valid_until and valid_from > valid_until:
        errors.append(FieldError("valid_until", "the end of the range is before its start"))
    if not (req.covers_recording or req.covers_transcription):
        errors.append(FieldError("covers", "cover recording, transcription or both"))
    note = (req.note or "").strip() or None
    if note and len(note) > MAX_NOTE:
        errors.append(FieldError("note", f"too long ({len(note)} characters; at most {MAX_NOTE})"))
    elif note and note[0] in _FORMULA_START:
        errors.append(FieldError("note", f"must not start with {note[0]!r} (a spreadsheet would "
                                         "run it as a formula)"))
    if errors:
        return None, errors
    return _Clean(email, object_id, name, meeting, meeting_key, valid_from, valid_until, note), []


def cleaned_identity(req: OptOutRequest) -> tuple[str | None, str | None]:
    """The normalised (email, object id) of a request that `check` accepted."""
    clean, errors = _clean(req)
    if clean is None:
        raise InputError("; ".join(str(e) for e in errors))
    return clean.email, clean.object_id


def validate(req: OptOutRequest) -> list[FieldError]:
    """Every problem of a request, each tied to its field; empty when it can be added."""
    return _clean(req)[1]


def check(req: OptOutRequest) -> None:
    """Raise one `InputError` naming every bad field ("email: …; meeting: …")."""
    errors = validate(req)
    if errors:
        raise InputError("; ".join(str(e) for e in errors))


def parse_when(text: str, *, field: str, end: bool = False) -> datetime:
    """A date or an ISO 8601 time from the CLI, a CSV cell or a form; no zone means UTC.

    A bare date as the end of a range means the whole of that day (`--until 2026-03-31`
    includes meetings on the 31st).
    """
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return start + timedelta(days=1, microseconds=-1) if end else start
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{field}: not a date (expected YYYY-MM-DD or an ISO 8601 time, "
                         f"got {value[:40]!r})") from None
    return _aware(parsed) or parsed


# -- names -------------------------------------------------------------------------------
def normalise_name(name: str) -> str:
    """Case-folded, NFKC, whitespace collapsed: "  Ada  LOVELACE" and "ada lovelace" agree."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def blind_name(vault: Vault, name: str) -> str:
    """For search only: the registry never matches a participant by name."""
    return vault.blind("name", normalise_name(name))


# -- views -------------------------------------------------------------------------------
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

    def as_dict(self) -> dict[str, Any]:
        """For JSON output: the fields plus `active`, `covers` and `summary`."""
        data = asdict(self)
        data.update(active=self.active, covers=self.covers, summary=self.summary())
        return data


EPOCH = standing("optout")  # opt-outs are kept as long as the registry (SECURITY.md)


def _open_items(vault: Vault, session: Session,
                owned: Iterable[tuple[str | None, Owner]]) -> dict[str, Any]:
    """Load and open many vault items in a few queries (no N+1); shredded ones map to None.
    Each item is opened as the field that points at it (a moved item fails to open)."""
    owners = {i: owner for i, owner in owned if i}
    opened: dict[str, Any] = {}
    for chunk in _chunks(sorted(owners)):
        for item in session.exec(select(VaultItem).where(col(VaultItem.id).in_(chunk))).all():
            try:
                opened[item.id] = vault.open_item(item, owner=owners[item.id])
            except ShreddedError:
                opened[item.id] = None
    return opened


def _views(app: AppContext, session: Session, rows: Sequence[OptOut]) -> list[OptOutView]:
    items = _open_items(app.vault, session, (
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


# -- registry ----------------------------------------------------------------------------
def _insert(app: AppContext, session: Session, clean: _Clean, req: OptOutRequest, *,
            actor: str, registration: Registration | None = None) -> OptOut:
    vault = app.vault
    identity = {"name": clean.name, "email": clean.email, "object_id": clean.object_id,
                "meeting": clean.meeting}
    oid = uuid.uuid4().hex
    row = OptOut(
        id=oid,
        email_blind=vault.blind_email(clean.email) if clean.email else None,
        object_id_blind=vault.blind_object_id(clean.object_id) if clean.object_id else None,
        name_blind=blind_name(vault, clean.name) if clean.name else None,
        identity_item=vault.seal_json(session, identity, purpose="optout-identity",
                                      owner=Owner("optout", oid, "identity"), epoch=EPOCH),
        scope=clean.scope,
        meeting_key=blind_meeting(vault, clean.meeting_key) if clean.meeting_key else None,
        valid_from=clean.valid_from, valid_until=clean.valid_until,
        covers_recording=req.covers_recording, covers_transcription=req.covers_transcription,
        note_item=vault.seal_text(session, clean.note, purpose="optout-note", epoch=EPOCH,
                                  owner=Owner("optout", oid, "note")) if clean.note else None,
        created_by=actor, created_at=app.clock.now(),
    )
    if registration is not None:
        row.resolution, row.resolved_at = registration.status, app.clock.now()
    session.add(row)
    return row


def _audit_details(row: OptOut) -> dict[str, Any]:
    covers = "both" if row.covers_recording and row.covers_transcription else (
        "recording" if row.covers_recording else "transcription")
    return {"scope": row.scope, "covers": covers, "email_blind": row.email_blind,
            "object_id_blind": row.object_id_blind, "meeting_key": row.meeting_key}


def add_optout(app: AppContext, session: Session, req: OptOutRequest, *,
               actor: str, registration: Registration | None = None) -> OptOutView:
    """Validate, seal and store one opt-out in the caller's transaction, and audit it.

    `registration` is the directory's answer for its identity (`people.resolve_registration`,
    asked before the transaction); without one the opt-out matches the identifier registered
    until the daemon's refresh resolves it."""
    clean, errors = _clean(req)
    if clean is None:
        raise InputError("; ".join(str(e) for e in errors))
    row = _insert(app, session, clean, req, actor=actor, registration=registration)
    session.flush()
    record_registration(app, session, row, registration)
    bump_registry(session, app.clock.now())
    app.audit(session, "optout.add", target_type=_TARGET, target_id=row.id, actor=actor,
              resolution=row.resolution, **_audit_details(row))
    return _views(app, session, [row])[0]


def _get_row(session: Session, optout_id: str, *, for_update: bool = False) -> OptOut:
    found = resolve_id(session, col(OptOut.id), optout_id, kind="opt-out", listing="optout list")
    query = select(OptOut).where(OptOut.id == found)
    if for_update:
        query = query.with_for_update()
    row = session.exec(query).first()
    if row is None:
        raise NotFoundError(f"opt-out {optout_id.strip()} does not exist "
                            "(see `meeting-governance optout list`)")
    return row


def get_optout(app: AppContext, session: Session, optout_id: str) -> OptOutView:
    """One opt-out, decrypted; `NotFoundError` if there is none with this id."""
    return _views(app, session, [_get_row(session, optout_id)])[0]


def revoke_optout(app: AppContext, session: Session, optout_id: str, *, actor: str,
                  reason: str | None = None) -> OptOutView:
    """Mark an opt-out revoked (the row stays for the history); revoking twice is an error."""
    row = _get_row(session, optout_id, for_update=True)
    if row.revoked_at is not None:
        raise InputError(f"opt-out {row.id} was already revoked on "
                         f"{row.revoked_at.isoformat(timespec='seconds')} by {row.revoked_by}")
    reason = (reason or "").strip() or None
    if reason and len(reason) > MAX_REASON:
        raise InputError(f"reason: too long ({len(reason)} characters; at most {MAX_REASON})")
    row.revoked_at = app.clock.now()
    row.revoked_by = actor
    if reason:
        row.revoke_reason_item = app.vault.seal_text(
            session, reason, purpose="optout-reason", epoch=EPOCH,
            owner=Owner("optout", row.id, "revoke_reason"))
    session.add(row)
    bump_registry(session, row.revoked_at)
    app.audit(session, "optout.revoke", target_type=_TARGET, target_id=row.id, actor=actor,
              reason_given=bool(reason))
    return _views(app, session, [row])[0]


def list_optouts(app: AppContext, session: Session, *, search: str | None = None,
                 include_revoked: bool = True, limit: int = 200,
                 offset: int = 0) -> list[OptOutView]:
    """Newest first. `search` is an exact e-mail, object id, name (any case/spacing) or opt-out id,
    looked up through the blind index: the registry cannot do substring search by design."""
    query = select(OptOut)
    if search and search.strip():
        vault, text = app.vault, search.strip()
        query = query.where(or_(
            col(OptOut.email_blind) == vault.blind_email(text),
            col(OptOut.object_id_blind) == vault.blind_object_id(text),
            col(OptOut.name_blind) == blind_name(vault, text),
            col(OptOut.id) == text.lower(),
        ))
    if not include_revoked:
        query = query.where(col(OptOut.revoked_at).is_(None))
    query = query.order_by(col(OptOut.created_at).desc(), col(OptOut.id)).offset(max(offset, 0))
    rows = session.exec(query.limit(max(min(limit, 10_000), 0))).all()
    return _views(app, session, rows)


def history(app: AppContext, session: Session, optout_id: str) -> list[AuditEntry]:
    """The audit trail of one opt-out, oldest first (ids and blind values only)."""
    _get_row(session, optout_id)
    return list(session.exec(
        select(AuditEntry).where(AuditEntry.target_type == _TARGET,
                                 AuditEntry.target_id == optout_id.strip())
        .order_by(col(AuditEntry.seq))).all())


# -- CSV import ---------------------------------------------------------------------------
_COLUMNS = {"email": "email", "e-mail": "email", "mail": "email", "upn": "email",
            "object_id": "object_id", "object id": "object_id", "objectid": "object_id",
            "oid": "object_id", "name": "name", "meeting": "meeting", "join_url": "meeting",
            "from": "from", "valid_from": "from", "until": "until", "valid_until": "until",
            "to": "until", "covers": "covers", "note": "note"}


@dataclass(frozen=True)
class RowProblem:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"line {self.line}: {where}{self.message}"


class CsvImportError(InputError):
    """A CSV that cannot be imported; `problems` lists the bad rows (the first 100) by line."""

    def __init__(self, message: str, problems: Sequence[RowProblem] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        if len(data.encode("utf-8", "surrogatepass")) > MAX_CSV_BYTES:
            raise CsvImportError(f"the file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB; "
                                 "split it into smaller files")
        return data.removeprefix("\ufeff")
    if len(data) > MAX_CSV_BYTES:
        raise CsvImportError(f"the file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB "
                             f"({len(data)} bytes); split it into smaller files")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvImportError(f"line {line}: the file is not UTF-8 text (byte {exc.start}); "
                             "save it as \"CSV UTF-8\"") from None


def _row_request(cells: dict[str, str], line: int) -> OptOutRequest | RowProblem:
    """The request a row asks for, or the first problem in its cells."""
    covers = (cells.get("covers") or "both").strip().lower()
    if covers not in COVERS:
        return RowProblem(line, "covers", "expected recording, transcription or both "
                                          f"(got {covers[:30]!r})")
    recording, transcription = COVERS[covers]
    bounds: dict[str, datetime | None] = {}
    for column in ("from", "until"):
        value = (cells.get(column) or "").strip()
        try:
            bounds[column] = parse_when(value, field=column, end=column == "until") if value else None
        except InputError as exc:
            return RowProblem(line, column, str(exc).removeprefix(f"{column}: "))
    return OptOutRequest(
        email=cells.get("email") or None, object_id=cells.get("object_id") or None,
        name=cells.get("name") or None, meeting=cells.get("meeting") or None,
        valid_from=bounds["from"], valid_until=bounds["until"],
        covers_recording=recording, covers_transcription=transcription,
        note=cells.get("note") or None)


def parse_csv(data: bytes | str) -> list[tuple[int, OptOutRequest]]:
    """Read and validate a whole CSV (header required); every row or `CsvImportError`."""
    text = _decode(data)
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","  # Excel in many locales
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise CsvImportError(f"line 1: not a readable CSV header ({exc})") from None
    if not header or not any(h.strip() for h in header):
        raise CsvImportError("the file is empty: it needs a header line "
                             "(email,object_id,name,meeting,from,until,covers,note)")
    names = [_COLUMNS.get(h.strip().lower()) for h in header]
    unknown = [h.strip() for h, n in zip(header, names, strict=True) if n is None and h.strip()]
    if unknown:
        raise CsvImportError(f"line 1: unknown column(s) {', '.join(unknown)[:200]}; allowed: "
                             "email, object_id, name, meeting, from, until, covers, note")
    if "email" not in names and "object_id" not in names:
        raise CsvImportError("line 1: the header needs an email or an object_id column")
    rows: list[tuple[int, OptOutRequest]] = []
    problems: list[RowProblem] = []
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader, None)
        except csv.Error as exc:
            raise CsvImportError(f"line {start}: not valid CSV ({exc}); nothing was imported",
                                 [RowProblem(start, "", str(exc))]) from None
        if record is None:
            break
        line = start
        if not any(cell.strip() for cell in record):
            continue
        if len(rows) + len(problems) >= MAX_CSV_ROWS:
            raise CsvImportError(f"the file has more than {MAX_CSV_ROWS} rows; split it")
        if len(record) > len(names):
            problems.append(RowProblem(line, "", f"{len(record)} cells but the header has "
                                                 f"{len(names)} columns"))
            continue
        cells = {n: v.strip() for n, v in zip(names, record, strict=False) if n}
        req = _row_request(cells, line)
        if isinstance(req, RowProblem):
            problems.append(req)
            continue
        errors = validate(req)
        if errors:
            problems.extend(RowProblem(line, e.field, e.message) for e in errors)
            continue
        rows.append((line, req))
    if problems:
        first_bad = problems[0]
        more = len({p.line for p in problems}) - 1
        tail = f" (and {more} more bad row{'s' if more != 1 else ''})" if more > 0 else ""
        raise CsvImportError(f"{first_bad}{tail}; nothing was imported", problems[:100])
    return rows


def import_csv(app: AppContext, session: Session, data: bytes | str, *,
               actor: str) -> list[OptOutView]:
    """All or nothing: every row is validated before the first is stored; each is audited."""
    rows = parse_csv(data)
    batch = uuid.uuid4().hex
    stored = []
    with session.no_autoflush:  # seal and add every row first, then one flush inserts them in bulk
        for _line, req in rows:
            clean, errors = _clean(req)
            assert clean is not None, errors  # parse_csv validated every row
            stored.append(_insert(app, session, clean, req, actor=actor))
    session.flush()
    # The registered identifiers of the new rows, in one statement; the directory resolves
    # them on the daemon's next refresh.
    identifiers = [{"optout_id": row.id, "blind": blind, "source": "registered"}
                   for row in stored for blind in dict.fromkeys(
                       b for b in (row.email_blind, row.object_id_blind) if b)]
    if identifiers:
        session.execute(insert(OptOutIdentifier), identifiers)
    bump_registry(session, app.clock.now())
    # One audit entry per imported opt-out, chained in one statement (a 50 000-row file would
    # otherwise spend most of its time locking the chain head row by row).
    audit.append_many(session, actor=actor, action="optout.import", target_type=_TARGET,
                      entries=[(row.id, {"batch": batch, "line": line, **_audit_details(row)})
                               for (line, _req), row in zip(rows, stored, strict=True)],
                      clock=app.clock)
    return _views(app, session, stored)


# -- matching (the gate) -----------------------------------------------------------------
@dataclass(frozen=True)
class MeetingRef:
    """The meeting the gate is deciding on, as Graph describes it."""

    meeting_id: str
    join_url: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    join_meeting_id: str | None = None  # joinMeetingIdSettings.joinMeetingId (short links)


def _chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterable[list[str]]:
    for i in range(0, len(values), size):
        yield list(values[i: i + size])


def applies(row: OptOut, *, keys: set[str], start: datetime | None, end: datetime | None,
            purpose: str) -> bool:
    """Does this (already identity-matched) opt-out block the meeting for `purpose`? Pure.

    Active (not revoked), covers the purpose, and its scope covers the meeting: all; this
    meeting by key; or a range overlapping start..end, an unknown start or end counting as
    unbounded on that side (fail closed: unknown means no).
    """
    if row.revoked_at is not None:
        return False
    if not (row.covers_recording if purpose == "recording" else row.covers_transcription):
        return False
    if row.scope == "all":
        return True
    if row.scope == "meeting":
        return row.meeting_key is not None and row.meeting_key in keys
    if row.scope == "range":
        starts_in_time = row.valid_from is None or end is None or row.valid_from <= end
        ends_in_time = row.valid_until is None or start is None or row.valid_until >= start
        return starts_in_time and ends_in_time
    return True  # an unknown scope written by a newer version: block rather than guess


def identity_query(column: str, blinds: Sequence[str]) -> SelectOfScalar[OptOut]:
    """Opt-outs whose `column` (email_blind | object_id_blind | identifier) is one of `blinds`.

    The only condition is the IN list, so every planner takes that column's index (SQLite
    without statistics would otherwise pick `ix_optout_revoked_at`, i.e. every active row).
    """
    if column == "identifier":
        ids = select(OptOutIdentifier.optout_id).where(
            col(OptOutIdentifier.blind).in_(list(blinds)))
        return select(OptOut).where(col(OptOut.id).in_(ids))
    target = {"email_blind": OptOut.email_blind, "object_id_blind": OptOut.object_id_blind}[column]
    return select(OptOut).where(col(target).in_(list(blinds)))


def matching(app: AppContext, session: Session, participants: Sequence[Participant],
             meeting: MeetingRef, *, purpose: str = "transcription",
             blinds: Iterable[str] = ()) -> list[OptOutView]:
    """Active opt-outs of these participants that cover this meeting for `purpose`.

    Matches the participants' own object ids and addresses plus `blinds` (every identifier the
    directory knows for them: `people.resolve_participants`) against every identifier of every
    opt-out; display names are never looked at. An empty list means no opt-out applies — it
    says nothing about unresolved participants, which the gate must treat as unknown.
    """
    if purpose not in PURPOSES:
        raise InputError(f"purpose: expected recording or transcription (got {purpose!r})")
    return _views(app, session, matching_rows(app, session, participants, meeting,
                                              purpose=purpose, blinds=blinds))


def matching_rows(app: AppContext, session: Session, participants: Sequence[Participant],
                  meeting: MeetingRef, *, purpose: str, blinds: Iterable[str] = ()) -> list[OptOut]:
    """`matching` without decrypting anything (what the store's last check needs)."""
    vault = app.vault
    values = set(blinds)
    for p in participants:
        values.update(vault.blind_identities(email=p.email, object_id=p.object_id))
    if not values:
        return []
    start, end = _aware(meeting.start), _aware(meeting.end)
    if start and end and end < start:
        start, end = end, start
    keys = meeting_keys(vault, meeting.meeting_id, meeting.join_url, meeting.join_meeting_id)
    found: dict[str, OptOut] = {}
    ordered = sorted(values)
    # One query per chunk on each index (the identifier table; the registered columns too, so
    # a row written by any path matches); what a person's few opt-outs say about this meeting
    # is then decided in Python (`applies`).
    for column in ("identifier", "email_blind", "object_id_blind"):
        for chunk in _chunks(ordered):
            for row in session.exec(identity_query(column, chunk)).all():
                if row.id not in found and applies(row, keys=keys, start=start, end=end,
                                                   purpose=purpose):
                    found[row.id] = row
    return sorted(found.values(), key=lambda r: (r.created_at, r.id))
