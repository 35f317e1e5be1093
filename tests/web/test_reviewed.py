"""The review token, on its own: it opens only in the session and for the request it was made
for, within its age, unforged; it carries the directory's answer without a name or an address
in it (encrypted, and the plaintext holds only keyed hashes)."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime, timedelta

from cryptography.fernet import Fernet

from meeting_governance.optouts import OptOutRequest
from meeting_governance.people import Registration, WhoIs
from meeting_governance.web.reviewed import REVIEW_MAX_AGE_S, ReviewSeal
from meeting_governance.web.sessions import derive_key

SECRET = os.urandom(32)
NOW = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
REQ = OptOutRequest(email="Ada@Example.org", name="Ada Lovelace", note="asked by phone")
BLINDS = frozenset({"a" * 64, "b" * 64, "c" * 64})
FOUND = Registration("found", BLINDS, WhoIs("member", "Ada Lovelace", "member of this "
                                            "organisation", 3))


def test_it_opens_in_its_session_for_its_request_within_its_age() -> None:
    seal = ReviewSeal(SECRET)
    token = seal.seal(REQ, session_csrf="csrf-1", registration=FOUND, now=NOW)
    opened = seal.open(token, REQ, session_csrf="csrf-1",
                       now=NOW + timedelta(seconds=REVIEW_MAX_AGE_S - 1))
    assert opened is not None and opened.registration is not None
    assert opened.registration.status == "found" and opened.registration.blinds == BLINDS
    assert opened.registration.who.display_name is None  # the name never travelled
    # The same address typed in another case is the same request.
    same = OptOutRequest(email="ada@example.org", name="Ada Lovelace", note="asked by phone")
    assert seal.open(token, same, session_csrf="csrf-1", now=NOW) is not None


def test_it_refuses_another_session_request_age_key_or_a_forgery() -> None:
    seal = ReviewSeal(SECRET)
    token = seal.seal(REQ, session_csrf="csrf-1", registration=FOUND, now=NOW)
    assert seal.open(token, REQ, session_csrf="csrf-2", now=NOW) is None
    for changed in (OptOutRequest(email="bob@example.org", name="Ada Lovelace",
                                  note="asked by phone"),
                    OptOutRequest(email="ada@example.org", name="Ada Lovelace", note="other"),
                    OptOutRequest(email="ada@example.org", name="Ada Lovelace",
                                  note="asked by phone", covers_recording=False)):
        assert seal.open(token, changed, session_csrf="csrf-1", now=NOW) is None
    assert seal.open(token, REQ, session_csrf="csrf-1",
                     now=NOW + timedelta(seconds=REVIEW_MAX_AGE_S + 1)) is None
    assert ReviewSeal(os.urandom(32)).open(token, REQ, session_csrf="csrf-1", now=NOW) is None
    for bad in ("", "garbage", token[:-3] + "abc", "A" * 20_000, "A" * 300_000):
        assert seal.open(bad, REQ, session_csrf="csrf-1", now=NOW) is None


def test_no_answer_is_carried_as_none_and_nothing_personal_is_inside() -> None:
    seal = ReviewSeal(SECRET)
    unchecked = seal.seal(REQ, session_csrf="csrf-1", registration=None, now=NOW)
    opened = seal.open(unchecked, REQ, session_csrf="csrf-1", now=NOW)
    assert opened is not None and opened.registration is None
    token = seal.seal(REQ, session_csrf="csrf-1", registration=FOUND, now=NOW)
    plain = Fernet(base64.urlsafe_b64encode(derive_key(SECRET, "opt-out review"))).decrypt(
        token.encode())
    payload = json.loads(plain)
    assert set(payload) == {"request", "session", "answer"}
    text = plain.decode().lower()
    for secret in ("ada@", "example.org", "lovelace", "phone", "csrf-1"):  # hex has no "@"
        assert secret not in text, secret


def test_a_person_with_thousands_of_identifiers_still_fits() -> None:
    many = frozenset(f"{n:064x}" for n in range(2500))
    seal = ReviewSeal(SECRET)
    token = seal.seal(REQ, session_csrf="csrf-1", now=NOW,
                      registration=Registration("found", many, WhoIs("member", None, "", 2500)))
    opened = seal.open(token, REQ, session_csrf="csrf-1", now=NOW)
    assert opened is not None and opened.registration is not None
    assert opened.registration.blinds == many
