"""Runtime fault knobs and the request log of the emulator; both are safe to use across threads.

Tests set a knob, run the client, then read `EmulatorServer.requests` to prove what was asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the emulator saw it: no headers, no bodies."""

    method: str
    path: str  # still percent-encoded, exactly as sent
    query: str
    time: float
    status: int
    in_batch: bool = False  # one request inside a POST /$batch (not an HTTP request itself)

    @property
    def is_token(self) -> bool:
        return self.path.endswith("/oauth2/v2.0/token")

    @property
    def is_graph(self) -> bool:
        return self.path.startswith("/v1.0/")


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def add(self, method: str, path: str, query: str, status: int, *,
            in_batch: bool = False) -> None:
        with self._lock:
            self._entries.append(LoggedRequest(method, path, query, time.time(), status,
                                               in_batch))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def all(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def __iter__(self) -> Iterator[LoggedRequest]:
        return iter(self.all())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def token_requests(self) -> list[LoggedRequest]:
        return [r for r in self.all() if r.is_token]

    def graph_requests(self) -> list[LoggedRequest]:
        """HTTP requests to Graph (a `$batch` counts once; see `batched_requests`)."""
        return [r for r in self.all() if r.is_graph and not r.in_batch]

    def batched_requests(self) -> list[LoggedRequest]:
        """The requests that travelled inside `$batch` calls."""
        return [r for r in self.all() if r.in_batch]

    def openid_requests(self) -> list[LoggedRequest]:
        return [r for r in self.all() if r.path.endswith("/.well-known/openid-configuration")]


@dataclass
class Faults:
    """Knobs; each counted fault fires that many times on Graph calls, then switches itself off.

    `match` narrows the counted HTTP faults to paths containing that (decoded) text.
    """

    throttle_count: int = 0
    throttle_retry_after: str = "1.5"
    throttle_status: int = 429
    unavailable_count: int = 0
    unavailable_status: int = 503
    forbidden_count: int = 0  # 403 Authorization_RequestDenied (a permission not granted)
    malformed_json_count: int = 0
    truncated_json: bool = False  # malformed as a cut-off body rather than garbage
    expire_token_count: int = 0  # 401 InvalidAuthenticationToken; revokes tokens issued so far
    cut_download_after: int | None = None  # close the connection after N bytes of content
    cut_download_count: int = 0
    range_supported: bool = True
    missing_attendance: set[str] = field(default_factory=set)  # meeting ids; "*" for all
    not_found_recordings: set[str] = field(default_factory=set)
    duplicate_across_pages: bool = False  # repeat the last item of a page on the next one
    delay_s: float = 0.0  # a slow Graph: every Graph request (a $batch once) answers this late
    match: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def reset(self) -> None:
        with self._lock:
            fresh = Faults()
            for name in self.__dataclass_fields__:
                if name != "_lock":
                    setattr(self, name, getattr(fresh, name))

    def set(self, **knobs: object) -> None:
        """Set several knobs at once (under the lock)."""
        with self._lock:
            for name, value in knobs.items():
                if name.startswith("_") or name not in self.__dataclass_fields__:
                    raise AttributeError(f"no fault knob named {name!r}")
                setattr(self, name, value)

    def take(self, counter: str, path: str) -> bool:
        """Consume one firing of a counted fault if it applies to this path."""
        with self._lock:
            if self.match and self.match not in path:
                return False
            left = getattr(self, counter)
            if left <= 0:
                return False
            setattr(self, counter, left - 1)
            return True

    def take_cut(self) -> int | None:
        with self._lock:
            if self.cut_download_after is None or self.cut_download_count <= 0:
                return None
            self.cut_download_count -= 1
            return self.cut_download_after

    def attendance_missing(self, meeting_id: str) -> bool:
        with self._lock:
            return "*" in self.missing_attendance or meeting_id in self.missing_attendance

    def recording_missing(self, recording_id: str) -> bool:
        with self._lock:
            return recording_id in self.not_found_recordings
