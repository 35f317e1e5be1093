"""Bulk import: a whole CSV validated row by row, then stored all or nothing."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session

from meeting_governance import audit
from meeting_governance.context import AppContext
from meeting_governance.errors import InputError
from meeting_governance.models import OptOutIdentifier
from meeting_governance.optout_identities import bump_registry
from meeting_governance.optouts.registry import TARGET, audit_details, insert_row
from meeting_governance.optouts.validation import (
    COVERS,
    OptOutRequest,
    clean_request,
    parse_when,
    validate,
)
from meeting_governance.optouts.views import OptOutView, views_of

MAX_CSV_BYTES = 5 * 1024 * 1024
MAX_CSV_ROWS = 50_000


_COLUMNS = {"email": "email", "e-mail": "email", "mail": "email", "upn": "email",
            "object_id": "object_id", "object id": "object_id", "objectid": "object_id",
            "oid": "object_id", "name": "name", "meeting": "meeting", "join_url": "meeting",
            "from": "from", "valid_from": "from", "until": "until", "valid_until": "until",
            "to": "until", "covers": "covers", "note": "note"}


@dataclass(frozen=True)
class RowProblem:
    """One bad cell (or row, `field` empty) of a CSV, by line."""

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
            clean, errors = clean_request(req)
            assert clean is not None, errors  # parse_csv validated every row
            stored.append(insert_row(app, session, clean, req, actor=actor))
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
    audit.append_many(session, actor=actor, action="optout.import", target_type=TARGET,
                      entries=[(row.id, {"batch": batch, "line": line, **audit_details(row)})
                               for (line, _req), row in zip(rows, stored, strict=True)],
                      clock=app.clock)
    return views_of(app, session, stored)
