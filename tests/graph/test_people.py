"""A person is every identifier the directory knows: participants resolved for the gate (cached
as blind values, asked again when stale), opt-outs resolved for matching and refreshed on the
daemon's schedule (only ever adding), and data subjects for access, erasure and holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from meeting_governance.clock import FixedClock
from meeting_governance.context import AppContext
from meeting_governance.errors import InputError
from meeting_governance.identity import Participant, ParticipantKind
from meeting_governance.models import IdentityCache, OptOut
from meeting_governance.optout_identities import refresh
from meeting_governance.optouts import MeetingRef, OptOutRequest, add_optout, matching
from meeting_governance.people import (
    person_identity,
    resolve_participants,
    resolve_registration,
)
from mg_emulator import Person

from .emulator_scenario import JANE, LEE, LEE_UPN

MEETING = MeetingRef("MSo-some-meeting", None, datetime(2026, 11, 2, 9, tzinfo=UTC),
                     datetime(2026, 11, 2, 10, tzinfo=UTC))
NOBODY = "c0000000-0000-4000-8000-0000000000ff"


def _user(**kw: str | None) -> Participant:
    return Participant.make(kind=ParticipantKind.USER, **kw)  # type: ignore[arg-type]


def _opt_out(app: AppContext, **fields: str) -> str:
    with app.session() as session:
        return add_optout(app, session, OptOutRequest(**fields), actor="coordinator").id


def _matches(app: AppContext, people: list[Participant], blinds: frozenset[str]) -> set[str]:
    with app.session() as session:
        return {o.id for o in matching(app, session, people, MEETING, blinds=blinds)}


def test_participants_are_resolved_to_every_identifier(app, client):
    jane = _user(email="Jane.Smith@contoso.example")           # primary address only
    lee = _user(object_id=LEE, email=LEE_UPN)                  # guest: oid and #EXT# UPN
    stranger = _user(object_id=NOBODY)                         # not in this directory
    visitor = Participant.make(kind=ParticipantKind.ANONYMOUS, display_name="Visitor")
    got = resolve_participants(app, client, [jane, lee, stranger, visitor])
    by_oid = {p.object_id: p for p in got.participants}
    assert by_oid[JANE].resolved and by_oid[JANE].kind is ParticipantKind.USER
    assert by_oid[LEE].resolved and by_oid[LEE].kind is ParticipantKind.GUEST
    assert not by_oid[NOBODY].resolved and got.unresolved == 1
    assert got.failure is None  # "not found" is an answer, not a failure
    vault = app.vault
    for address in ("j.smith@contoso.example", "jane@home.example", "lee@northwind.example"):
        assert vault.blind_email(address) in got.blinds
    assert vault.blind_object_id(JANE) in got.blinds  # found by address, known by id too
    assert vault.blind_object_id(NOBODY) in got.blinds  # unresolved ids still match opt-outs


def test_an_opt_out_under_an_alias_matches_a_participant_seen_by_object_id_only(app, client):
    alias = _opt_out(app, email="j.smith@contoso.example")
    seen = [_user(object_id=JANE)]
    assert _matches(app, seen, frozenset()) == set()  # what the gate saw before this issue
    got = resolve_participants(app, client, seen)
    assert _matches(app, list(got.participants), got.blinds) == {alias}


def test_an_opt_out_by_object_id_matches_a_participant_seen_by_an_address_only(app, client):
    by_oid = _opt_out(app, object_id=JANE)
    seen = [_user(email="jane@home.example")]  # her other mail, no object id
    assert _matches(app, seen, frozenset()) == set()
    got = resolve_participants(app, client, seen)
    assert got.participants[0].object_id == JANE  # named by the directory
    assert _matches(app, list(got.participants), got.blinds) == {by_oid}


def test_lookups_are_cached_as_blind_values_and_asked_again_when_stale(app, client):
    clock = FixedClock(datetime(2026, 11, 20, 9, tzinfo=UTC))
    app.clock = clock
    people = [_user(object_id=JANE), _user(email="lee@northwind.example")]
    first = resolve_participants(app, client, people)
    assert first.lookups == 2 and first.cache_hits == 0
    calls = client.calls["directory"]
    again = resolve_participants(app, client, people)
    assert again.cache_hits == 2 and client.calls["directory"] == calls  # no Graph call
    assert again.blinds == first.blinds
    with app.session() as session:
        rows = session.exec(select(IdentityCache)).all()
    assert rows and all("@" not in r.identifiers and "@" not in r.key_blind for r in rows)
    clock.advance(app.settings.directory_max_age + timedelta(minutes=1))
    stale = resolve_participants(app, client, people)
    assert stale.cache_hits == 0 and client.calls["directory"] == calls + 1


def test_a_directory_that_cannot_be_read_leaves_everyone_unresolved(emulator, app, make_client):
    client = make_client(max_retries=1)
    emulator.faults.set(unavailable_count=50, match="$batch")
    got = resolve_participants(app, client, [_user(object_id=JANE), _user(email="x@y.example")])
    assert got.unresolved == 2 and not any(p.resolved for p in got.participants)
    assert got.failure and "could not be read" in got.failure and "@" not in got.failure


def test_what_a_coordinator_is_shown(app, client):
    member = resolve_registration(app, client, email="j.smith@contoso.example")
    assert member.status == "found" and member.who.kind == "member"
    assert member.who.display_name == "Jane Smith" and member.who.identifiers == 4
    guest = resolve_registration(app, client, email="lee@northwind.example")
    assert guest.who.description == "guest from northwind.example"
    nobody = resolve_registration(app, client, email="someone@elsewhere.example")
    assert nobody.status == "not_found" and nobody.who.identifiers == 1
    assert nobody.who.description == "not found in the directory — matched by this address only"
    shared = resolve_registration(app, client, email="team@contoso.example")
    assert shared.status == "ambiguous" and "3 directory accounts" in shared.who.description


def test_a_registered_opt_out_stores_every_identifier_and_audits_no_address(app, client):
    registration = resolve_registration(app, client, email="lee@northwind.example")
    with app.session() as session:
        view = add_optout(app, session, OptOutRequest(email="lee@northwind.example"),
                          actor="coordinator", registration=registration)
        row = session.get(OptOut, view.id)
        assert row is not None and row.resolution == "found" and row.resolved_at
    # The guest, seen by their #EXT# UPN only and no object id, is matched straight away.
    seen = [_user(email=LEE_UPN)]
    assert _matches(app, seen, frozenset()) == {view.id}


def test_refresh_only_ever_adds_identifiers(emulator, app, client):
    """People gain and lose aliases: an opt-out keeps the person it was registered for, and an
    alias handed on blocks its new owner too (more, never less)."""
    alias = _opt_out(app, email="j.smith@contoso.example")  # not resolved yet (no directory)
    report = refresh(app, client)
    assert report.examined == 1 and report.identifiers_added >= 3 and report.error is None
    emulator.set_person(Person(id=JANE, display_name="Jane Smith", upn="jane.smith@contoso.example",
                               mail="jane.smith@contoso.example"))  # the alias is gone
    bob = "c0000000-0000-4000-8000-0000000000b0"
    emulator.set_person(Person(id=bob, display_name="Bob", upn="bob@contoso.example",
                               mail="bob@contoso.example",
                               proxy_addresses=("smtp:j.smith@contoso.example",)))
    app.clock = FixedClock(datetime.now(UTC) + app.settings.directory_max_age * 2)
    refresh(app, client)
    assert _matches(app, [_user(object_id=JANE)], frozenset()) == {alias}
    assert _matches(app, [_user(object_id=bob)], frozenset()) == {alias}


def test_refresh_with_the_directory_down_changes_nothing(emulator, app, make_client):
    _opt_out(app, email="j.smith@contoso.example")
    emulator.faults.set(unavailable_count=50, match="$batch")
    report = refresh(app, make_client(max_retries=0))
    assert report.error and report.identifiers_added == 0
    with app.session() as session:
        assert session.exec(select(OptOut)).one().resolution == "pending"


def test_a_data_subject_is_every_identifier_of_one_account(app, client):
    jane = person_identity(app, email="jane@home.example", graph=client)
    assert jane.live and app.vault.blind_object_id(JANE) in jane.blinds
    assert app.vault.blind_email("j.smith@contoso.example") in jane.blinds
    offline = person_identity(app, email="jane@home.example")
    assert offline.blinds == (app.vault.blind_email("jane@home.example"),)
    assert "offline" in offline.note
    with pytest.raises(InputError, match="object-id"):
        person_identity(app, email="team@contoso.example", graph=client)
