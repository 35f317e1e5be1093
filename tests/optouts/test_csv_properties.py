"""Property tests for what the coordinator feeds in: CSV files and e-mail addresses.

Any bytes at all give either rows or one CsvImportError (never another exception); a file
written by a spreadsheet round-trips to the same opt-outs; normalisation is idempotent and
blind to case and surrounding whitespace.
"""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from meeting_governance.identity import normalise_email, validated_email
from meeting_governance.optouts import CsvImportError, parse_csv

# RFC 5321 limits, which validated_email enforces (254 characters, 64 before the '@').
EMAILS = st.emails().filter(lambda e: len(e) <= 254 and len(e.split("@")[0]) <= 64)
NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40).filter(
    lambda s: not s.strip() or s.strip()[0] not in "=+@")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_are_rows_or_one_clear_error(data: bytes) -> None:
    try:
        rows = parse_csv(data)
    except CsvImportError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert all(line >= 2 for line, _ in rows)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(EMAILS, NAMES), min_size=1, max_size=20),
       st.sampled_from([",", ";"]), st.booleans())
def test_a_spreadsheet_export_round_trips(people: list[tuple[str, str]], delimiter: str,
                                          bom: bool) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(["email", "name"])
    for email, name in people:
        writer.writerow([f"  {email.upper()} ", name])
    data = ("\ufeff" if bom else "") + out.getvalue()
    rows = parse_csv(data.encode("utf-8"))
    assert len(rows) == len(people)
    for (_line, req), (email, name) in zip(rows, people, strict=True):
        assert normalise_email(req.email or "") == normalise_email(email)
        assert (req.name or "") == " ".join(name.split()) or (req.name or "") == name.strip()


@given(EMAILS, st.text(" \t", max_size=3), st.text(" \t", max_size=3))
def test_email_normalisation_is_idempotent_and_ignores_case_and_padding(email: str, left: str,
                                                                        right: str) -> None:
    once = normalise_email(email)
    assert normalise_email(once) == once
    assert normalise_email(left + email.swapcase() + right) == normalise_email(email.upper())
    assert validated_email(left + email + right) == once
