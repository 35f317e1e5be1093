"""The audit chain on both engines: append, verify, and every way of rewriting history."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from meeting_governance import audit
from meeting_governance.clock import FixedClock
from meeting_governance.context import AppContext

from .conftest import raw


def append_many(app: AppContext, count: int) -> int:
    """Append `count` entries; return the seq of the last one."""
    with app.session() as session:
        for i in range(count):
            entry = audit.append(session, actor="test", action="test.event", target_type="thing",
                                 target_id=f"id-{i}", details={"n": i, "blind": "ab" * 32},
                                 clock=app.clock)
        return entry.seq


def test_append_and_verify(app: AppContext) -> None:
    initial = audit.verify(app.engine)
    assert initial.ok  # init's own entry
    last = append_many(app, 5)
    result = audit.verify(app.engine, batch=2)  # several batches
    assert result.ok and result.entries == last == initial.entries + 5
    with Session(app.engine) as session:
        assert audit.head_hash(session)[0] == last
        newest = audit.entries(session, limit=2)
        assert [e.seq for e in newest] == [last, last - 1]
        assert [e.target_id for e in audit.entries(session, target_id="id-3")] == ["id-3"]
        assert all(e.action == "test.event" for e in audit.entries(session, action="test.event"))


def test_entries_chain_to_each_other(app: AppContext) -> None:
    append_many(app, 3)
    with Session(app.engine) as session:
        rows = sorted(audit.entries(session, limit=10), key=lambda e: e.seq)
    assert rows[0].prev_hash == audit.GENESIS
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash


def test_context_audit_helper(app: AppContext) -> None:
    with app.session() as session:
        app.audit(session, "thing.done", target_type="thing", target_id="t1", count=3)
    with Session(app.engine) as session:
        entry = audit.entries(session, limit=1)[0]
    assert (entry.actor, entry.action, entry.details) == ("test", "thing.done", '{"count":3}')


def test_rolled_back_append_leaves_no_trace(app: AppContext) -> None:
    before = audit.verify(app.engine).entries
    with pytest.raises(RuntimeError), app.session() as session:
        audit.append(session, actor="test", action="x")
        raise RuntimeError("the audited change failed")
    result = audit.verify(app.engine)
    assert result.ok and result.entries == before


@pytest.mark.parametrize(("column", "value"), [
    ("details", '{"n":999}'),
    ("actor", "mallory"),
    ("action", "test.other"),
    ("target_id", "someone-else"),
    ("target_type", "other"),
])
def test_edited_entry_is_named(app: AppContext, column: str, value: str) -> None:
    last = append_many(app, 5)
    victim = last - 2
    raw(app, f"UPDATE audit_entry SET {column} = :v WHERE seq = :s", v=value, s=victim)
    result = audit.verify(app.engine)
    assert not result.ok
    assert result.first_bad_seq == victim
    assert f"entry {victim} was changed" in result.problem


def test_edited_time_is_detected(app: AppContext) -> None:
    last = append_many(app, 3)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    raw(app, "UPDATE audit_entry SET at = :at WHERE seq = :s",
        at=later.replace(tzinfo=None) if app.engine.dialect.name == "sqlite" else later, s=last)
    result = audit.verify(app.engine)
    assert not result.ok and result.first_bad_seq == last


def test_edit_with_recomputed_hash_is_caught_at_the_next_entry(app: AppContext) -> None:
    last = append_many(app, 4)
    victim = last - 1
    raw(app, "UPDATE audit_entry SET details = '{}', hash = :h WHERE seq = :s", h="f" * 64,
        s=victim)
    result = audit.verify(app.engine)
    assert not result.ok and result.first_bad_seq == victim  # its own hash no longer matches


def test_deleted_middle_entry_is_named(app: AppContext) -> None:
    last = append_many(app, 5)
    raw(app, "DELETE FROM audit_entry WHERE seq = :s", s=last - 2)
    result = audit.verify(app.engine)
    assert not result.ok
    assert result.first_bad_seq == last - 2
    assert "missing" in result.problem


def test_deleted_last_entry_is_detected_by_the_head(app: AppContext) -> None:
    last = append_many(app, 3)
    raw(app, "DELETE FROM audit_entry WHERE seq = :s", s=last)
    result = audit.verify(app.engine)
    assert not result.ok
    assert result.first_bad_seq == last
    assert "deleted" in result.problem


def test_deleted_first_entry_is_named(app: AppContext) -> None:
    append_many(app, 2)
    raw(app, "DELETE FROM audit_entry WHERE seq = 1")
    result = audit.verify(app.engine)
    assert not result.ok and result.first_bad_seq == 1


def test_reordered_entries_are_detected(app: AppContext) -> None:
    last = append_many(app, 5)
    a, b = last - 3, last - 1
    raw(app, "UPDATE audit_entry SET seq = -1 WHERE seq = :a", a=a)
    raw(app, "UPDATE audit_entry SET seq = :a WHERE seq = :b", a=a, b=b)
    raw(app, "UPDATE audit_entry SET seq = :b WHERE seq = -1", b=b)
    result = audit.verify(app.engine)
    assert not result.ok
    assert result.first_bad_seq == a


def test_missing_head_is_detected(app: AppContext) -> None:
    raw(app, "DELETE FROM audit_head")
    result = audit.verify(app.engine)
    assert not result.ok and "head" in result.problem


@pytest.mark.parametrize("details", [
    {"who": "alice@example.com"},
    {"who": "Contact: Alice <ALICE@Example.org>"},
    {"people": ["bob@example.com"]},
    {"nested": {"deeper": {"to": "carol@example.net"}}},
    {"carol@example.net": True},
])
def test_append_refuses_email_addresses(app: AppContext, details: dict[str, object]) -> None:
    before = audit.verify(app.engine).entries
    with pytest.raises(ValueError, match="e-mail address"), app.session() as session:
        audit.append(session, actor="test", action="x", details=details)
    assert audit.verify(app.engine).entries == before


def test_entry_time_is_stored_exactly(app: AppContext) -> None:
    clock = FixedClock(datetime(2026, 11, 25, 12, 0, 0, 999999, tzinfo=UTC))
    with app.session() as session:
        seq = audit.append(session, actor="t", action="x", clock=clock).seq
        clock.advance(timedelta(microseconds=1))
        audit.append(session, actor="t", action="x", clock=clock)
    with Session(app.engine) as session:
        entry = next(e for e in audit.entries(session) if e.seq == seq)
    assert entry.at == datetime(2026, 11, 25, 12, 0, 0, 999999, tzinfo=UTC)
    assert audit.verify(app.engine).ok


# -- the hash is a pure function of every field --------------------------------------------

FIELDS = ("prev_hash", "seq", "at", "actor", "action", "target_type", "target_id", "details")
texts = st.text(max_size=40)
instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC))
entry_fields = st.fixed_dictionaries({
    "prev_hash": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    "seq": st.integers(min_value=1, max_value=2**40),
    "at": instants, "actor": texts, "action": texts, "target_type": texts, "target_id": texts,
    "details": texts,
})
replacements = {"prev_hash": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
                "seq": st.integers(min_value=1, max_value=2**40), "at": instants}


@settings(max_examples=300, deadline=None)
@given(fields=entry_fields, which=st.sampled_from(FIELDS), data=st.data())
def test_entry_hash_changes_when_any_field_changes(fields: dict[str, object], which: str,
                                                   data: st.DataObject) -> None:
    new = data.draw(replacements.get(which, texts).filter(lambda v: v != fields[which]))
    digest = audit.entry_hash(**fields)
    assert digest == audit.entry_hash(**fields)
    assert len(digest) == 64
    assert audit.entry_hash(**{**fields, which: new}) != digest


@settings(max_examples=100, deadline=None)
@given(fields=entry_fields, a=texts, b=texts)
def test_fields_cannot_bleed_into_each_other(fields: dict[str, object], a: str, b: str) -> None:
    """Moving characters from one field to the next never gives the same hash (canonical JSON)."""
    if a + b == "" or b == "":
        return
    one = {**fields, "actor": a, "action": b}
    two = {**fields, "actor": a + b[0], "action": b[1:]}
    assert audit.entry_hash(**one) != audit.entry_hash(**two)


def test_entry_hash_ignores_the_time_zone_of_the_same_instant() -> None:
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    common = {"prev_hash": audit.GENESIS, "seq": 1, "actor": "a", "action": "b",
              "target_type": "", "target_id": "", "details": "{}"}
    assert audit.entry_hash(at=at, **common) == audit.entry_hash(
        at=at.astimezone(datetime.now().astimezone().tzinfo), **common)


def test_concurrent_appenders_never_fork_the_chain(app: AppContext) -> None:
    """Several threads, each with its own connection: the head lock queues them."""
    before = audit.verify(app.engine).entries
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(8):
                with app.session() as session:
                    audit.append(session, actor=f"worker-{n}", action="test.concurrent",
                                 target_id=str(i))
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    result = audit.verify(app.engine)
    assert result.ok, result.problem
    assert result.entries == before + 32
