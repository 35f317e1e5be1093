"""The DPO's pages on the real app: roles, CSRF, find, export, erasure with confirmation,
withdrawal, the request log, holds, the desk (audit chain, receipts) and the statistics."""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import col, select

from meeting_governance import dsr, holds, purge
from meeting_governance.models import AuditEntry, DsrRequest, OptOut, Transcript
from meeting_governance.optouts import OptOutRequest, add_optout

from ..dsr.helpers import ALICE, BOB, CAROL_OID, make_transcript, person
from .conftest import Web, csrf_from

DPO_GETS = ["/dpo", "/dpo/person", "/dpo/requests", "/dpo/holds", "/dpo/stats"]
DPO_POSTS = ["/dpo/person", "/dpo/person/export", "/dpo/person/erase", "/dpo/person/withdraw",
             "/dpo/person/redact", "/dpo/transcripts/nosuch/speakers",
             "/dpo/requests", "/dpo/requests/REF-1/close", "/dpo/holds",
             "/dpo/holds/nohold/release"]


def _seed(web: Web) -> dict[str, Transcript]:
    """Alice attended three meetings (one held), Bob two (one with her); Carol one, with her."""
    ctx = web.ctx
    alice, bob, carol = person(ALICE), person(BOB), person(object_id=CAROL_OID)
    t = {
        "shared": make_transcript(ctx, words=["zanzibar quokka forecast"], people=[alice, bob],
                                  meeting_id="m-1"),
        "bobs": make_transcript(ctx, words=["bravo secret merger"], people=[bob],
                                meeting_id="m-2"),
        "held": make_transcript(ctx, words=["litigation evidence"], people=[alice, carol],
                                meeting_id="m-3"),
        "alone": make_transcript(ctx, words=["xylophone ocelot"], people=[alice],
                                 meeting_id="m-4"),
    }
    holds.set_hold(ctx, reason="Smith v Example Ltd", transcript_id=t["held"].id, actor="dpo")
    with ctx.session() as session:
        add_optout(ctx, session, OptOutRequest(email=ALICE), actor="coordinator:ana")
        add_optout(ctx, session, OptOutRequest(email=BOB), actor="coordinator:ana")
    return t


def _token(client: TestClient, path: str = "/dpo/person") -> str:
    return csrf_from(client.get(path).text)


def _post(client: TestClient, path: str, **form: str) -> Any:
    """A desk form as the DPO sends it. This installation has no directory (no Graph
    credential), so the DPO has chosen to search by the identity given only, as the page
    offers; `tests/web/test_dpo_directory.py` covers the directory."""
    return client.post(path, data={"csrf_token": _token(client), "only_given": "true", **form})


def _erasure_digest(web: Web, who: str = ALICE) -> str:
    from meeting_governance.people import person_identity
    from meeting_governance.web.dpo import identity
    from meeting_governance.web.dpo_person import Found, erasure_digest

    ident = identity(who)
    return erasure_digest(web.ctx, Found(ident, person_identity(web.ctx, **ident)))


def _audit(web: Web, action: str) -> list[AuditEntry]:
    with web.ctx.session() as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


# -- roles and CSRF -----------------------------------------------------------------------------
def test_roles(web: Web) -> None:
    anonymous = web.client()
    for path in DPO_GETS:
        response = anonymous.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith(
            "/login?next="), path
    coordinator = web.as_role("coordinator")
    for path in DPO_GETS:
        assert coordinator.get(path).status_code == 403, path
    token = web.token(coordinator)
    for path in DPO_POSTS:
        assert coordinator.post(path, data={"csrf_token": token, "who": ALICE,
                                            "reason": "x"}).status_code == 403, path
    assert "DPO desk" not in coordinator.get("/optouts").text
    for role in ("dpo", "admin"):
        client = web.as_role(role)
        for path in DPO_GETS:
            response = client.get(path)
            assert response.status_code == 200, (role, path)
            html = response.text
            assert "<script" not in html and "style=" not in html and "<style" not in html
            assert '<a class="skip-link" href="#main">' in html
        assert '<a href="/dpo">DPO desk</a>' in client.get("/optouts").text


def test_every_post_needs_the_csrf_token(web: Web) -> None:
    _seed(web)
    client = web.as_role("dpo")
    other = web.token(web.as_role("dpo"))
    for path in DPO_POSTS:
        for data in ({"who": ALICE, "reason": "x"},
                     {"who": ALICE, "reason": "x", "csrf_token": other}):
            response = client.post(path, data=data)
            assert response.status_code == 403, (path, data)
            assert "This form has expired" in response.text
    assert _audit(web, "dsr.export") == [] and _audit(web, "dsr.erase") == []
    with web.ctx.session() as session:
        assert session.exec(select(DsrRequest)).all() == []


# -- a person ------------------------------------------------------------------------------------
def test_find_shows_counts_meetings_and_holds_without_decrypting(web: Web) -> None:
    t = _seed(web)
    client = web.as_role("dpo")
    reads_before = len(_audit(web, "transcript.read"))
    response = _post(client, "/dpo/person", who="  Alice.Liddell@Example.org ")
    assert response.status_code == 200
    html = response.text
    counts = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", html))
    assert counts["Transcripts of meetings attended"] == "3"
    assert counts["Under legal hold"] == "1"
    assert counts["Opt-outs"] == "1 (1 active)"
    for key in ("shared", "held", "alone"):
        assert t[key].id in html
    assert t["bobs"].id not in html
    assert "2026-05-31" in html  # retain_until: 90 days after the meeting
    assert "Held" in html and "on a transcript" in html
    assert re.search(r'<a href="/optouts/[0-9a-f]+">Opt-out added', html)
    assert "zanzibar" not in html and "Weekly sync" not in html  # nothing decrypted
    assert len(_audit(web, "transcript.read")) == reads_before

    carol = _post(client, "/dpo/person", who=CAROL_OID.upper())
    assert re.search(r"<dt>Transcripts of meetings attended</dt><dd>1</dd>", carol.text)


def test_find_refuses_a_bad_identity_with_the_error_tied_to_the_field(web: Web) -> None:
    client = web.as_role("dpo")
    response = _post(client, "/dpo/person", who="not-a-guid-nor-an-address")
    assert response.status_code == 422
    assert 'aria-describedby="who-hint who-error"' in response.text
    assert 'id="who-error"' in response.text and "Entra object id" in response.text
    assert _post(client, "/dpo/person", who="").status_code == 422


def test_export_downloads_a_zip_of_the_persons_meetings_only(web: Web) -> None:
    t = _seed(web)
    client = web.as_role("dpo")
    response = _post(client, "/dpo/person/export", who=ALICE)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/zip"
    reference = response.headers["x-dsr-reference"]
    assert re.fullmatch(r"DSR-\d{4}-\d{4}", reference)
    assert response.headers["content-disposition"] == f'attachment; filename="{reference}.zip"'
    assert response.headers["cache-control"] == "no-store"
    bundle = zipfile.ZipFile(io.BytesIO(response.content))
    manifest = json.loads(bundle.read("manifest.json"))
    assert manifest["reference"] == reference
    exported = {m["transcript_id"] for m in manifest["meetings"]}
    assert exported == {t["shared"].id, t["held"].id, t["alone"].id}
    assert not any(t["bobs"].id in name for name in bundle.namelist())
    assert "bravo secret merger" not in " ".join(bundle.read(n).decode() for n in bundle.namelist())
    assert len(json.loads(bundle.read("optouts.json"))) == 1  # hers, not Bob's
    # Every decryption audited with the reference, by the signed-in DPO; request completed.
    reads = [e for e in _audit(web, "transcript.read")
             if json.loads(e.details).get("reference") == reference]
    assert {e.target_id for e in reads} == exported and {e.actor for e in reads} == {"web:dora"}
    with web.ctx.session() as session:
        request = session.get(DsrRequest, reference)
        assert request is not None and request.kind == "access" and request.status == "completed"
    # Nothing of the decrypted bundle is left on disk.
    assert list(Path(web.ctx.settings.home).glob(".dsr-export-*")) == []
    assert not any(p.suffix == ".zip" for p in Path(web.ctx.settings.home).rglob("*"))


def test_export_with_a_reference_of_another_kind_is_refused_on_the_form(web: Web) -> None:
    _seed(web)
    with web.ctx.session() as session:
        dsr.open_request(web.ctx, session, "erasure", email=ALICE, reference="ER-7")
    client = web.as_role("dpo")
    response = _post(client, "/dpo/person/export", who=ALICE, reference="ER-7")
    assert response.status_code == 422
    assert "is a erasure request" in response.text or "erasure request" in response.text
    assert 'id="reference-error"' in response.text
    assert _audit(web, "dsr.export") == []


def test_erase_confirms_with_the_count_and_holds_then_spares_the_held(web: Web) -> None:
    t = _seed(web)
    client = web.as_role("dpo")
    review = _post(client, "/dpo/person/erase", who=ALICE)
    assert review.status_code == 200
    html = review.text
    assert "2 transcripts will be erased" in html
    assert t["held"].id in html and "Smith v Example Ltd" in html
    assert 'name="step" value="confirm"' in html and "Erase 2 transcripts" in html
    with web.ctx.session() as session:  # the review changed nothing
        assert session.exec(select(Transcript).where(col(Transcript.purged_at).is_not(None))
                            ).all() == []
        assert session.exec(select(DsrRequest)).all() == []

    expected = re.search(r'name="expected" value="([0-9a-f]+)"', html)
    assert expected is not None
    assert 'name="only_given" value="true"' in html  # the choice carries to the confirmation
    done = client.post("/dpo/person/erase", data={
        "csrf_token": csrf_from(html), "who": ALICE, "reference": "", "step": "confirm",
        "expected": expected.group(1), "only_given": "true"})
    assert done.status_code == 200
    assert "2 transcripts were erased, 1 held and kept" in done.text
    reference = re.search(r"Request <code>([^<]+)</code>", done.text)
    assert reference is not None
    with web.ctx.session() as session:
        state = {k: session.get(Transcript, row.id) for k, row in t.items()}
        assert all(r is not None for r in state.values())
        assert {k for k, r in state.items() if r and r.purged_at is not None} == {"shared", "alone"}
        request = session.get(DsrRequest, reference.group(1))
        assert request is not None and request.kind == "erasure" and request.status == "completed"
    erase = _audit(web, "dsr.erase")
    assert len(erase) == 1 and erase[0].actor == "web:dora"

    after = _post(client, "/dpo/person", who=ALICE).text
    assert re.search(r"<dt>Transcripts of meetings attended</dt><dd>1</dd>", after)


def test_erase_is_reviewed_again_when_what_would_go_changed(web: Web) -> None:
    t = _seed(web)
    client = web.as_role("dpo")
    review = _post(client, "/dpo/person/erase", who=ALICE).text
    expected = re.search(r'name="expected" value="([0-9a-f]+)"', review)
    assert expected is not None and "2 transcripts will be erased" in review
    late = make_transcript(web.ctx, words=["stored meanwhile"], people=[person(ALICE)],
                           meeting_id="m-9")
    response = client.post("/dpo/person/erase", data={
        "csrf_token": csrf_from(review), "who": ALICE, "step": "confirm",
        "expected": expected.group(1), "only_given": "true"})
    assert response.status_code == 409
    assert "changed since you looked" in response.text
    assert "3 transcripts will be erased" in response.text
    with web.ctx.session() as session:
        assert all(session.get(Transcript, r.id).purged_at is None  # type: ignore[union-attr]
                   for r in [*t.values(), late])
    assert _audit(web, "dsr.erase") == []
    # A confirmation without the fingerprint (a forged or stale form) never erases either.
    bare = _post(client, "/dpo/person/erase", who=ALICE, step="confirm")
    assert bare.status_code == 409 and _audit(web, "dsr.erase") == []


def test_withdraw_consent_adds_an_opt_out_for_every_meeting(web: Web) -> None:
    client = web.as_role("dpo")
    response = _post(client, "/dpo/person/withdraw", who=BOB)
    assert response.status_code == 200
    assert "Consent withdrawn under request" in response.text
    with web.ctx.session() as session:
        rows = session.exec(select(OptOut).where(
            OptOut.email_blind == web.ctx.vault.blind_email(BOB))).all()
        assert len(rows) == 1 and rows[0].scope == "all" and rows[0].revoked_at is None
        assert rows[0].covers_recording and rows[0].covers_transcription
    assert "<dd>1 (1 active)</dd>" in response.text


# -- requests, holds -----------------------------------------------------------------------------
def test_request_log_open_overdue_and_close(web: Web) -> None:
    client = web.as_role("dpo")
    received = (web.ctx.clock.now() - timedelta(days=45)).date().isoformat()
    response = _post(client, "/dpo/requests", kind="erasure", who=ALICE, received=received,
                     reference="OLD-1")
    assert response.status_code == 303
    assert response.headers["location"] == "/dpo/requests?done=opened&ref=OLD-1"
    _post(client, "/dpo/requests", kind="access", who=CAROL_OID)
    page = client.get("/dpo/requests").text
    assert re.search(r'<tr class="overdue">\s*<td><code>OLD-1</code>', page)
    assert re.search(r"Overdue by 1[56] days", page)
    desk = client.get("/dpo").text
    assert "OLD-1" in desk and "1 overdue" in desk and "2 open" in desk

    bad = _post(client, "/dpo/requests", kind="nonsense", who="nobody", received="yesterday")
    assert bad.status_code == 422
    for name in ("kind", "who", "received"):
        assert f'id="{name}-error"' in bad.text

    closed = _post(client, "/dpo/requests/OLD-1/close", status="closed")
    assert closed.status_code == 303
    page = client.get(closed.headers["location"]).text
    assert "Request OLD-1 was closed." in page
    assert not re.search(r'<tr class="overdue">\s*<td><code>OLD-1</code>', page)
    again = _post(client, "/dpo/requests/OLD-1/close")
    assert again.status_code == 422 and "already closed" in again.text
    assert _post(client, "/dpo/requests/NOPE-1/close").status_code == 404


def test_holds_set_and_release(web: Web) -> None:
    t = _seed(web)
    client = web.as_role("dpo")
    assert _post(client, "/dpo/holds", kind="meeting", target="m-4",
                 reason="board complaint").status_code == 303
    assert _post(client, "/dpo/holds", kind="person", target=BOB,
                 reason="litigation").status_code == 303
    page = client.get("/dpo/holds?done=set").text
    assert "The hold was set." in page and "a person" in page and "m-4" in page
    assert "board complaint" not in page and BOB not in page  # reasons and addresses stay sealed
    with web.ctx.session() as session:
        assert holds.is_held(session, t["alone"].id) and holds.is_held(session, t["bobs"].id)

    refused = _post(client, "/dpo/holds", kind="person", target="not an address", reason="x")
    assert refused.status_code == 422 and 'id="target-error"' in refused.text
    assert _post(client, "/dpo/holds", kind="", target="", reason="").status_code == 422

    hold_id = holds.find_active(web.ctx, meeting_id="m-4")
    assert _post(client, f"/dpo/holds/{hold_id}/release", reason="").status_code == 422
    released = _post(client, f"/dpo/holds/{hold_id}/release", reason="settled")
    assert released.status_code == 303
    with web.ctx.session() as session:
        assert not holds.is_held(session, t["alone"].id)
    again = _post(client, f"/dpo/holds/{hold_id}/release", reason="settled")
    assert again.status_code == 422 and "already released" in again.text


# -- the desk --------------------------------------------------------------------------------------
def test_desk_shows_audit_status_and_verified_receipts(web: Web) -> None:
    _seed(web)
    client = web.as_role("dpo")
    assert "The audit chain is intact" in client.get("/dpo").text
    assert "No purge has written a receipt yet." in client.get("/dpo").text

    report = purge.purge(web.ctx, as_of=web.ctx.clock.now())  # every seeded one is past due
    assert report.receipt_id and report.purged == 3
    page = client.get("/dpo").text
    row = re.search(rf"<code>{report.receipt_id}</code>.*?</tr>", page, re.S)
    assert row is not None and "<td>3</td>" in row.group(0) and "Yes" in row.group(0)

    assert report.receipt_path is not None
    path = Path(report.receipt_path)
    path.chmod(0o600)
    path.write_bytes(path.read_bytes().replace(b'"purged":3', b'"purged":2'))
    row = re.search(rf"<code>{report.receipt_id}</code>.*?</tr>", client.get("/dpo").text, re.S)
    assert row is not None and ">No</span>" in row.group(0)

    with web.ctx.engine.begin() as conn:
        conn.execute(text("UPDATE audit_entry SET actor = 'mallory' WHERE seq = 3"))
    page = client.get("/dpo").text
    assert "The audit chain is broken at entry 3" in page and "intact" not in page


# -- statistics -----------------------------------------------------------------------------------
def test_stats_page_has_the_svg_chart_and_suppresses_small_cells(web: Web) -> None:
    _seed(web)  # four transcripts this month: below the default min_cell of 5
    response = web.as_role("dpo").get("/dpo/stats")
    assert response.status_code == 200
    html = response.text
    svg = re.search(r"<svg[^>]*>.*?</svg>", html, re.S)
    assert svg is not None
    assert 'role="img"' in svg.group(0) and "<title" in svg.group(0) and "<desc" in svg.group(0)
    assert "stroke-dasharray" in svg.group(0)  # suppressed cells drawn dashed
    month = web.ctx.clock.now().strftime("%Y-%m")
    row = re.search(rf'<th scope="row">{month}</th>(.*?)</tr>', html, re.S)
    assert row is not None
    cells = re.findall(r"<td>([^<]*)</td>", row.group(1))
    assert cells[0] == "&lt;5" and cells[1] == "&lt;5"  # seen, transcribed
    assert "4" not in cells


def test_stats_shows_cells_at_or_over_the_threshold(make_web: Any) -> None:
    web = make_web(stats={"min_cell": 2})
    _seed(web)
    html = web.as_role("admin").get("/dpo/stats").text
    month = web.ctx.clock.now().strftime("%Y-%m")
    row = re.search(rf'<th scope="row">{month}</th>(.*?)</tr>', html, re.S)
    assert row is not None
    assert re.findall(r"<td>([^<]*)</td>", row.group(1))[1] == "4"


# -- privacy ---------------------------------------------------------------------------------------
def test_no_address_in_any_url_or_log_line(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    _seed(web)
    caplog.set_level(logging.DEBUG)
    client = web.as_role("dpo")
    responses = [
        _post(client, "/dpo/person", who=ALICE),
        _post(client, "/dpo/person/export", who=ALICE),
        _post(client, "/dpo/person/erase", who=ALICE),
        _post(client, "/dpo/person/erase", who=ALICE, step="confirm",
              expected=_erasure_digest(web)),
        _post(client, "/dpo/person/withdraw", who=ALICE),
        _post(client, "/dpo/person", who=CAROL_OID),
        _post(client, "/dpo/person", who="bad@"),
        _post(client, "/dpo/requests", kind="access", who=BOB),
        _post(client, "/dpo/holds", kind="person", target=BOB, reason="Smith v Example Ltd"),
        client.get("/dpo"), client.get("/dpo/requests"), client.get("/dpo/holds"),
    ]
    urls = [str(r.url) for r in responses] + [r.headers.get("location", "") for r in responses]
    secrets = [ALICE, "alice.liddell", BOB, "bob.builder", CAROL_OID, "Smith v Example"]
    for url in urls:
        for secret in secrets:
            assert secret.lower() not in url.lower(), url
    # The test's own HTTP client (httpx) logs the URLs it requests: that is not the server.
    records = [r for r in caplog.records if not r.name.startswith("httpx")]
    assert any(r.name == "meeting_governance.web.dpo_person" for r in records)
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in records).lower()
    for secret in secrets:
        assert secret.lower() not in logged, secret
    with web.ctx.session() as session:
        details = " ".join(f"{e.actor} {e.target_id} {e.details}"
                           for e in session.exec(select(AuditEntry)).all()).lower()
    assert "alice" not in details and "smith" not in details
