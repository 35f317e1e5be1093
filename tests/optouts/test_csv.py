"""CSV import: all or nothing, bad rows named by line, size and encoding guarded."""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from meeting_governance.context import AppContext
from meeting_governance.models import AuditEntry, OptOut
from meeting_governance.optouts import (
    MAX_CSV_ROWS,
    CsvImportError,
    history,
    import_csv,
    list_optouts,
)

from .helpers import JOIN_URL, OID

GOOD = (
    "email,object_id,name,meeting,from,until,covers,note\n"
    "ada@example.com,,Ada Lovelace,,,,both,by phone\n"
    f",{OID},Bob,\"{JOIN_URL}\",,,transcription,\n"
    "carol@example.com,,,,2026-03-01,2026-03-31,recording,\"line one\nline two\"\n"
)


def count(app: AppContext) -> int:
    with app.session() as session:
        return int(session.exec(select(func.count()).select_from(OptOut)).one())


def run(app: AppContext, data: bytes | str) -> list[str]:
    with app.session() as session:
        return [v.id for v in import_csv(app, session, data, actor="coordinator:ana")]


def test_good_file_imports_every_row(app: AppContext) -> None:
    imported = run(app, GOOD.encode("utf-8"))
    assert len(imported) == 3
    with app.session() as session:
        views = {v.id: v for v in list_optouts(app, session)}
        carol = views[imported[2]]
        assert (carol.email, carol.scope, carol.covers, carol.note) == (
            "carol@example.com", "range", "recording", "line one\nline two")
        assert views[imported[1]].meeting == JOIN_URL and views[imported[1]].covers == "transcription"
        trail = history(app, session, imported[0])
        assert [e.action for e in trail] == ["optout.import"]
        assert '"line":2' in trail[0].details


def test_bom_semicolons_aliases_blank_lines(app: AppContext) -> None:
    data = "\ufeffE-mail;Name;Covers\r\n\r\nada@example.com;Ada;both\r\n;;\r\nbob@example.com;;\r\n"
    assert len(run(app, data.encode("utf-8"))) == 2
    assert len(run(app, "\ufeffemail\nx@example.com\n")) == 1


def test_one_bad_row_imports_nothing_and_names_the_line(app: AppContext) -> None:
    data = GOOD + "dave@example.com,,,,,,,\nnot-an-address,,,,,,,\n"
    with pytest.raises(CsvImportError, match=r"^line 7: email: not an e-mail address.*"
                                             r"nothing was imported") as info:
        run(app, data)
    assert [p.line for p in info.value.problems] == [7]  # the note of line 4 spans two lines
    assert count(app) == 0
    with app.session() as session:
        actions = session.exec(select(AuditEntry.action)).all()
    assert not [a for a in actions if a.startswith("optout.")]


@pytest.mark.parametrize(("row", "text"), [
    ("ada@example.com,,,,2026-13-01,,,", "line 2: from: not a date"),
    ("ada@example.com,,,,,,everything,", "line 2: covers: expected recording, transcription or both"),
    ("ada@example.com,,,https://zoom.us/j/1,,,,", "line 2: meeting: not a Teams join link"),
    ("ada@example.com,,,x,2026-03-01,,,", "line 2: meeting: choose one meeting or a date range"),
    (",,Ada,,,,,", "line 2: email: give an e-mail address or an Entra object id"),
    ("a@b.org,,,,,,,,extra", "line 2: 9 cells but the header has 8 columns"),
])
def test_row_errors(app: AppContext, row: str, text: str) -> None:
    with pytest.raises(CsvImportError) as info:
        run(app, "email,object_id,name,meeting,from,until,covers,note\n" + row + "\n")
    assert str(info.value).startswith(text)
    assert count(app) == 0


def test_several_bad_rows_are_counted(app: AppContext) -> None:
    data = "email\nbad1\nok@example.com\nbad2\nbad3\n"
    with pytest.raises(CsvImportError, match=r"^line 2: .*\(and 2 more bad rows\)") as info:
        run(app, data)
    assert [p.line for p in info.value.problems] == [2, 4, 5]


@pytest.mark.parametrize(("data", "text"), [
    (b"", "the file is empty"),
    (b"name,colour\nAda,red\n", "unknown column(s) colour"),
    (b"name\nAda\n", "needs an email or an object_id column"),
    (b"email\nada@example.com\n\xff\xfe bad bytes\n", "line 3: the file is not UTF-8"),
    ("email,note\nada@example.com,caf\u00e9\n".encode("latin-1"), "line 2: the file is not UTF-8"),
    (b"email\n\"ada@example.com\n", "not valid CSV"),
])
def test_file_errors(app: AppContext, data: bytes, text: str) -> None:
    with pytest.raises(CsvImportError) as info:
        run(app, data)
    assert text in str(info.value)


def test_oversize_and_too_many_rows(sqlite_app: AppContext) -> None:
    huge = b"email,note\n" + b"ada@example.com," + b"x" * (5 * 1024 * 1024) + b"\n"
    with pytest.raises(CsvImportError, match="larger than 5 MB"):
        run(sqlite_app, huge)
    many = "email\n" + "a@example.com\n" * (MAX_CSV_ROWS + 1)
    with pytest.raises(CsvImportError, match=f"more than {MAX_CSV_ROWS} rows"):
        run(sqlite_app, many)
    assert count(sqlite_app) == 0
