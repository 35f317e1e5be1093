"""A worker leases only what it is about to work on, and keeps at the queue until it is empty.

Both matter for throughput with several workers: recordings leased in a batch but not started
keep a second worker idle until those leases expire; a worker that stops after a fixed number
of recordings per interval leaves its cores idle while work is due.
"""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from meeting_governance.models import Recording
from meeting_governance.pipeline import SilentReporter, poll, process

from .conftest import Env


@pytest.fixture
def env(fake_env: Env) -> Env:
    """Leases, not words: the FakeTranscriber is enough."""
    return fake_env


class LeaseWatcher(SilentReporter):
    """At each transcription, which recordings carry a lease, and whose."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.leased: list[list[int]] = []

    def step(self, recording_id: int, step: str) -> None:
        if step == "transcribe":
            with self.env.app.session() as session:
                self.leased.append(sorted(session.exec(select(Recording.id).where(
                    col(Recording.lease_owner).is_not(None))).all()))


def test_only_the_recording_in_hand_is_leased(env: Env) -> None:
    with env.graph() as graph:
        poll(env.app, graph)
    watcher = LeaseWatcher(env)
    env.services.reporter = watcher

    report = process(env.app, env.services, limit=None)

    assert env.settings.daemon.process_batch == 1  # the default
    assert report.count("stored") == 2
    assert watcher.leased and all(len(leased) == 1 for leased in watcher.leased)


def test_a_larger_batch_leases_ahead_which_is_why_it_is_not_the_default(env: Env) -> None:
    env.app.settings.daemon.process_batch = 5
    with env.graph() as graph:
        poll(env.app, graph)
    watcher = LeaseWatcher(env)
    env.services.reporter = watcher

    process(env.app, env.services, limit=None)

    assert max(len(leased) for leased in watcher.leased) > 1


def test_without_a_limit_the_worker_drains_what_is_due_and_stops(env: Env) -> None:
    with env.graph() as graph:
        poll(env.app, graph)

    report = process(env.app, env.services, limit=None)

    # Every recording was taken once; what waits or failed is not due again yet.
    assert sorted(o.state for o in report.outcomes) == [
        "failed", "stored", "stored", "waiting", "waiting"]
    assert len({o.recording_id for o in report.outcomes}) == 5
    assert process(env.app, env.services, limit=None).outcomes == ()
