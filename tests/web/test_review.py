"""The review step, as a coordinator with no training reads it: what saving does and cannot do,
what is left to them, and the warnings decided from the link and the registry (another
organisation's meeting, a meeting already recorded, dates in the past, a duplicate). Also the
form's own manners: dates as the hint shows them, over-long values reported, the site's own
page for a too-large request."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meeting_governance import optouts
from meeting_governance.models import Recording

from .conftest import JOIN_LINK, Web, csrf_from

LINK_TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the Tid in JOIN_LINK's context
LINK_ORGANISER = "1e9d3b2a-0000-4c44-9a39-1234567890ab"  # its Oid
THREAD = "19:meeting_NjA5YTQ4ZjMtY2VhMy00ZDU0LWE0NjEtNmE0ZjY3ZmM5Y2Ex@thread.v2"


def review_page(client: TestClient, **fields: str) -> Any:
    token = csrf_from(client.get("/optouts/new").text)
    data = {"csrf_token": token, "step": "review", "scope": "all", "covers_recording": "true",
            "covers_transcription": "true", **fields}
    return client.post("/optouts", data=data)


def text_of(html: str) -> str:
    """The page as read: tags out, entities for quotes back, spaces collapsed."""
    plain = re.sub(r"<[^>]+>", " ", html).replace("&#39;", "'").replace("&quot;", '"')
    return " ".join(plain.split())


def test_review_says_what_it_does_cannot_do_and_what_is_left(web: Web) -> None:
    page = review_page(web.as_role("coordinator"), email="ann@example.org", name="Ann")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "refuse to download and to transcribe the Teams recording of every meeting" in text
    assert "It cannot stop Teams from recording" in text
    assert "Tell the meeting's organiser, before the meeting" in text
    assert "data protection officer" in text
    assert "will not be recorded" not in text  # the old, untrue promise


def test_foreign_tenant_is_warned_from_the_link_itself(make_web: Callable[..., Web]) -> None:
    ours = "0c1d2e3f-4a5b-4c6d-8e7f-8091a2b3c4d5"
    web = make_web(graph={"tenant_id": ours})
    text = text_of(review_page(web.as_role("coordinator"), email="ann@example.org",
                               scope="meeting", meeting=JOIN_LINK).text)
    assert "This link belongs to another organisation's Teams" in text
    assert LINK_TENANT in text and ours in text
    same = make_web(graph={"tenant_id": LINK_TENANT.upper()})
    text = text_of(review_page(same.as_role("coordinator"), email="ann@example.org",
                               scope="meeting", meeting=JOIN_LINK).text)
    assert "another organisation" not in text and "Organisation Yours" in text


def test_offline_the_meeting_details_could_not_be_checked(web: Web) -> None:
    text = text_of(review_page(web.as_role("coordinator"), email="ann@example.org",
                               scope="meeting", meeting=JOIN_LINK).text)
    assert "could not be checked" in text
    assert "Compare the link with the invitation" in text
    assert THREAD in text and "19%3ameeting" not in text  # the link decoded, as people read it
    # the default tenant is configured by name: the page says it cannot compare
    assert "so it cannot tell whether that is yours" in text
    assert '"Tid"' not in text  # the link's query is not shown, only what names the meeting


def _meeting_id(organiser: str, thread: str) -> str:
    return base64.b64encode(f"1*{organiser}*0**{thread}".encode()).decode()


def test_a_meeting_already_recorded_is_said_so(web: Web) -> None:
    with web.ctx.session() as db:
        for i, day in enumerate((3, 10)):
            db.add(Recording(graph_recording_id=f"rec-{i}", meeting_id=_meeting_id(LINK_ORGANISER, THREAD),
                             organizer_id=LINK_ORGANISER, state="stored",
                             meeting_start=datetime(2026, 3, day, 9, tzinfo=UTC)))
        db.add(Recording(graph_recording_id="other", organizer_id=LINK_ORGANISER,
                         meeting_id=_meeting_id(LINK_ORGANISER, "19:meeting_other@thread.v2"),
                         meeting_start=datetime(2026, 4, 1, tzinfo=UTC)))
    text = text_of(review_page(web.as_role("coordinator"), email="ann@example.org",
                               scope="meeting", meeting=JOIN_LINK).text)
    assert "This meeting has already taken place: 2 recordings of it were seen here" in text
    assert "the latest from 2026-03-10 09:00 UTC" in text
    assert "transcripts already made stay" in text


def test_a_date_range_in_the_past_is_said_so(web: Web) -> None:
    text = text_of(review_page(web.as_role("coordinator"), email="ann@example.org",
                               scope="range", valid_from="2020-01-01",
                               valid_until="2020-01-31").text)
    assert "The last day is in the past" in text
    future = text_of(review_page(web.as_role("coordinator"), email="ann@example.org",
                                 scope="range", valid_from="2020-01-01",
                                 valid_until="2999-01-31").text)
    assert "The last day is in the past" not in future


def _add(web: Web, **fields: Any) -> str:
    with web.ctx.session() as db:
        return optouts.add_optout(web.ctx, db, optouts.OptOutRequest(**fields), actor="test").id


def test_a_duplicate_is_shown_before_saving(web: Web) -> None:
    everything = _add(web, object_id=LINK_ORGANISER.replace("1e9d", "2f0e"),
                      email="Ann@Example.org")
    client = web.as_role("coordinator")
    # Same person by address (any case), one meeting: the all-meetings opt-out covers it.
    text = text_of(review_page(client, email="ann@EXAMPLE.org", scope="meeting",
                               meeting=JOIN_LINK).text)
    assert "This person already has an active opt-out that covers this" in text
    assert f"/optouts/{everything}" in review_page(client, email="ann@example.org").text
    # Someone else: nothing to say.
    other = text_of(review_page(client, email="bob@example.org").text)
    assert "already has" not in other


def test_narrower_or_partial_opt_outs_are_listed_not_called_duplicates(web: Web) -> None:
    recording_only = _add(web, email="cy@example.org", covers_transcription=False)
    in_may = _add(web, email="cy@example.org",
                  valid_from=datetime(2026, 5, 1, tzinfo=UTC),
                  valid_until=datetime(2026, 5, 31, 23, 59, tzinfo=UTC))
    client = web.as_role("coordinator")
    page = review_page(client, email="cy@example.org", scope="range", valid_from="2026-05-10",
                       valid_until="2026-06-10").text
    text = text_of(page)
    assert "covers this" not in text  # recording only, and May only: not the whole request
    assert "Opt-outs this person already has" in text
    assert f"/optouts/{recording_only}" in page and f"/optouts/{in_may}" in page
    inside = text_of(review_page(client, email="cy@example.org", scope="range",
                                 valid_from="2026-05-10", valid_until="2026-05-20",
                                 covers_transcription="").text)
    assert "already has an active opt-out that covers this" in inside


def test_revoked_opt_outs_are_not_duplicates(web: Web) -> None:
    old = _add(web, email="dee@example.org")
    with web.ctx.session() as db:
        optouts.revoke_optout(web.ctx, db, old, actor="test", reason="asked")
    text = text_of(review_page(web.as_role("coordinator"), email="dee@example.org").text)
    assert "already has" not in text


@pytest.mark.parametrize("typed", ["2026-05-14", "2026-5-14", "2026/05/14", "2026.5.14",
                                   " 2026 - 05 - 14 "])
def test_dates_as_the_hint_shows_them(web: Web, typed: str) -> None:
    page = review_page(web.as_role("coordinator"), email="ann@example.org", scope="range",
                       valid_from=typed, valid_until="2026-05-31")
    assert page.status_code == 200, page.text
    assert "every meeting from 2026-05-14 to 2026-05-31" in text_of(page.text)


def test_the_form_page_says_the_date_format_and_cuts_nothing(web: Web) -> None:
    html = web.as_role("coordinator").get("/optouts/new").text
    assert "Year-month-day, for example 2026-05-14." in html
    assert 'type="date"' not in html  # the browser's own picker shows another format
    assert "maxlength" not in html  # a browser would cut a pasted value silently


@pytest.mark.parametrize(("field", "limit"), [("meeting", 4000), ("name", 200), ("note", 2000),
                                              ("email", 320)])
def test_an_over_long_value_is_reported_whole(web: Web, field: str, limit: int) -> None:
    value = "x" * (limit + 37)
    fields = {"email": "ann@example.org", field: value}
    if field == "meeting":
        fields["scope"] = "meeting"
    response = review_page(web.as_role("coordinator"), **fields)
    assert response.status_code == 422
    text = text_of(response.text)
    assert f"Too long: {limit + 37:,} characters, at most {limit:,}. Nothing was cut off." in text
    assert value in response.text  # shown again in full, to be corrected


def test_failed_submit_focuses_the_error_summary(web: Web) -> None:
    response = review_page(web.as_role("coordinator"), email="not-an-address")
    summary = re.search(r'<div class="error-summary"[^>]*>', response.text)
    assert summary and "autofocus" in summary.group(0) and 'tabindex="-1"' in summary.group(0)


def test_too_large_a_request_gets_the_sites_own_page(make_web: Callable[..., Web]) -> None:
    web = make_web(web={"max_upload_bytes": 4096})
    client = web.as_role("coordinator")
    token = web.token(client)
    response = client.post("/optouts/import", headers={"X-CSRF-Token": token},
                           files={"file": ("big.csv", "email\n" + "x@example.org\n" * 20_000,
                                           "text/csv")})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert '<a class="skip-link" href="#main">' in response.text  # the site's layout
    text = text_of(response.text)
    assert "Too large: this site accepts at most 4 KB in one request" in text
    assert "Split a CSV file into smaller files" in text
    api = client.post("/api/optouts", content=b"{" + b" " * 200_000 + b"}",
                      headers={"X-CSRF-Token": token, "content-type": "application/json"})
    assert api.status_code == 413 and api.json()["detail"].startswith("Too large")
