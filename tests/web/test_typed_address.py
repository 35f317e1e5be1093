"""The form's API refuses an address holding a character nobody can see, naming it and where
it is, and stores nothing (the pages use the same validation: `optouts.validate`)."""

from __future__ import annotations

from .conftest import Web


def test_an_invisible_character_is_named_and_nothing_is_stored(web: Web) -> None:
    client = web.as_role("coordinator")
    headers = {"X-CSRF-Token": web.token(client)}
    response = client.post("/api/optouts", headers=headers,
                           json={"email": "lee\u200b@northwind.example"})
    assert response.status_code == 422
    [problem] = [p for p in response.json()["detail"] if p["field"] == "email"]
    assert "U+200B ZERO WIDTH SPACE at position 4" in problem["message"]
    assert client.get("/api/optouts").json() == []
    fine = client.post("/api/optouts", headers=headers, json={"email": "lee@northwind.example."})
    assert fine.status_code in (200, 201) and fine.json()["email"] == "lee@northwind.example"
