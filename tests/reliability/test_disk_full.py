"""Disk full in the staging dir: a 32 KiB tmpfs mounted over it (root only; skipped where mount
is not permitted). The download fails with a clear, retryable reason and leaves no partial
file; once there is room, the retry stores the transcript."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from meeting_governance.pipeline import poll, process
from mg_emulator.scenario import default_media_dir

from .conftest import Env, assert_invariants, make_due, row, staging_files


def _mount(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def full_staging(sqlite_env: Env) -> Iterator[Env]:
    staging = sqlite_env.settings.staging_dir
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = _mount(["-t", "tmpfs", "-o", "size=32k,mode=0700", "tmpfs", str(staging)])
    if mounted.returncode != 0:
        pytest.skip(f"mount is not permitted here: {mounted.stderr.strip()}")
    try:
        yield sqlite_env
    finally:
        subprocess.run(["umount", str(staging)], check=False)


def test_disk_full_in_staging_fails_retryable_and_leaves_no_partial_file(
        full_staging: Env) -> None:
    e = full_staging
    assert (default_media_dir() / "sample-1.m4a").stat().st_size > 32 * 1024  # cannot fit
    with e.graph() as graph:
        assert poll(e.app, graph).new == 5
    report = process(e.app, e.services, limit=20)
    assert len(report.outcomes) == 5  # the other recordings went on
    ok = row(e, "ok")
    assert ok.state == "failed" and ok.attempts == 1
    assert "could not write the recording" in ok.reason
    assert "No space left on device" in ok.reason and "free space" in ok.reason
    assert ok.next_attempt_at is not None
    assert staging_files(e) == []  # no partial file
    # The smaller corrupt file fit and failed for its own reason.
    assert "TranscriptionError" in row(e, "corrupt").reason

    # Room again: the retry goes through.
    remount = _mount(["-o", "remount,size=4m", str(e.settings.staging_dir)])
    assert remount.returncode == 0, remount.stderr
    make_due(e)
    process(e.app, e.services, limit=20)
    assert row(e, "ok").state == "stored"
    assert_invariants(e)
