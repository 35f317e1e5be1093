"""Discovery that keeps working: a stored delta link built under another configuration (or by a
version that put an end date in the first request), one Graph rejects, or one for another host
is dropped and a new round starts — with a log line, a metric, an audit entry — and nothing is
stored twice; `poll --restart` does it by hand. Polls share one sign-in per process."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from sqlmodel import col, select

from meeting_governance.graph import GraphClient
from meeting_governance.models import AuditEntry, DeltaLink, Recording
from meeting_governance.observability import METRICS
from meeting_governance.pipeline import poll

from .conftest import ORG, Env, subprocess_env


@pytest.fixture
def env(fake_env: Env) -> Env:
    """Discovery transcribes nothing: no model needed."""
    return fake_env


def _poll(env: Env) -> object:
    with env.graph() as graph:
        return poll(env.app, graph)


def _link(env: Env) -> DeltaLink:
    with env.app.session() as session:
        row = session.get(DeltaLink, ORG)
    assert row is not None
    return row


def _restarts(env: Env) -> list[dict[str, str]]:
    with env.app.session() as session:
        rows = session.exec(select(AuditEntry).where(
            AuditEntry.action == "discovery.restarted").order_by(col(AuditEntry.seq))).all()
    return [json.loads(r.details) for r in rows]


def _recordings(env: Env) -> int:
    with env.app.session() as session:
        return len(session.exec(select(Recording)).all())


def test_a_link_from_before_this_version_is_restarted_once(env: Env, caplog) -> None:
    first = _poll(env)
    assert first.new == 5 and not first.restarted and _link(env).fingerprint
    with env.app.session() as session:  # what 0013 leaves on a database upgraded from 0002
        row = session.get(DeltaLink, ORG)
        row.fingerprint = None
        session.add(row)
    before = METRICS.discovery_restarts._value.get()
    with caplog.at_level(logging.WARNING, logger="meeting_governance.pipeline"):
        again = _poll(env)
    assert again.restarted == (ORG,) and again.new == 0 and _recordings(env) == 5
    assert METRICS.discovery_restarts._value.get() == before + 1
    assert any(r.getMessage() == "discovery restarted" for r in caplog.records)
    assert "another configuration" in _restarts(env)[0]["reason"]
    assert _link(env).fingerprint  # the new round's link is stamped
    assert not _poll(env).restarted


def test_a_changed_lookback_or_base_url_restarts(env: Env) -> None:
    _poll(env)
    env.app.settings.graph.lookback_days = 90
    assert _poll(env).restarted == (ORG,)
    assert not _poll(env).restarted


def test_a_link_graph_rejects_is_restarted_and_nothing_is_lost(env: Env) -> None:
    _poll(env)
    env.emulator.reset_sync_state()
    again = _poll(env)
    assert again.restarted == (ORG,) and _recordings(env) == 5
    assert "rejected" in _restarts(env)[-1]["reason"]


def test_polls_share_one_sign_in_per_process(env: Env) -> None:
    env.emulator.requests.clear()
    for _ in range(3):
        with GraphClient.from_settings(env.settings.graph) as graph:
            poll(env.app, graph)
    assert len(env.emulator.requests.token_requests()) == 1
    assert len(env.emulator.requests.openid_requests()) == 1


@pytest.mark.slow
def test_poll_restart_from_the_command_line(env: Env, home, db_url) -> None:
    _poll(env)
    run = subprocess.run([sys.executable, "-m", "meeting_governance", "poll", "--restart"],
                         env=subprocess_env(home, env.emulator, db_url), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "new round for 1 organiser" in run.stdout
    assert _recordings(env) == 5
    assert "restart requested" in _restarts(env)[-1]["reason"]
