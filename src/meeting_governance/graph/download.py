"""Fetch a recording's bytes to a private file: streamed, bounded, resumable, hashed.

Graph documents `…/content` as a plain `200 OK` with no `Range` support, so a resume asks
with `Range` and accepts whichever answer comes: `206` continues, `200` starts over. Whatever
goes wrong, no partial file is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import requests

from meeting_governance.errors import GraphError
from meeting_governance.graph.client import GraphClient

Progress = Callable[[int, int | None], None]

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_SUFFIX = {"video/mp4": ".mp4", "audio/mp4": ".m4a", "audio/mpeg": ".mp3", "audio/wav": ".wav",
           "audio/x-wav": ".wav", "audio/flac": ".flac", "audio/ogg": ".ogg",
           "video/webm": ".webm"}
_DROPPED = (requests.exceptions.ChunkedEncodingError, requests.ConnectionError,
            requests.Timeout)


@dataclass(frozen=True, slots=True)
class DownloadResult:
    path: Path
    size: int
    sha256: str
    content_type: str


def content_url(client: GraphClient, organizer_id: str, meeting_id: str,
                recording_id: str) -> str:
    """Built from the ids: the reference's own `recordingContentUrl` samples are malformed."""
    return client.url("users", organizer_id, "onlineMeetings", meeting_id, "recordings",
                      recording_id, "content")


def private_dir(path: Path) -> Path:
    """Create `path` 0700 when missing (umask cannot widen it)."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)
    elif not path.is_dir():
        raise GraphError(f"the download directory {path} is not a directory; point the staging "
                         "directory elsewhere")
    return path


def _media_type(response: requests.Response) -> str:
    return (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()


def _expected_total(response: requests.Response, done: int) -> int | None:
    if response.status_code == 206:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
        if not match or int(match.group(1)) != done:
            raise GraphError("the server resumed the download at another offset than asked; "
                             "the download will restart", retryable=True)
        return int(match.group(3)) if match.group(3) != "*" else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def download_recording(
    client: GraphClient,
    organizer_id: str,
    meeting_id: str,
    recording_id: str,
    dest_dir: Path,
    *,
    max_bytes: int,
    allowed_content_types: Iterable[str],
    chunk_bytes: int = 1024 * 1024,
    resume_attempts: int = 5,
    progress: Progress | None = None,
) -> DownloadResult:
    """Stream one recording into a new 0600 file in `dest_dir` and return its path and hash."""
    allowed = {c.strip().lower() for c in allowed_content_types}
    url = content_url(client, organizer_id, meeting_id, recording_id)
    private_dir(Path(dest_dir))
    fd, name = tempfile.mkstemp(prefix="recording-", suffix=".part", dir=dest_dir)
    path = Path(name)
    digest = hashlib.sha256()
    done = 0
    drops = 0
    media_type = ""
    try:
        with os.fdopen(fd, "wb") as handle:
            while True:
                headers = {"Range": f"bytes={done}-", "Accept": "*/*"} if done else \
                    {"Accept": "*/*"}
                response = client.request("GET", url, kind="download", headers=headers,
                                          stream=True)
                with response:
                    media_type = _media_type(response)
                    if media_type not in allowed:
                        raise GraphError(
                            f"the recording's content type {media_type or 'none'!r} is not "
                            "allowed; add it to download.allowed_content_types if it is media",
                            status=response.status_code)
                    if done and response.status_code != 206:
                        # The server ignored Range: start over rather than splice.
                        handle.seek(0)
                        handle.truncate()
                        digest, done = hashlib.sha256(), 0
                    total = _expected_total(response, done)
                    if total is not None and total > max_bytes:
                        raise GraphError(
                            f"the recording is {total} bytes, over the limit of {max_bytes}; "
                            "raise download.max_bytes to accept it")
                    try:
                        for chunk in response.iter_content(chunk_size=chunk_bytes):
                            done += len(chunk)
                            if done > max_bytes:
                                raise GraphError(
                                    f"the recording exceeds the limit of {max_bytes} bytes; "
                                    "raise download.max_bytes to accept it")
                            digest.update(chunk)
                            handle.write(chunk)
                            if progress is not None:
                                progress(done, total)
                        if total is not None and done < total:
                            raise requests.exceptions.ChunkedEncodingError("short body")
                    except _DROPPED:
                        drops += 1
                        if drops > resume_attempts:
                            raise GraphError(
                                f"the download was cut {drops} times; it will be retried "
                                "later from the start", retryable=True) from None
                        handle.flush()
                        client.pause(drops - 1)
                        continue
                break
            handle.flush()
            os.fsync(handle.fileno())
        final = path.with_suffix(_SUFFIX.get(media_type, ".bin"))
        os.replace(path, final)
        path = final
    except GraphError:
        _remove(path)
        raise
    except OSError as exc:
        _remove(path)
        raise GraphError(
            f"could not write the recording to {dest_dir} ({exc.strerror or exc.__class__.__name__})"
            "; check free space and permissions, the download will be retried", retryable=True,
        ) from None
    except BaseException:
        _remove(path)
        raise
    return DownloadResult(path=path, size=done, sha256=digest.hexdigest(),
                          content_type=media_type)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
