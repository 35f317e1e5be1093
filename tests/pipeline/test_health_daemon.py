"""`/healthz` and `/metrics` of a real daemon, started as an administrator starts it (issue 17).

A daemon with the tenant configured but no client secret used to say nothing, keep running and
answer `{"status": "ok"}`. Here it answers 503 with the cause, logs it (and, with `-v`,
prints it); once the secret is right it is ok again. A database that goes away turns it 503
too, and with `--workers 2` one endpoint carries the metrics of both processes.
"""

from __future__ import annotations

import json
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from meeting_governance.context import initialise
from mg_emulator import EmulatorServer, Organizer, Scenario
from mg_emulator.scenario import default_media_dir
from tests.conftest import make_settings
from tests.tcp_proxy import TcpProxy

from .conftest import subprocess_env
from .test_daemon import free_port, wait_for

pytestmark = pytest.mark.slow

ORG = "6f1c3a52-8d0e-4b7a-9c21-3e5f7a9b1c01"
NO_SECRET = ("poll failed: no Graph credential is configured: set graph.client_secret "
             "(MG_GRAPH__CLIENT_SECRET)")


def quiet_tenant() -> Scenario:
    """One organiser in scope, no recordings: polls succeed and nothing is transcribed."""
    return Scenario(tenant_id="health-tenant", client_id="health-client",
                    client_secret="health-secret",
                    organizers=(Organizer(id=ORG, upn="alex@contoso.example"),))


def healthz(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None  # not listening yet


def metrics(port: int) -> list[Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def wait_health(port: int, want: Callable[[int, dict[str, Any]], bool], timeout: float,
                what: str) -> tuple[int, dict[str, Any]]:
    seen: list[tuple[int, dict[str, Any]]] = []

    def ready() -> bool:
        answer = healthz(port)
        if answer is not None:
            seen.append(answer)
        return answer is not None and want(*answer)

    try:
        wait_for(ready, timeout, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answer: {seen[-1:] }") from None
    return seen[-1]


def start(env: dict[str, str], out: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "meeting_governance", *args], env=env,
                            stdout=(out.with_suffix(".out")).open("wb"),
                            stderr=(out.with_suffix(".err")).open("wb"))


def stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=120) == 0


def test_a_daemon_without_its_client_secret_is_503_with_the_cause_and_ok_once_fixed(
        home: Path, tmp_path: Path) -> None:
    initialise(make_settings(home), home / "config.toml")
    port = free_port()
    with EmulatorServer(quiet_tenant(), media_dir=default_media_dir(),
                        state_dir=tmp_path / "emu") as emulator:
        base = subprocess_env(home, emulator, MG_DAEMON__METRICS_PORT=str(port),
                              MG_DAEMON__POLL_INTERVAL_MINUTES="1")

        # 1. The secret missing, started with -v as the administrator did.
        daemon = start({**base, "MG_GRAPH__CLIENT_SECRET": ""}, tmp_path / "missing",
                       "-v", "daemon")
        try:
            wait_health(port, lambda code, body: True, 180, "the health endpoint to answer")
            answering = time.monotonic()
            code, body = wait_health(port, lambda code, body: code == 503, 60,
                                     "/healthz to turn 503 within one poll interval (60 s)")
            assert time.monotonic() - answering < 60
            assert body["status"] == "degraded"
            assert any(r.startswith(NO_SECRET) for r in body["reasons"]), body["reasons"]
            assert body["jobs"]["poll"]["cause"] == "credential"
            samples = metrics(port)
            assert [s for s in samples if s.name == "mg_poll_errors_total"
                    and s.labels == {"cause": "credential"} and s.value >= 1]
            assert [s.value for s in samples if s.name == "mg_healthy"] == [0.0]
            stop(daemon)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        # -v: the cause on the terminal, as JSON lines like the log file's.
        stderr = (tmp_path / "missing.err").read_text()
        failed = [json.loads(line) for line in stderr.splitlines()
                  if line.startswith("{") and "poll job failed" in line]
        assert failed and failed[0]["cause"] == "credential"
        assert "MG_GRAPH__CLIENT_SECRET" in failed[0]["msg"]
        log_file = home / "logs" / "meeting-governance.jsonl"
        assert "no Graph credential is configured" in log_file.read_text()
        assert stat.S_IMODE(log_file.stat().st_mode) == 0o600

        # 2. A wrong secret: the sign-in authority refuses it, and health says that instead.
        daemon = start({**base, "MG_GRAPH__CLIENT_SECRET": "not-the-secret"},
                       tmp_path / "wrong", "daemon")
        try:
            code, body = wait_health(
                port, lambda code, body: any(r.startswith(f"poll failed: organiser {ORG}: "
                                                          "sign-in failed with invalid_client")
                                             for r in body["reasons"]),
                180, "/healthz to name the refused sign-in")
            assert code == 503 and body["jobs"]["poll"]["cause"] == "sign_in"
            stop(daemon)
        finally:
            if daemon.poll() is None:
                daemon.kill()

        # 3. Fixed: the next poll succeeds and health is ok again.
        daemon = start(base, tmp_path / "fixed", "daemon")
        try:
            code, body = wait_health(port, lambda code, body: code == 200, 180,
                                     "/healthz to be ok once the secret is right")
            assert body["status"] == "ok" and body["reasons"] == []
            assert body["jobs"]["poll"]["last_success"] is not None
            stop(daemon)
        finally:
            if daemon.poll() is None:
                daemon.kill()
    assert "health-secret" not in log_file.read_text()


@pytest.mark.postgres
def test_a_database_that_goes_away_turns_healthz_503_and_back(
        pg_schema_url: str, home: Path, tmp_path: Path) -> None:
    url = make_url(pg_schema_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    initialise(make_settings(home, via_proxy), home / "config.toml")
    port = free_port()
    with EmulatorServer(quiet_tenant(), media_dir=default_media_dir(),
                        state_dir=tmp_path / "emu") as emulator:
        env = subprocess_env(home, emulator, via_proxy, MG_DAEMON__METRICS_PORT=str(port),
                             MG_DAEMON__WORKERS="1", MG_TRANSCRIPTION__CPU_THREADS="1")
        daemon = start(env, tmp_path / "daemon", "daemon")
        try:
            wait_health(port, lambda code, body: code == 200 and "poll" in body["jobs"], 180,
                        "the daemon to be healthy")
            proxy.cut()
            _code, body = wait_health(port, lambda code, body: code == 503, 60,
                                     "/healthz to notice the database is gone")
            assert body["reasons"][0].startswith("database unreachable (OperationalError: ")
            assert "check database.url (MG_DATABASE__URL)" in body["reasons"][0]
            assert [s.value for s in metrics(port) if s.name == "mg_database_up"] == [0.0]
            proxy.restore()
            wait_health(port, lambda code, body: code == 200, 120,
                        "/healthz to be ok once the database is back")
            stop(daemon)
        finally:
            if daemon.poll() is None:
                daemon.kill()
            proxy.cut()


@pytest.mark.postgres
def test_two_worker_processes_report_through_one_metrics_endpoint(
        pg_schema_url: str, home: Path, tmp_path: Path) -> None:
    initialise(make_settings(home, pg_schema_url), home / "config.toml")
    port = free_port()
    with EmulatorServer(quiet_tenant(), media_dir=default_media_dir(),
                        state_dir=tmp_path / "emu") as emulator:
        env = subprocess_env(home, emulator, pg_schema_url, MG_DAEMON__METRICS_PORT=str(port),
                             MG_TRANSCRIPTION__CPU_THREADS="1",
                             MG_DAEMON__PROCESS_INTERVAL_SECONDS="1")
        daemon = start(env, tmp_path / "daemon", "daemon", "--workers", "2")
        try:
            def both_workers() -> bool:
                try:
                    samples = metrics(port)
                except OSError:
                    return False
                workers = {s.labels["role"]: int(s.labels["pid"]) for s in samples
                           if s.name == "mg_worker_info"}
                runs = [s for s in samples if s.name == "mg_job_runs_total"
                        and s.labels == {"job": "process", "outcome": "ok"}]
                return len(workers) == 2 and bool(runs) and runs[0].value >= 2

            wait_for(both_workers, 240, "metrics from both worker processes")
            samples = metrics(port)
            pids = {s.labels["role"]: int(s.labels["pid"]) for s in samples
                    if s.name == "mg_worker_info"}
            assert pids["scheduler"] == daemon.pid
            assert pids["worker"] != daemon.pid
            metrics_dir = home / "metrics" / str(daemon.pid)
            written = {p.name for p in metrics_dir.iterdir()}
            assert any(name.endswith(f"_{pids['worker']}.db") for name in written), written
            assert healthz(port) is not None and healthz(port)[0] == 200  # type: ignore[index]
            stop(daemon)
        finally:
            if daemon.poll() is None:
                daemon.kill()
    assert not metrics_dir.exists()  # the daemon cleans up its metrics files
