"""The DPO desk covers every identifier of a person, as `dsr export|erase|withdraw` do: the
person is asked of the directory (the Graph emulator, over loopback HTTPS), so Margaret found by
her primary address brings the meetings where Teams listed her by alias or by object id only;
an address several accounts share is refused; when the directory cannot be read nothing is done
until the DPO chooses to search by the address given only, and every result says so."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from meeting_governance import holds, optouts
from meeting_governance.identity import Participant
from meeting_governance.models import OptOut, Transcript
from mg_emulator import EmulatorServer

from ..dsr.helpers import make_transcript, person
from .conftest import Web, csrf_from
from .directory_scenario import (
    MARGARET,
    MARGARET_ALIAS,
    MARGARET_NAME,
    MARGARET_OTHER,
    MARGARET_PRIMARY,
    SHARED,
)
from .test_review import text_of


@pytest.fixture
def seeded(graph_web: Web) -> dict[str, str]:
    """Teams listed Margaret by her alias in one meeting, by object id only in another; a
    third meeting is someone else's."""
    ctx = graph_web.ctx
    return {
        "alias": make_transcript(ctx, words=["osprey budget"], meeting_id="m-alias",
                                 people=[person(email=MARGARET_ALIAS)]).id,
        "oid": make_transcript(ctx, words=["osprey hiring"], meeting_id="m-oid",
                               people=[person(object_id=MARGARET)]).id,
        "other": make_transcript(ctx, words=["unrelated"], meeting_id="m-other",
                                 people=[person(email="someone.else@contoso.example")]).id,
    }


def _post(client: TestClient, path: str, **form: str) -> Any:
    token = csrf_from(client.get("/dpo/person").text)
    return client.post(path, data={"csrf_token": token, **form})


def test_find_by_the_primary_address_shows_every_meeting(graph_web: Web,
                                                        seeded: dict[str, str]) -> None:
    client = graph_web.as_role("dpo")
    page = _post(client, "/dpo/person", who=MARGARET_PRIMARY)
    text = text_of(page.text)
    assert page.status_code == 200
    assert f"Searched by every identifier the directory knows: {MARGARET_NAME} — member of " \
           "this organisation (4 identifiers)" in text
    assert seeded["alias"] in page.text and seeded["oid"] in page.text
    assert seeded["other"] not in page.text
    assert 'name="only_given"' not in page.text  # the actions ask the directory too


def test_export_and_erase_cover_every_identifier(graph_web: Web,
                                                 seeded: dict[str, str]) -> None:
    client = graph_web.as_role("dpo")
    export = _post(client, "/dpo/person/export", who=MARGARET_OTHER)
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(export.content)).read("manifest.json"))
    assert {m["transcript_id"] for m in manifest["meetings"]} == {seeded["alias"], seeded["oid"]}
    assert "every identifier the directory knows" in manifest["how_identifiers_were_found"]
    review = _post(client, "/dpo/person/erase", who=MARGARET)  # by object id
    assert "2 transcripts will be erased" in text_of(review.text)
    assert "Searched by every identifier the directory knows" in text_of(review.text)
    expected = re.search(r'name="expected" value="([0-9a-f]+)"', review.text)
    assert expected is not None
    done = _post(client, "/dpo/person/erase", who=MARGARET, step="confirm",
                 expected=expected.group(1))
    assert "2 transcripts were erased" in text_of(done.text)
    with graph_web.ctx.session() as db:
        purged = {t.id for t in db.exec(select(Transcript)).all() if t.purged_at is not None}
    assert purged == {seeded["alias"], seeded["oid"]}


def test_withdrawal_and_a_person_hold_cover_every_identifier(graph_web: Web,
                                                            seeded: dict[str, str]) -> None:
    client = graph_web.as_role("dpo")
    done = _post(client, "/dpo/person/withdraw", who=MARGARET_ALIAS)
    assert "Consent withdrawn under request" in done.text
    with graph_web.ctx.session() as db:
        row = db.exec(select(OptOut)).one()
        assert row.scope == "all" and row.resolution == "found"
        blocked = optouts.matching(graph_web.ctx, db, [Participant.make(
            kind="user", object_id=MARGARET)], optouts.MeetingRef("any"))
    assert [v.id for v in blocked] == [row.id]
    token = csrf_from(client.get("/dpo/holds").text)
    held = client.post("/dpo/holds", data={"csrf_token": token, "kind": "person",
                                           "target": MARGARET_OTHER, "reason": "complaint 17"})
    assert held.status_code == 303
    with graph_web.ctx.session() as db:
        assert holds.is_held(db, seeded["alias"]) and holds.is_held(db, seeded["oid"])
        assert not holds.is_held(db, seeded["other"])


def test_a_shared_address_is_refused_naming_the_object_id(graph_web: Web) -> None:
    client = graph_web.as_role("dpo")
    for path in ("/dpo/person", "/dpo/person/export", "/dpo/person/erase",
                 "/dpo/person/withdraw"):
        response = _post(client, path, who=SHARED)
        assert response.status_code == 422, path
        assert "This address belongs to 2 accounts in the directory. Enter the person's " \
               "Entra object id instead" in text_of(response.text)
    token = csrf_from(client.get("/dpo/holds").text)
    hold = client.post("/dpo/holds", data={"csrf_token": token, "kind": "person",
                                           "target": SHARED, "reason": "complaint"})
    assert hold.status_code == 422 and "belongs to 2 accounts" in text_of(hold.text)
    with graph_web.ctx.session() as db:
        assert db.exec(select(OptOut)).all() == []


def test_an_unreadable_directory_offers_the_address_given_only(
        graph_web: Web, graph_emulator: EmulatorServer, seeded: dict[str, str]) -> None:
    client = graph_web.as_role("dpo")
    graph_emulator.faults.set(unavailable_count=100)
    page = _post(client, "/dpo/person", who=MARGARET_PRIMARY)
    text = text_of(page.text)
    assert "The directory could not be read" in text and "Nothing was done" in text
    assert "Microsoft Graph is busy and asked us to wait, so this person's other addresses" \
        in text
    assert seeded["alias"] not in page.text and "What is held" not in text
    for path in ("/dpo/person/export", "/dpo/person/erase", "/dpo/person/withdraw"):
        refused = _post(client, path, who=MARGARET_PRIMARY)
        assert refused.status_code == 503 and "The directory could not be read" in refused.text
    with graph_web.ctx.session() as db:
        assert db.exec(select(OptOut)).all() == []
    # The DPO chooses the address given: what is under her other identifiers is not found,
    # and the page says so; the actions keep that choice.
    chosen = _post(client, "/dpo/person", who=MARGARET_PRIMARY, only_given="true")
    text = text_of(chosen.text)
    assert "Searched offline by the identifier given only" in text
    assert seeded["alias"] not in chosen.text and seeded["oid"] not in chosen.text
    assert 'name="only_given" value="true"' in chosen.text
    export = _post(client, "/dpo/person/export", who=MARGARET_ALIAS, only_given="true")
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(export.content)).read("manifest.json"))
    assert [m["transcript_id"] for m in manifest["meetings"]] == [seeded["alias"]]
    assert "offline by the identifier given only" in manifest["how_identifiers_were_found"]
    token = csrf_from(client.get("/dpo/holds").text)
    hold = client.post("/dpo/holds", data={"csrf_token": token, "kind": "person",
                                           "target": MARGARET_PRIMARY, "reason": "complaint"})
    assert hold.status_code == 422 and 'name="only_given"' in hold.text
    assert "Hold by this identity only" in text_of(hold.text)
