"""What Graph tells the pages is shown, never kept: after a coordinator reviewed and saved
opt-outs (a person resolved by alias, a meeting by its long and short link) and a DPO found,
exported and erased that person through the directory, no display name, meeting subject,
organiser or address is in the database file (WAL included), anywhere under the data
directory, or in any log line of the server."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import scan_for

from ..dsr.helpers import make_transcript, person
from .conftest import Web, csrf_from
from .directory_scenario import (
    LEE_NAME,
    LEE_OWN,
    MARGARET_ALIAS,
    MARGARET_NAME,
    MARGARET_OTHER,
    MARGARET_PRIMARY,
    ORGANISER_NAME,
    PAST_SUBJECT,
    PLANNING_LINK,
    PLANNING_SHORT,
    SUBJECT,
)
from .test_review import review_page
from .test_review_directory import save

SECRETS = [MARGARET_NAME, "Hamilton", MARGARET_PRIMARY, MARGARET_ALIAS, MARGARET_OTHER,
           LEE_NAME, LEE_OWN, SUBJECT, "Osprey", PAST_SUBJECT, ORGANISER_NAME,
           "katherine.johnson@contoso.example"]


def test_nothing_graph_said_is_stored_or_logged(graph_web: Web,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    make_transcript(graph_web.ctx, words=["budget"], meeting_id="m-1",
                    people=[person(email=MARGARET_ALIAS)])
    coordinator = graph_web.as_role("coordinator")
    for fields in ({"email": MARGARET_ALIAS, "scope": "meeting", "meeting": PLANNING_LINK},
                   {"email": LEE_OWN, "scope": "meeting", "meeting": PLANNING_SHORT}):
        review = review_page(coordinator, **fields)
        shown = review.text
        assert MARGARET_NAME in shown or LEE_NAME in shown  # it was there to be found
        assert SUBJECT in shown and ORGANISER_NAME in shown
        assert save(coordinator, review).status_code == 303
    headers = {"X-CSRF-Token": graph_web.token(coordinator)}
    assert coordinator.post("/api/optouts/review", headers=headers,
                            json={"email": MARGARET_OTHER, "meeting": PLANNING_SHORT}
                            ).json()["person"]["display_name"] == MARGARET_NAME
    dpo = graph_web.as_role("dpo")
    token = csrf_from(dpo.get("/dpo/person").text)
    for path in ("/dpo/person", "/dpo/person/export", "/dpo/person/erase"):
        assert dpo.post(path, data={"csrf_token": token, "who": MARGARET_PRIMARY}
                        ).status_code == 200, path
    graph_web.ctx.engine.dispose()  # whatever is in the WAL stays in the files scanned
    home = graph_web.ctx.settings.home
    assert list(home.rglob("*.db")), "no database file to scan"
    assert scan_for(home, [s.encode() for s in SECRETS]) == []
    records = [r for r in caplog.records if not r.name.startswith("httpx")]
    assert any(r.name.startswith("meeting_governance.web") for r in records)
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in records).lower()
    for secret in SECRETS:
        assert secret.lower() not in logged, secret
