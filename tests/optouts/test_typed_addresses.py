"""Addresses typed by people: what looks right on screen but would never match is refused, with
the character and its position named, in the CLI, the CSV import and the form; a trailing dot
in the domain is normalised. Nothing is stored when an address is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import func, select
from typer.testing import CliRunner

from meeting_governance.cli import app as cli_app
from meeting_governance.context import AppContext
from meeting_governance.errors import InputError
from meeting_governance.identity import invisible_characters, validated_email
from meeting_governance.meetingref import normalise_meeting_ref
from meeting_governance.models import OptOut
from meeting_governance.optouts import CsvImportError, OptOutRequest, import_csv, validate

INVISIBLE = {
    "\u200b": "ZERO WIDTH SPACE", "\u00ad": "SOFT HYPHEN", "\u200e": "LEFT-TO-RIGHT MARK",
    "\u200f": "RIGHT-TO-LEFT MARK", "\ufeff": "ZERO WIDTH NO-BREAK SPACE",
    "\u202e": "RIGHT-TO-LEFT OVERRIDE", "\u2066": "LEFT-TO-RIGHT ISOLATE",
    "\u2060": "WORD JOINER", "\u200d": "ZERO WIDTH JOINER", "\u00a0": "NO-BREAK SPACE",
    "\u0007": "", "\u3164": "HANGUL FILLER", "\ufe0f": "VARIATION SELECTOR-16",
}


@pytest.mark.parametrize("char", sorted(INVISIBLE))
def test_each_invisible_character_is_named_with_its_position(char: str) -> None:
    typed = f"ja{char}ne@contoso.example"
    with pytest.raises(InputError) as info:
        validated_email(typed)
    message = str(info.value)
    assert f"U+{ord(char):04X}" in message and "position 3" in message
    assert INVISIBLE[char] in message


@given(st.emails(), st.sampled_from(sorted(INVISIBLE)), st.integers(min_value=0))
def test_an_invisible_character_anywhere_is_refused(email: str, char: str, where: int) -> None:
    at = where % (len(email) + 1)
    typed = email[:at] + char + email[at:]
    if not typed.strip():
        return
    found = invisible_characters(typed)
    assert found and found[0][1] == char
    with pytest.raises(InputError):
        validated_email(typed)


@given(st.emails())
def test_a_trailing_dot_in_the_domain_is_the_same_address(email: str) -> None:
    assert validated_email(email + ".") == validated_email(email)


def test_ordinary_padding_is_still_fine() -> None:
    assert validated_email("  Jane@Contoso.Example \t") == "jane@contoso.example"


def test_the_form_names_the_field() -> None:
    errors = validate(OptOutRequest(email="jane\u200b@contoso.example",
                                    object_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\u200e",
                                    meeting="https://teams.microsoft.com/meet/12\u200b34?p=x"))
    fields = {e.field: e.message for e in errors}
    assert "U+200B" in fields["email"] and "U+200E" in fields["object_id"]
    assert "U+200B" in fields["meeting"]


def test_a_link_with_an_encoded_invisible_character_is_refused() -> None:
    with pytest.raises(InputError, match="U\\+200B"):
        normalise_meeting_ref("https://teams.microsoft.com/l/meetup-join/19%3ameeting_ab%E2%80%8Bc"
                              "%40thread.v2/0")


def _count(app: AppContext) -> int:
    with app.session() as session:
        return int(session.exec(select(func.count()).select_from(OptOut)).one())


def test_the_csv_import_names_line_character_and_position(app: AppContext) -> None:
    data = ("email,name\nada@example.com,Ada\n"
            "bob\u00ad@example.com,Bob\n").encode()
    with pytest.raises(CsvImportError) as info:
        with app.session() as session:
            import_csv(app, session, data, actor="coordinator")
    assert str(info.value).startswith("line 3: email: the e-mail address contains U+00AD SOFT "
                                      "HYPHEN at position 4")
    assert _count(app) == 0


def test_the_csv_import_normalises_a_trailing_dot(app: AppContext) -> None:
    with app.session() as session:
        views = import_csv(app, session, b"email\nada@example.com.\n", actor="coordinator")
    assert [v.email for v in views] == ["ada@example.com"]


def test_the_cli_refuses_and_stores_nothing(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MG_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    assert runner.invoke(cli_app, ["init"]).exit_code == 0
    result = runner.invoke(cli_app, ["optout", "add", "--offline", "--email",
                                     "dana\u200e@contoso.example"])
    assert result.exit_code != 0 and isinstance(result.exception, InputError)
    assert "U+200E LEFT-TO-RIGHT MARK at position 5" in str(result.exception)
    listed = runner.invoke(cli_app, ["optout", "list", "--json"])
    assert listed.stdout.strip() == "[]"
