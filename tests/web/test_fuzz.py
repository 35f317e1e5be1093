"""Random input against the JSON API and the form: never a 500, never an unescaped echo.

(The issue asks for schemathesis against the OpenAPI schema; until it is a dev dependency,
hypothesis drives the same endpoints with the schema's field names and hostile values.)
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import JOIN_LINK, Web, csrf_from

HOSTILE = st.sampled_from(["", " ", "<script>alert(1)</script>", "' OR 1=1 --", "\x00", "%00",
                           "../../etc/passwd", "a" * 5000, "ü@例え.jp", "x@y.z", JOIN_LINK,
                           "2026-02-30", "9999-12-31T23:59:59+14:00", "-1", "null", "\ud7ff"])
TEXT = st.one_of(HOSTILE, st.text(max_size=60))
VALUE = st.one_of(st.none(), st.booleans(), st.integers(), TEXT,
                  st.lists(st.integers(), max_size=2), st.dictionaries(TEXT, st.integers(), max_size=1))
FIELDS = ["email", "object_id", "name", "meeting", "valid_from", "valid_until",
          "covers_recording", "covers_transcription", "note", "reason", "extra"]
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(body=st.dictionaries(st.sampled_from(FIELDS), VALUE, max_size=6))
def test_api_add_never_fails_with_500(web: Web, body: dict[str, Any]) -> None:
    client = web.signed_in("coordinator")
    token = web.token(client)
    response = client.post("/api/optouts", json=body, headers={"X-CSRF-Token": token})
    assert response.status_code in (201, 422), (body, response.text)


@FUZZ
@given(search=TEXT, limit=st.integers(-5, 5000), offset=st.integers(-5, 10**12),
       optout_id=TEXT, revoked=st.sampled_from(["true", "false", "maybe", ""]))
def test_api_reads_never_fail_with_500(web: Web, search: str, limit: int, offset: int,
                                       optout_id: str, revoked: str) -> None:
    client = web.signed_in("dpo")
    response = client.get("/api/optouts", params={"limit": limit, "offset": offset,
                                                  "include_revoked": revoked})
    assert response.status_code in (200, 422)
    response = client.post("/api/optouts/search", json={"search": search},
                           headers={"X-CSRF-Token": web.token(client)})
    assert response.status_code in (200, 422)
    quoted = quote(optout_id, safe="")
    for path in (f"/api/optouts/{quoted}", f"/api/optouts/{quoted}/history",
                 f"/optouts/{quoted}"):
        assert client.get(path).status_code in (200, 404, 422), path


@FUZZ
@given(form=st.dictionaries(st.sampled_from([*FIELDS, "scope", "step"]), TEXT, max_size=8))
def test_form_never_fails_with_500_and_escapes_what_it_echoes(web: Web,
                                                              form: dict[str, str]) -> None:
    client = web.signed_in("coordinator")
    token = csrf_from(client.get("/optouts/new").text)
    response = client.post("/optouts", data={**form, "csrf_token": token})
    assert response.status_code in (200, 303, 422), response.text
    assert "<script>alert(1)</script>" not in response.text
