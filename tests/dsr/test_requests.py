"""The request log: references, due dates, overdue, closing; and who a request is about."""

from __future__ import annotations

from datetime import timedelta

import pytest

from meeting_governance import dsr
from meeting_governance.context import AppContext
from meeting_governance.errors import InputError, NotFoundError

from .helpers import ALICE, CAROL_OID


def test_references_due_dates_and_overdue(app: AppContext) -> None:
    now = app.clock.now()
    with app.session() as session:
        late = dsr.open_request(app, session, "access", email=ALICE,
                                received_at=now - timedelta(days=40))
        fresh = dsr.open_request(app, session, "erasure", object_id=CAROL_OID)
        named = dsr.open_request(app, session, "rectification", email=ALICE,
                                 reference="case-17")
    year = (now - timedelta(days=40)).year
    assert late.reference == f"DSR-{year}-0001"
    assert fresh.reference.startswith(f"DSR-{now.year}-")
    assert named.reference == "case-17"
    due = app.settings.dsr.due_days
    assert late.due_at == late.received_at + timedelta(days=due)
    assert fresh.due_at == fresh.received_at + timedelta(days=due)
    assert late.subject_blind == app.vault.blind_email(ALICE)  # the subject only as a blind value
    with app.session() as session:
        overdue = dsr.list_requests(app, session, overdue=True)
        assert [v.reference for v in overdue] == [late.reference]
        assert overdue[0].overdue and overdue[0].days_left < 0
        everything = dsr.list_requests(app, session)
        assert len(everything) == 3 and not any(v.overdue for v in everything[1:])
        dsr.close_request(app, session, late.reference)
    with app.session() as session:
        assert dsr.list_requests(app, session, overdue=True) == []
        assert len(dsr.list_requests(app, session, open_only=True)) == 2
        with pytest.raises(InputError, match="already closed"):
            dsr.close_request(app, session, late.reference)
        with pytest.raises(NotFoundError):
            dsr.close_request(app, session, "DSR-1999-0001")


def test_duplicate_reference_and_bad_kind(app: AppContext) -> None:
    with app.session() as session:
        dsr.open_request(app, session, "access", email=ALICE, reference="R-1")
    with app.session() as session, pytest.raises(InputError, match="already in the log"):
        dsr.open_request(app, session, "access", email=ALICE, reference="R-1")
    with app.session() as session, pytest.raises(InputError, match="kind"):
        dsr.open_request(app, session, "complaint", email=ALICE)
    with app.session() as session, pytest.raises(InputError, match="future"):
        dsr.open_request(app, session, "access", email=ALICE,
                         received_at=app.clock.now() + timedelta(days=2))


@pytest.mark.parametrize("email, object_id, message", [
    (None, None, "say whose data"),
    ("", "  ", "say whose data"),
    (ALICE, CAROL_OID, "not both"),
    ("not-an-address", None, "not an e-mail address"),
    (None, "1234", "not an Entra object id"),
])
def test_subject_needs_exactly_one_valid_identity(email: str | None, object_id: str | None,
                                                  message: str) -> None:
    with pytest.raises(InputError, match=message):
        dsr.subject(email, object_id)


def test_subject_is_normalised() -> None:
    assert dsr.subject("  Alice.Liddell@EXAMPLE.org ").email == ALICE
    assert dsr.subject(None, "{" + CAROL_OID.upper() + "}").object_id == CAROL_OID
