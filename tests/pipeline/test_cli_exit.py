"""`process` as an operator scripts it: a non-zero exit when a recording failed in the run, and
a preflight that stops a broken installation before any recording is claimed or downloaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meeting_governance.context import initialise
from meeting_governance.exitcodes import ExitCode
from meeting_governance.transcribe import resolve_model
from mg_emulator import EmulatorServer
from tests.conftest import make_settings

from .conftest import subprocess_env
from .test_daemon import states

CLI = [sys.executable, "-m", "meeting_governance"]


def _ready(home: Path, emulator: EmulatorServer, **extra: str) -> dict[str, str]:
    initialise(make_settings(home), home / "config.toml")
    env = subprocess_env(home, emulator, **extra)
    subprocess.run([*CLI, "poll"], env=env, check=True, capture_output=True, timeout=120)
    emulator.requests.clear()
    return env


def _nothing_fetched(emulator: EmulatorServer, home: Path) -> None:
    assert not [r for r in emulator.requests.all() if r.path.endswith("/content")]
    assert not list((home / "staging").glob("*/*"))


@pytest.mark.slow  # `process` in a child transcribes with the real model
def test_process_exits_1_when_a_recording_failed_and_says_a_retry_is_pending(
        home: Path, emulator: EmulatorServer) -> None:
    env = _ready(home, emulator)
    done = subprocess.run([*CLI, "process", "--json"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == ExitCode.FAILED, done.stderr
    outcomes = json.loads(done.stdout)  # --json: stdout is JSON only, whatever the exit code
    by_state = {o["state"] for o in outcomes}
    assert {"stored", "failed"} <= by_state
    assert "1 of" in done.stderr and "recordings list --state failed" in done.stderr
    listed = subprocess.run([*CLI, "recordings", "list", "--json", "--state", "failed"],
                            env=env, capture_output=True, text=True, timeout=120)
    failed = json.loads(listed.stdout)
    assert len(failed) == 1 and failed[0]["retry_pending"] and not failed[0]["given_up"]
    assert failed[0]["status"].startswith("retry pending (attempt 1/")
    # Nothing left to do now (the failed one waits for its retry): exit 0.
    again = subprocess.run([*CLI, "process"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == ExitCode.OK, again.stderr
    assert "Nothing to process." in again.stdout


def test_a_damaged_model_stops_process_and_daemon_before_anything_is_claimed(
        home: Path, emulator: EmulatorServer, tmp_path: Path) -> None:
    broken = tmp_path / "half-copied-model"
    broken.mkdir()
    shutil.copy(resolve_model("tiny.en") / "model.bin", broken / "model.bin")  # no config.json
    env = _ready(home, emulator, MG_TRANSCRIPTION__MODEL=str(broken))
    db = f"sqlite:///{home / 'meeting-governance.db'}"
    before = states(db)
    for command in (["process"], ["daemon"]):
        done = subprocess.run([*CLI, *command], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == ExitCode.PREFLIGHT, done.stderr
        assert "config.json is missing" in done.stderr and "reinstall" in done.stderr
        assert "Traceback" not in done.stderr
    assert states(db) == before == {"discovered": len(emulator.scenario.recordings)}
    _nothing_fetched(emulator, home)


@pytest.mark.parametrize(("variable", "names"), [
    ("MG_PURGE__RECEIPTS_DIR", "purge.receipts_dir"),
    ("MG_LOGGING__FILE", "logging.file"),
])
def test_a_configured_path_that_cannot_be_written_stops_process(
        home: Path, emulator: EmulatorServer, tmp_path: Path, variable: str, names: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = _ready(home, emulator)
    env[variable] = str(blocker / "sub" / ("x.jsonl" if "FILE" in variable else "receipts"))
    done = subprocess.run([*CLI, "process"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == ExitCode.PREFLIGHT, done.stderr
    assert names in done.stderr and "is not a directory" in done.stderr
    _nothing_fetched(emulator, home)


def test_a_missing_keyring_stops_process_naming_init(home: Path, emulator: EmulatorServer
                                                     ) -> None:
    env = _ready(home, emulator)
    (home / "keys" / "keys.json").rename(home / "keys" / "elsewhere.json")
    done = subprocess.run([*CLI, "process"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == ExitCode.PREFLIGHT, done.stderr
    assert "keyring" in done.stderr and "meeting-governance init" in done.stderr
    _nothing_fetched(emulator, home)


@pytest.mark.slow  # `process` in a child transcribes with the real model
def test_process_on_a_terminal_shows_progress_and_where_each_recording_ended(
        home: Path, emulator: EmulatorServer) -> None:
    """On a terminal (a pseudo-terminal here) `process` draws its bar on stderr and says where
    each recording ended; piped (the tests above) it prints the table only."""
    import os
    import pty

    env = _ready(home, emulator, COLUMNS="160")
    primary, secondary = pty.openpty()
    try:
        child = subprocess.Popen([*CLI, "process"], env=env, stdin=subprocess.DEVNULL,
                                 stdout=secondary, stderr=secondary)
        os.close(secondary)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        code = child.wait(timeout=600)
    finally:
        os.close(primary)
    seen = b"".join(chunks).decode("utf-8", errors="replace")
    assert code == ExitCode.FAILED, seen[-2000:]
    assert "transcribing" in seen or "downloading" in seen
    assert ": stored" in seen and ": failed" in seen
