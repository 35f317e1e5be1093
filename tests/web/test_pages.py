"""The coordinator's pages on the real app: add (review, confirm), list, search, revoke,
import; validation tied to fields; every echoed value escaped."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from meeting_governance import optouts

from .conftest import JOIN_LINK, Web, csrf_from, review_token_from

XSS = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def add_via_form(client: TestClient, **fields: str) -> str:
    """Fill in the form, review, confirm; returns the new opt-out's id."""
    token = csrf_from(client.get("/optouts/new").text)
    form = {"csrf_token": token, "scope": "all", "covers_recording": "true",
            "covers_transcription": "true", **fields}
    review = client.post("/optouts", data={**form, "step": "review"})
    assert review.status_code == 200, review.text
    assert "What saving it does" in review.text
    saved = client.post("/optouts", data={**form, "step": "confirm",
                                          "review_token": review_token_from(review.text)})
    assert saved.status_code == 303, saved.text
    match = re.fullmatch(r"/optouts/([0-9a-f]+)\?added=1", saved.headers["location"])
    assert match
    return match.group(1)


def search(client: TestClient, term: str) -> Any:
    """The list page's search form: a POST, so the term never appears in a URL."""
    token = csrf_from(client.get("/optouts").text)
    return client.post("/optouts/search", data={"csrf_token": token, "q": term})


def test_add_one_meeting_by_join_link_then_find_and_revoke(web_any: Web) -> None:
    web = web_any
    client = web.as_role("coordinator")
    optout_id = add_via_form(client, name="Grace Hopper", email="  Grace.Hopper@Example.ORG ",
                             scope="meeting", meeting=JOIN_LINK, note="asked by phone")
    detail = client.get(f"/optouts/{optout_id}?added=1").text
    assert "The opt-out was saved" in detail and "grace.hopper@example.org" in detail
    assert "One meeting" in detail and "Teams can still record" in detail
    # The link is shown decoded, not as percent-encoded noise.
    assert "19:meeting_NjA5YTQ4ZjMtY2VhMy00ZDU0LWE0NjEtNmE0ZjY3ZmM5Y2Ex@thread.v2" in detail
    listing = client.get("/optouts").text
    assert "Grace Hopper" in listing and "Active" in listing
    for term in ["grace hopper", "GRACE.HOPPER@example.org", optout_id]:
        found = search(client, term)
        assert found.status_code == 200 and f"/optouts/{optout_id}" in found.text, term
        assert "with exactly" in found.text
    partial = search(client, "grace")
    assert f"/optouts/{optout_id}" not in partial.text
    assert "This does not mean the person has no opt-out." in partial.text
    # Only a DPO revokes: the coordinator is told why and whom to ask.
    assert "Revoke this opt-out" not in detail
    assert "Only a data protection officer can revoke" in detail
    assert client.get(f"/optouts/{optout_id}/revoke").status_code == 403
    dpo = web.as_role("dpo")
    assert "Revoke this opt-out" in dpo.get(f"/optouts/{optout_id}").text
    confirm = dpo.get(f"/optouts/{optout_id}/revoke")
    assert "Revoke the opt-out for Grace Hopper?" in confirm.text
    assert "The person&#39;s confirmation" in confirm.text
    token = csrf_from(confirm.text)
    refused = dpo.post(f"/optouts/{optout_id}/revoke", data={"csrf_token": token, "reason": " "})
    assert refused.status_code == 422 and 'aria-describedby="reason-hint reason-error"' in refused.text
    done = dpo.post(f"/optouts/{optout_id}/revoke",
                    data={"csrf_token": token, "reason": "Grace asked by e-mail on 3 May"})
    assert done.status_code == 303
    assert "The opt-out was revoked." in dpo.get(done.headers["location"]).text
    assert "Revoked" in client.get(f"/optouts/{optout_id}").text
    trail = dpo.get(f"/optouts/{optout_id}").text
    assert "optout.add" in trail and "optout.revoke" in trail and "web:cora" in trail
    with web.ctx.session() as db:
        assert not optouts.get_optout(web.ctx, db, optout_id).active


def test_review_step_can_go_back_with_values_kept(web: Web) -> None:
    client = web.as_role("coordinator")
    token = csrf_from(client.get("/optouts/new").text)
    back = client.post("/optouts", data={"csrf_token": token, "step": "edit", "email": "a@b.org",
                                         "name": "Kept Name", "scope": "all",
                                         "covers_recording": "true"})
    assert back.status_code == 200
    assert 'value="Kept Name"' in back.text and 'value="a@b.org"' in back.text
    assert re.search(r'id="covers_recording" name="covers_recording" value="true" checked', back.text)
    assert re.search(r'id="covers_transcription" name="covers_transcription" value="true" aria',
                     back.text)


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"email": ""}, "email", "give an e-mail address or an Entra object id"),
    ({"email": "not-an-address"}, "email", "not an e-mail address"),
    ({"email": "a@b.org", "object_id": "nope"}, "object_id", "not an Entra object id"),
    ({"email": "a@b.org", "scope": "meeting", "meeting": ""}, "meeting", "Paste the meeting"),
    ({"email": "a@b.org", "scope": "meeting", "meeting": "https://evil.example/x"}, "meeting", ""),
    ({"email": "a@b.org", "scope": "range", "valid_from": "2026-05-02",
      "valid_until": "2026-05-01"}, "valid_until", "must not be before"),
    ({"email": "a@b.org", "scope": "range", "valid_from": "soon"}, "valid_from", "year-month-day"),
    ({"email": "a@b.org", "scope": "range", "valid_from": "05/04/2026",
      "valid_until": "2026-06-01"}, "valid_from", "for example 2026-05-14"),
    ({"email": "a@b.org", "scope": "range", "valid_from": "2026-02-30",
      "valid_until": "2026-06-01"}, "valid_from", "year-month-day"),
    ({"email": "a@b.org", "covers_recording": "", "covers_transcription": ""},
     "covers_recording", "cover recording, transcription or both"),
])
def test_errors_are_tied_to_their_fields(web: Web, fields: dict[str, str], field: str,
                                         message: str) -> None:
    client = web.as_role("coordinator")
    token = csrf_from(client.get("/optouts/new").text)
    data = {"csrf_token": token, "step": "confirm", "scope": "all", "covers_recording": "true",
            "covers_transcription": "true", **fields}
    data = {k: v for k, v in data.items() if not (k.startswith("covers") and v == "")}
    response = client.post("/optouts", data=data)
    assert response.status_code == 422
    html = response.text
    assert f'id="{field}-error"' in html
    assert re.search(rf'id="{field}"[^>]*aria-describedby="[^"]*{field}-error', html), html
    assert f'href="#{field}"' in html  # the error summary links to the field
    assert message in html
    with web.ctx.session() as db:
        assert optouts.list_optouts(web.ctx, db) == []


def test_stored_xss_is_shown_as_text_everywhere(web_any: Web) -> None:
    web = web_any
    client = web.as_role("admin")
    optout_id = add_via_form(client, name=XSS, email="x@example.org", note=XSS)
    token = csrf_from(client.get(f"/optouts/{optout_id}/revoke").text)
    client.post(f"/optouts/{optout_id}/revoke", data={"csrf_token": token, "reason": XSS})
    for path in ["/optouts", f"/optouts/{optout_id}", f"/optouts/{optout_id}/revoke"]:
        html = client.get(path).text
        assert XSS not in html, path
        assert ESCAPED in html, path
    html = search(client, XSS).text
    assert XSS not in html and ESCAPED in html
    # Echoed in the form after a validation error, and in the review step.
    token = csrf_from(client.get("/optouts/new").text)
    for step in ("review", "confirm"):
        html = client.post("/optouts", data={"csrf_token": token, "step": step, "name": XSS,
                                             "email": XSS, "note": XSS, "scope": "meeting",
                                             "meeting": XSS}).text
        assert XSS not in html and ESCAPED in html
    html = client.post("/optouts", data={"csrf_token": token, "step": "review", "name": XSS,
                                         "email": "y@example.org", "note": XSS}).text
    assert XSS not in html and ESCAPED in html
    # The user name on the sign-in page after a failed attempt.
    fresh = web.client()
    login_token = csrf_from(fresh.get("/login").text)
    html = fresh.post("/login", data={"csrf_token": login_token, "name": XSS,
                                      "password": "x"}).text
    assert XSS not in html and ESCAPED in html


@pytest.mark.parametrize("term", ["' OR '1'='1", "%", "_", "\\", "'; DROP TABLE optout; --",
                                  "\x00", "a" * 300, "ü@例え.jp"])
def test_sql_metacharacters_in_search_are_just_text(web: Web, term: str) -> None:
    client = web.as_role("coordinator")
    add_via_form(client, email="someone@example.org", name="Someone")
    response = search(client, term)
    assert response.status_code == 200
    assert "No opt-out has exactly" in response.text
    assert "/optouts/" not in response.text.split("</form>")[-1].split("<footer")[0].replace(
        'href="/optouts/new"', "")
    token = web.token(client)
    assert client.post("/api/optouts/search", json={"search": term},
                       headers={"X-CSRF-Token": token}).json() == []
    assert "Someone" in client.get("/optouts").text  # the table is still there


def test_search_never_puts_the_term_in_a_url(web: Web) -> None:
    client = web.as_role("coordinator")
    add_via_form(client, email="private.person@example.org", name="Private Person")
    page = client.get("/optouts").text
    assert 'method="post" action="/optouts/search"' in page
    response = search(client, "private.person@example.org")
    assert response.status_code == 200 and "1 opt-out with exactly" in response.text
    assert "private.person" not in str(response.url)
    assert "private.person" not in "".join(re.findall(r'href="([^"]*)"', response.text))
    # The old GET form of the search is gone: a query string is ignored, not searched.
    assert "with exactly" not in client.get("/optouts", params={"q": "x"}).text
    too_long = search(client, "x" * 400)
    assert too_long.status_code == 422 and "400 characters, at most 320" in too_long.text
    assert 'value="' + "x" * 400 + '"' in too_long.text  # shown whole, not cut


def test_csv_import_all_or_nothing(web: Web) -> None:
    client = web.as_role("coordinator")
    token = csrf_from(client.get("/optouts/import").text)
    good = "email,name,covers\na@example.org,Ann,both\nb@example.org,Bob,recording\n"
    response = client.post("/optouts/import", data={"csrf_token": token},
                           files={"file": ("good.csv", good, "text/csv")})
    assert response.status_code == 200 and "Imported 2 opt-outs." in response.text
    hostile = client.post("/optouts/import", data={"csrf_token": token},
                          files={"file": ("x.csv", f"email,name,note\nx@example.org,{XSS},{XSS}\n",
                                          "text/csv")})
    assert XSS not in hostile.text and ESCAPED in hostile.text
    bad = "email,name\nc@example.org,Cy\nnot-an-address,Dee\nd@example.org,Dee\n"
    response = client.post("/optouts/import", data={"csrf_token": token},
                           files={"file": ("bad.csv", bad, "text/csv")})
    assert response.status_code == 422
    assert "Nothing was imported" in response.text and "line 3" in response.text
    with web.ctx.session() as db:
        assert len(optouts.list_optouts(web.ctx, db)) == 3


def test_oversized_csv_is_refused_with_a_page(web: Web) -> None:
    client = web.as_role("coordinator")
    token = csrf_from(client.get("/optouts/import").text)
    limit = web.ctx.settings.web.max_upload_bytes
    big = "email\n" + "x@example.org\n" * (limit // 14 + 10)
    response = client.post("/optouts/import", data={"csrf_token": token},
                           files={"file": ("big.csv", big, "text/csv")})
    assert response.status_code == 413
    assert "larger than" in response.text


def test_unknown_optout_is_404(web: Web) -> None:
    client = web.as_role("coordinator")
    assert client.get("/optouts/doesnotexist").status_code == 404
    assert client.get("/api/optouts/doesnotexist").status_code == 404


def test_admin_manages_users(web: Web) -> None:
    client = web.as_role("admin")
    page = client.get("/admin/users")
    token = csrf_from(page.text)
    weak = client.post("/admin/users", data={"csrf_token": token, "name": "newbie",
                                             "role": "coordinator", "password": "short",
                                             "password_again": "short"})
    assert weak.status_code == 422 and 'id="password-error"' in weak.text
    added = client.post("/admin/users", data={"csrf_token": token, "name": "newbie",
                                              "role": "dpo", "password": "a-long-enough-secret",
                                              "password_again": "a-long-enough-secret"})
    assert added.status_code == 303
    assert web.login(web.client(), "newbie", "a-long-enough-secret").status_code == 303
    disabled = client.post("/admin/users/newbie/disable", data={"csrf_token": token})
    assert disabled.status_code == 303
    assert web.login(web.client(), "newbie", "a-long-enough-secret").status_code == 401
    own = client.post("/admin/users/ada/disable", data={"csrf_token": token})
    assert own.status_code == 422
    hostile = client.post("/admin/users", data={"csrf_token": token, "name": XSS, "role": XSS,
                                                "password": "x", "password_again": "x"})
    assert hostile.status_code == 422 and XSS not in hostile.text and ESCAPED in hostile.text
