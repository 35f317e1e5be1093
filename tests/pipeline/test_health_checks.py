"""What `/healthz` decides, from the database every daemon process shares (both engines).

Each condition is made the way it happens: a job's failure recorded as the daemon records it,
a schedule written by a real APScheduler into the job store, recordings discovered and
claimed through the real lease code, a keyring file that went away.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from meeting_governance.clock import FixedClock
from meeting_governance.context import AppContext
from meeting_governance.daemon import Runtime, build_scheduler
from meeting_governance.errors import GraphError
from meeting_governance.health import DatabaseCollector, Health, check, classify, record_run
from meeting_governance.locks import claim, renew_lease
from meeting_governance.models import Recording

NO_SECRET = GraphError("no Graph credential is configured: set graph.client_secret "
                       "(MG_GRAPH__CLIENT_SECRET) or graph.certificate_path and "
                       "graph.certificate_thumbprint")


def test_a_new_installation_is_healthy(app: AppContext) -> None:
    health = check(app)
    assert health.ok and health.as_json()["status"] == "ok"
    assert health.reasons == () and health.queue == {}


def test_a_failed_poll_is_degraded_with_its_cause_until_a_poll_succeeds(app: AppContext) -> None:
    cause, text = classify(NO_SECRET)
    assert cause == "credential"
    record_run(app, "poll", "host:1", cause=cause, error=text)
    record_run(app, "poll", "host:1", cause=cause, error=text)

    health = check(app)
    assert not health.ok
    assert health.reasons == (f"poll failed: {NO_SECRET} (2 times in a row)",)
    assert health.as_json()["jobs"]["poll"]["cause"] == "credential"

    record_run(app, "poll", "host:2")
    health = check(app)
    assert health.ok, health.reasons
    assert health.jobs["poll"].failures == 0 and health.jobs["poll"].last_success_at is not None


def test_causes_are_classified_and_never_carry_an_address() -> None:
    cases = {
        GraphError("sign-in failed with invalid_client: check graph.client_id",
                   code="invalid_client"): "sign_in",
        GraphError("Forbidden", status=403, code="Authorization_RequestDenied"): "forbidden",
        GraphError("Too many requests", status=429): "throttled",
        GraphError("the token request failed (ConnectionError)", retryable=True): "unreachable",
        GraphError("Service unavailable", status=503, retryable=True): "graph_server",
        GraphError("User jane.doe@contoso.example was not found", status=404): "graph",
    }
    for exc, expected in cases.items():
        cause, text = classify(exc)
        assert cause == expected, (exc, cause)
        assert "jane.doe@contoso.example" not in text
    assert classify(GraphError("User jane.doe@contoso.example was not found",
                               status=404))[1] == "User [redacted] was not found"


def test_a_scheduled_job_that_no_daemon_ran_is_overdue(app: AppContext) -> None:
    """A real scheduler writes the shared schedule, then stops (a daemon gone or stuck): once
    the poll is later than daemon.health_overdue_seconds, health says so."""
    scheduler = build_scheduler(Runtime(app=app, worker="host:1"))
    scheduler.start(paused=True)
    scheduler.shutdown(wait=False)
    health = check(app)
    assert health.ok, health.reasons
    poll_due = health.next_runs["poll"]

    grace = app.settings.daemon.health_overdue_seconds

    def poll_overdue(health: Health) -> list[str]:
        # Only the poll's own reason: another job (the checkpoint, due at a time of day) may
        # fall due first, depending on when the test runs.
        return [r for r in health.reasons if r.startswith("poll is overdue: due ")]

    app.clock = FixedClock(poll_due + timedelta(seconds=grace - 1))
    assert not poll_overdue(check(app))
    app.clock = FixedClock(poll_due + timedelta(seconds=grace + 60))
    health = check(app)
    assert not health.ok
    overdue = poll_overdue(health)
    assert overdue, health.reasons
    assert "no daemon ran it" in overdue[0]


def _discover(app: AppContext, at: datetime, n: int) -> None:
    with app.session() as session:
        for i in range(n):
            session.add(Recording(graph_recording_id=f"rec-{at.timestamp()}-{i}",
                                  meeting_id="m", organizer_id="o", first_seen_at=at,
                                  updated_at=at))


def test_queued_work_with_no_progress_is_degraded_and_a_lease_renewal_is_progress(
        app: AppContext) -> None:
    t0 = datetime(2026, 11, 20, 9, tzinfo=UTC)
    app.clock = FixedClock(t0)
    _discover(app, t0, 2)
    assert check(app).ok  # just discovered: queued, not stalled

    stall = app.settings.daemon.health_stall_minutes
    app.clock = FixedClock(t0 + timedelta(minutes=stall + 1))
    health = check(app)
    assert health.reasons == (f"no recording has progressed for {int(stall) + 1} minutes while "
                              "2 are queued: are the workers running?",)
    assert health.queue == {"discovered": 2}
    assert health.oldest_waiting_s == (stall + 1) * 60

    registry = CollectorRegistry()
    registry.register(DatabaseCollector(app))
    text = generate_latest(registry).decode()
    assert 'mg_queue_depth{state="discovered"} 2.0' in text
    assert f"mg_queue_oldest_age_seconds {(stall + 1) * 60:.1f}" in text
    assert "mg_healthy 0.0" in text and "mg_database_up 1.0" in text

    # A worker takes one and keeps its lease alive (a long transcription changes no state).
    [taken] = claim(app, "host:1", 1)
    assert renew_lease(app, taken, "host:1")
    assert check(app).ok


def test_last_success_per_job_is_a_metric(app: AppContext) -> None:
    app.clock = FixedClock(datetime(2026, 11, 20, 9, tzinfo=UTC))
    record_run(app, "poll", "host:1")
    record_run(app, "purge", "host:1", cause="database", error="OperationalError: locked")
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(app))
    samples = {(s.name, s.labels.get("job")): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    stamp = datetime(2026, 11, 20, 9, tzinfo=UTC).timestamp()
    assert samples[("mg_job_last_success_timestamp_seconds", "poll")] == stamp
    assert samples[("mg_job_failures_in_a_row", "purge")] == 1.0
    assert ("mg_job_last_success_timestamp_seconds", "purge") not in samples


def test_a_keyring_that_went_away_is_degraded(app: AppContext) -> None:
    app.settings.keys_file.rename(app.settings.keys_file.with_suffix(".moved"))
    health = check(app)
    assert len(health.reasons) == 1
    assert health.reasons[0].startswith("keyring unreachable (KeyError_: keyring file ")
    assert "does not exist" in health.reasons[0]


def test_two_processes_recording_a_job_at_once_both_count(app: AppContext) -> None:
    """Every worker runs `process`: the first two may both find no row and insert it."""
    import threading

    barrier = threading.Barrier(4)

    def run(n: int) -> None:
        barrier.wait()
        record_run(app, "process", f"host:{n}", cause="other", error="boom")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert check(app).jobs["process"].failures == 4
