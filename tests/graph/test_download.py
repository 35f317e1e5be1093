"""Downloads: private files, SHA-256, resume with Range, limits, and nothing left on failure."""

from __future__ import annotations

import hashlib
import itertools
import stat
from pathlib import Path

import pytest

from meeting_governance.errors import GraphError
from meeting_governance.graph import download_recording

from .emulator_scenario import (
    MEDIA_SIZE,
    MEETING_FULL,
    MEETING_WRONG_TYPE,
    ODD_MEETING,
    ODD_RECORDING,
    ORG_A,
    ORG_B,
)

ALLOWED = ["video/mp4", "audio/wav"]


def _download(client, dest: Path, *, meeting=MEETING_FULL, recording="VjIj-rec-1=",
              organizer=ORG_A, **kw):
    options = {"max_bytes": 10 * MEDIA_SIZE, "allowed_content_types": ALLOWED,
               "chunk_bytes": 16 * 1024, "resume_attempts": 3, **kw}
    return download_recording(client, organizer, meeting, recording, dest, **options)


def _expected_sha(media_dir: Path) -> str:
    return hashlib.sha256((media_dir / "clip.mp4").read_bytes()).hexdigest()


def _content_calls(emulator):
    return [r for r in emulator.requests.graph_requests() if r.path.endswith("/content")]


def test_download_is_private_hashed_and_reports_progress(client, tmp_path, media_dir):
    dest = tmp_path / "staging"
    seen: list[tuple[int, int | None]] = []
    result = _download(client, dest, progress=lambda done, total: seen.append((done, total)))
    assert result.size == MEDIA_SIZE
    assert result.sha256 == _expected_sha(media_dir)
    assert result.content_type == "video/mp4"
    assert result.path.parent == dest and result.path.suffix == ".mp4"
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert seen[-1] == (MEDIA_SIZE, MEDIA_SIZE)
    assert all(a[0] < b[0] for a, b in itertools.pairwise(seen))


def test_cut_download_resumes_with_range(emulator, client, tmp_path, media_dir, sleeps):
    emulator.faults.set(cut_download_after=100_000, cut_download_count=1)
    result = _download(client, tmp_path)
    assert result.sha256 == _expected_sha(media_dir)
    assert [r.status for r in _content_calls(emulator)] == [200, 206]
    assert len(sleeps.waits) == 1
    assert list(tmp_path.iterdir()) == [result.path]


def test_cut_download_restarts_when_range_is_ignored(emulator, client, tmp_path, media_dir):
    emulator.faults.set(cut_download_after=150_000, cut_download_count=1, range_supported=False)
    result = _download(client, tmp_path)
    assert result.sha256 == _expected_sha(media_dir)
    assert result.size == MEDIA_SIZE
    assert [r.status for r in _content_calls(emulator)] == [200, 200]


def test_too_many_cuts_give_up_retryable_and_leave_nothing(emulator, client, tmp_path):
    emulator.faults.set(cut_download_after=50_000, cut_download_count=10)
    with pytest.raises(GraphError, match="cut") as info:
        _download(client, tmp_path, resume_attempts=2)
    assert info.value.retryable
    assert list(tmp_path.iterdir()) == []
    assert len(_content_calls(emulator)) == 3


def test_size_limit_refuses_and_leaves_nothing(client, tmp_path):
    with pytest.raises(GraphError, match="over the limit") as info:
        _download(client, tmp_path, max_bytes=MEDIA_SIZE - 1)
    assert not info.value.retryable
    assert list(tmp_path.iterdir()) == []


def test_wrong_content_type_refuses_and_leaves_nothing(client, tmp_path):
    with pytest.raises(GraphError, match="content type 'text/html'") as info:
        _download(client, tmp_path, organizer=ORG_B, meeting=MEETING_WRONG_TYPE,
                  recording="VjIj-rec-7=")
    assert not info.value.retryable
    assert list(tmp_path.iterdir()) == []


def test_missing_recording_is_a_404_and_leaves_nothing(emulator, client, tmp_path):
    emulator.faults.set(not_found_recordings={"VjIj-rec-1="})
    with pytest.raises(GraphError) as info:
        _download(client, tmp_path)
    assert info.value.status == 404 and not info.value.retryable
    assert list(tmp_path.iterdir()) == []


def test_throttled_download_waits_then_succeeds(emulator, client, tmp_path, media_dir, sleeps):
    emulator.faults.set(throttle_count=1, throttle_retry_after="0.5", match="/content")
    assert _download(client, tmp_path).sha256 == _expected_sha(media_dir)
    assert sleeps.waits and sleeps.waits[0] >= 0.5


def test_odd_ids_download(client, tmp_path, media_dir):
    result = _download(client, tmp_path, meeting=ODD_MEETING, recording=ODD_RECORDING)
    assert result.sha256 == _expected_sha(media_dir)
