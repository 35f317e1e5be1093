"""Graph faults from the emulator through the real pipeline (poll + process): 429 storms with
long `Retry-After`, 503 bursts longer than the retry budget, connections cut mid-download,
tokens expiring mid-download, malformed and truncated JSON, a recording gone by the time it
is fetched. Each ends in a clear state and reason, loses nothing (once the fault clears and
the retry time comes, the recording is stored) and leaves no temporary media behind."""

from __future__ import annotations

import hashlib

import pytest
from sqlmodel import select

from meeting_governance.models import DeltaLink, Recording
from meeting_governance.optouts import OptOutRequest, add_optout
from meeting_governance.pipeline import poll, process
from mg_emulator import Recording as EmuRecording
from mg_emulator.scenario import default_media_dir
from tests.pipeline.conftest import END, OPTED_MAIL, ORG

from .conftest import (
    Env,
    assert_invariants,
    make_due,
    meeting_id,
    record_sleeps,
    recording_id,
    row,
    rows,
    staging_files,
)

OK_CONTENT = f"{recording_id('ok')}/content"


def opt_out_dana(e: Env) -> None:
    """Dana's meeting is then blocked, so each test transcribes one recording only."""
    with e.app.session() as session:
        add_optout(e.app, session, OptOutRequest(email=OPTED_MAIL), actor="coordinator")


def discovered(e: Env) -> None:
    with e.graph() as graph:
        report = poll(e.app, graph)
    assert report.new == 5 and not report.errors


def delta_link(e: Env) -> str | None:
    with e.app.session() as session:
        stored = session.get(DeltaLink, ORG)
        return stored.link if stored else None


def content_statuses(e: Env, key: str) -> list[int]:
    from urllib.parse import unquote

    return [r.status for r in e.emulator.requests.all()
            if unquote(r.path).endswith(f"{recording_id(key)}/content")]


def assert_baseline(e: Env) -> None:
    """Where the sample scenario ends once the fault is gone (Dana opted out)."""
    states = {k: row(e, k).state for k in ("ok", "optout", "unknown", "noreport", "corrupt")}
    assert states == {"ok": "stored", "optout": "blocked", "unknown": "waiting",
                      "noreport": "waiting", "corrupt": "failed"}
    assert_invariants(e)


# -- throttling ---------------------------------------------------------------------------

def test_429_storm_waits_as_asked_and_long_retry_after_is_capped(sqlite_env: Env) -> None:
    e = sqlite_env
    sleeps = record_sleeps(e)
    opt_out_dana(e)
    e.emulator.faults.set(throttle_count=3, throttle_retry_after="2.128")
    graph = e.services.graph
    report = poll(e.app, graph)
    assert report.new == 5 and not report.errors
    # Never earlier than Graph asked (fractional seconds honoured), a little jitter on top.
    assert len(sleeps) == 3 and all(2.128 <= s <= 2.128 * 1.1 for s in sleeps), sleeps

    sleeps.clear()
    cap = e.settings.graph.max_retry_after_s
    e.emulator.faults.set(throttle_count=3, throttle_retry_after="86400", match=OK_CONTENT)
    process(e.app, e.services, limit=20)
    assert sleeps == [cap, cap, cap]  # a day-long Retry-After never stalls a worker for a day
    assert content_statuses(e, "ok") == [429, 429, 429, 200]
    assert_baseline(e)
    assert row(e, "ok").attempts == 0


def test_429_storm_outlasting_the_budget_at_the_gate_waits_then_goes_through(
        sqlite_env: Env) -> None:
    e = sqlite_env
    opt_out_dana(e)
    discovered(e)
    e.emulator.faults.set(throttle_count=10_000, match=meeting_id("ok"))
    process(e.app, e.services, limit=20)
    ok = row(e, "ok")
    assert ok.state == "waiting"
    assert "participants could not be read from Graph" in ok.reason
    assert "TooManyRequests" in ok.reason
    assert ok.next_attempt_at is not None
    assert content_statuses(e, "ok") == []  # fail closed: no media before the gate
    assert staging_files(e) == []

    e.emulator.faults.reset()
    make_due(e)
    process(e.app, e.services, limit=20)
    assert row(e, "ok").state == "stored"
    assert_invariants(e)


# -- 503 bursts ---------------------------------------------------------------------------

def test_503_burst_in_discovery_keeps_the_delta_link_and_loses_nothing(sqlite_env: Env) -> None:
    e = sqlite_env
    e.emulator.faults.set(unavailable_count=10_000)
    with e.graph() as graph:
        report = poll(e.app, graph)
    assert report.new == 0 and len(report.errors) == 1
    assert "HTTP 503" in report.errors[0] and "retry later" in report.errors[0]
    assert rows(e) == {} and delta_link(e) is None

    e.emulator.faults.reset()
    discovered(e)
    link = delta_link(e)
    assert link

    # A recording arrives; the next poll meets a 503 burst after the first page.
    e.emulator.add_recording(EmuRecording(id="VjIj-late=/rec+2", meeting=meeting_id("ok"),
                                          media="sample-1.m4a", created=END, end=END))
    e.emulator.faults.set(unavailable_count=10_000)
    with e.graph() as graph:
        report = poll(e.app, graph)
    assert report.errors and report.new == 0
    assert delta_link(e) == link  # the old link is kept: the next poll asks again
    assert "VjIj-late=/rec+2" not in rows(e)

    e.emulator.faults.reset()
    with e.graph() as graph:
        report = poll(e.app, graph)
    assert report.new == 1 and not report.errors
    assert "VjIj-late=/rec+2" in rows(e) and delta_link(e) != link


def test_503_burst_on_download_fails_retryable_then_stores(sqlite_env: Env) -> None:
    e = sqlite_env
    opt_out_dana(e)
    discovered(e)
    e.emulator.faults.set(unavailable_count=10_000, match=OK_CONTENT)
    process(e.app, e.services, limit=20)
    ok = row(e, "ok")
    assert ok.state == "failed" and ok.attempts == 1
    assert ok.reason.startswith("GraphError: Graph answered HTTP 503 ServiceUnavailable")
    assert "retry later" in ok.reason
    assert ok.next_attempt_at is not None and ok.lease_owner is None
    attempts = e.settings.graph.max_retries + 1
    assert content_statuses(e, "ok") == [503] * attempts  # the budget, then stop
    # The other recordings went on meanwhile.
    assert row(e, "optout").state == "blocked" and row(e, "corrupt").state == "failed"
    assert staging_files(e) == []

    e.emulator.faults.reset()
    make_due(e)
    process(e.app, e.services, limit=20)
    assert_baseline(e)


# -- connection cuts ----------------------------------------------------------------------

@pytest.mark.parametrize("range_supported", [True, False], ids=["resume-206", "restart-200"])
def test_connection_cut_mid_download_resumes_with_matching_hash(sqlite_env: Env,
                                                                 range_supported: bool) -> None:
    e = sqlite_env
    opt_out_dana(e)
    discovered(e)
    e.emulator.faults.set(cut_download_after=10_000, cut_download_count=2,
                          range_supported=range_supported)
    process(e.app, e.services, limit=20)
    ok = row(e, "ok")
    assert ok.state == "stored" and ok.attempts == 0
    expected = hashlib.sha256((default_media_dir() / "sample-1.m4a").read_bytes()).hexdigest()
    assert ok.media_sha256 == expected
    assert ok.media_bytes == (default_media_dir() / "sample-1.m4a").stat().st_size
    assert content_statuses(e, "ok") == ([200, 206, 206] if range_supported else [200] * 3)
    assert_baseline(e)


def test_connection_cut_more_often_than_resume_attempts_fails_retryable(sqlite_env: Env) -> None:
    e = sqlite_env
    opt_out_dana(e)
    discovered(e)
    e.emulator.faults.set(cut_download_after=10_000, cut_download_count=10_000,
                          match=OK_CONTENT)
    process(e.app, e.services, limit=1)  # the first recording only: ok
    ok = row(e, "ok")
    assert ok.state == "failed" and ok.attempts == 1
    assert "the download was cut" in ok.reason and "retried" in ok.reason
    assert len(content_statuses(e, "ok")) == e.settings.download.resume_attempts + 1
    assert staging_files(e) == []  # no partial .part file

    e.emulator.faults.reset()
    make_due(e)
    process(e.app, e.services, limit=20)
    assert row(e, "ok").media_sha256 == hashlib.sha256(
        (default_media_dir() / "sample-1.m4a").read_bytes()).hexdigest()
    assert_baseline(e)


# -- token expiry -------------------------------------------------------------------------

def test_token_expiry_mid_download_refreshes_once(sqlite_env: Env) -> None:
    e = sqlite_env
    opt_out_dana(e)
    discovered(e)
    e.emulator.requests.clear()
    e.emulator.faults.set(expire_token_count=1, match=OK_CONTENT)
    process(e.app, e.services, limit=20)
    # The worker reuses the process's token (the poll signed in: one msal app per process);
    # one refresh after the 401 — not one per request, not one per client.
    assert len(e.emulator.requests.token_requests()) == 1
    assert content_statuses(e, "ok") == [401, 200]
    assert row(e, "ok").attempts == 0
    assert_baseline(e)


def test_token_refused_twice_fails_retryable_without_a_refresh_loop(sqlite_env: Env) -> None:
    e = sqlite_env
    opt_out_dana(e)
    discovered(e)
    e.emulator.requests.clear()
    e.emulator.faults.set(expire_token_count=2, match=OK_CONTENT)
    process(e.app, e.services, limit=1)
    ok = row(e, "ok")
    assert ok.state == "failed" and ok.attempts == 1
    assert "HTTP 401 InvalidAuthenticationToken" in ok.reason
    assert content_statuses(e, "ok") == [401, 401]
    assert len(e.emulator.requests.token_requests()) == 1  # one refresh, then no loop
    assert staging_files(e) == []

    make_due(e)
    process(e.app, e.services, limit=20)
    assert_baseline(e)


# -- malformed and truncated JSON ---------------------------------------------------------

@pytest.mark.parametrize("truncated", [False, True], ids=["garbage", "truncated"])
@pytest.mark.parametrize("where", ["first-page", "second-page"])
def test_malformed_json_in_discovery_stores_nothing_then_next_poll_finds_all(
        sqlite_env: Env, truncated: bool, where: str) -> None:
    e = sqlite_env
    # The first request names the user `/users/{id}`, the nextLinks `users('{id}')`.
    match = "/users/" if where == "first-page" else "users('"
    e.emulator.faults.set(malformed_json_count=1, truncated_json=truncated, match=match)
    with e.graph() as graph:
        report = poll(e.app, graph)
    assert report.new == 0 and len(report.errors) == 1
    assert "malformed or truncated JSON body" in report.errors[0]
    assert "nothing was used from it" in report.errors[0]
    assert rows(e) == {} and delta_link(e) is None  # not half a listing: nothing at all
    discovered(e)


@pytest.mark.parametrize("truncated", [False, True], ids=["garbage", "truncated"])
@pytest.mark.parametrize("target", ["meeting", "attendanceReports"])
def test_malformed_json_in_participants_waits_then_stores(sqlite_env: Env, truncated: bool,
                                                          target: str) -> None:
    e = sqlite_env
    opt_out_dana(e)
    discovered(e)
    match = meeting_id("ok") + ("/attendanceReports" if target == "attendanceReports" else "")
    e.emulator.faults.set(malformed_json_count=1, truncated_json=truncated, match=match)
    process(e.app, e.services, limit=20)
    ok = row(e, "ok")
    assert ok.state == "waiting" and ok.attempts == 0
    assert "participants could not be read from Graph" in ok.reason
    assert content_statuses(e, "ok") == []  # fail closed
    assert staging_files(e) == []

    make_due(e)
    process(e.app, e.services, limit=20)
    assert row(e, "ok").state == "stored"
    assert_invariants(e)


# -- gone between listing and download ----------------------------------------------------

def test_recording_gone_before_download_fails_with_404_and_others_go_on(sqlite_env: Env) -> None:
    e = sqlite_env
    opt_out_dana(e)
    discovered(e)
    e.emulator.faults.set(not_found_recordings={recording_id("ok")})
    report = process(e.app, e.services, limit=20)
    assert len(report.outcomes) == 5  # no crash: every recording had its turn
    ok = row(e, "ok")
    assert ok.state == "failed" and ok.attempts == 1
    assert "HTTP 404" in ok.reason and "does not exist" in ok.reason
    assert ok.next_attempt_at is not None
    assert row(e, "optout").state == "blocked"
    assert "TranscriptionError" in row(e, "corrupt").reason
    assert staging_files(e) == []

    # It was a transient listing glitch after all: the retry finds and stores it.
    e.emulator.faults.reset()
    make_due(e)
    process(e.app, e.services, limit=20)
    assert_baseline(e)


def test_failed_rows_never_hold_a_lease(sqlite_env: Env) -> None:
    """A failed or waiting recording is free for any worker at its retry time."""
    e = sqlite_env
    discovered(e)
    e.emulator.faults.set(unavailable_count=10_000)
    process(e.app, e.services, limit=20)
    with e.app.session() as session:
        recs = session.exec(select(Recording)).all()
    assert {r.state for r in recs} == {"waiting"}
    assert all(r.lease_owner is None and r.next_attempt_at is not None for r in recs)
    assert staging_files(e) == []
