"""The state table and the reasons it records."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.states import TRANSITIONS, State, safe_reason


def test_terminal_states_go_nowhere_and_stored_only_to_purged() -> None:
    # A blocked recording is never processed again; only its metadata is purged, in time.
    assert TRANSITIONS[State.BLOCKED] == frozenset({State.PURGED})
    assert TRANSITIONS[State.PURGED] == frozenset()
    assert TRANSITIONS[State.STORED] == frozenset({State.PURGED})
    # Nothing reaches `stored` except through transcription.
    assert [s for s, targets in TRANSITIONS.items() if State.STORED in targets] == [
        State.TRANSCRIBING]


def test_reasons_never_carry_an_address() -> None:
    # A database error names the connection's user@host: it must not reach the audit log.
    reason = safe_reason("DatabaseError: cannot use the database at "
                         "postgresql+psycopg://postgres@127.0.0.1:5432/test: terminating")
    assert "@" not in reason and reason.startswith("DatabaseError: cannot use the database")
    assert safe_reason("opted out (1 opt-out)") == "opted out (1 opt-out)"


@given(st.emails(), st.text(max_size=50), st.text(max_size=50))
def test_any_address_in_a_reason_is_masked(email: str, before: str, after: str) -> None:
    masked = safe_reason(f"{before} {email} {after}")
    assert email not in masked and len(masked) <= 500
