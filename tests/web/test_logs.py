"""No personal data in any log line of the web app (names, addresses, passwords, notes)."""

from __future__ import annotations

import logging

import pytest

from .conftest import JOIN_LINK, PASSWORD, Web, csrf_from, review_token_from

SECRETS = ["Hedy Lamarr", "hedy.lamarr@example.org", "Lamarr", "a private note",
           "wrong-password-for-hedy", PASSWORD, "1e9d3b2a-0000-4c44-9a39-1234567890ab"]


def test_no_personal_data_in_logs(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = web.client()
    token = csrf_from(client.get("/login").text)
    client.post("/login", data={"csrf_token": token, "name": "Hedy Lamarr",
                                "password": "wrong-password-for-hedy"})
    web.login(client, "cora")
    token = csrf_from(client.get("/optouts/new").text)
    form = {"csrf_token": token, "step": "confirm", "name": "Hedy Lamarr",
            "email": "hedy.lamarr@example.org", "object_id": "1e9d3b2a-0000-4c44-9a39-1234567890ab",
            "scope": "meeting", "meeting": JOIN_LINK, "note": "a private note",
            "covers_recording": "true", "covers_transcription": "true"}
    review = client.post("/optouts", data={**form, "step": "review"})
    form["review_token"] = review_token_from(review.text)
    optout_id = client.post("/optouts", data=form).headers["location"].split("/")[2].split("?")[0]
    client.post("/optouts/search", data={"csrf_token": token, "q": "hedy.lamarr@example.org"})
    client.post("/api/optouts/search", json={"search": "Hedy Lamarr"},
                headers={"X-CSRF-Token": token})
    dpo = web.client()
    web.login(dpo, "dora")
    dpo.post(f"/optouts/{optout_id}/revoke", data={"csrf_token": web.token(dpo),
                                                     "reason": "Lamarr"})
    client.post("/optouts/import", data={"csrf_token": token},
                files={"file": ("x.csv", "email,name\nnot-an-address,Hedy Lamarr\n", "text/csv")})
    # The test's own HTTP client (httpx) logs the URLs it requests: that is not the server.
    server_records = [r for r in caplog.records if not r.name.startswith("httpx")]
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in server_records)
    assert any(r.name.startswith("meeting_governance") for r in server_records)
    for secret in SECRETS:
        assert secret.lower() not in text.lower(), secret
