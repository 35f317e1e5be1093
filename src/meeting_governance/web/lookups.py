"""Microsoft Graph as the web pages use it: one client per `serve` process, and an answer
within `web.graph_timeout_s` — or a plain "could not be checked".

Every look-up runs on a small pool of threads and the page waits for it until its deadline, so
a slow, throttled or unreachable Graph never leaves a page hanging: it gives a `GraphError`
that the page puts into words (`review.graph_trouble`). Throttling is not waited out (a person
is waiting; no retries), and the client's own connect and read timeouts are as short as the
deadline, so a look-up its page gave up on ends soon after.

The look-ups, each the one the command line makes: whom an address reaches (`check_person`,
as `optout add`), which meeting a join link names (`GraphMeetingResolver`, as `optout add
--meeting`), and every identifier of a data subject (`person_lookup`, as `dsr export`). What
they return is shown on a page; it is never stored in clear and never logged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Generic, TypeVar

from meeting_governance.config import Settings
from meeting_governance.context import AppContext
from meeting_governance.errors import GraphError, InputError
from meeting_governance.graph.client import GraphClient
from meeting_governance.graph.directory import lookup
from meeting_governance.graph.meetings import MeetingMatch, find_meeting, get_meeting
from meeting_governance.identity import normalise_object_id
from meeting_governance.people import (
    PersonIdentity,
    Registration,
    person_identity,
    resolve_registration,
)
from meeting_governance.web.review import ResolvedMeeting, graph_trouble

T = TypeVar("T")
WORKERS = 4  # look-ups in flight per process; more wait in line (and time out with their page)
NOT_CONFIGURED = "This server is not connected to Microsoft Graph"


def _seconds(value: float) -> str:
    return f"{value:g} second{'' if value == 1 else 's'}"


class Pending(Generic[T]):
    """A look-up on its way: `wait()` gives its answer, or raises GraphError once its deadline
    has passed (code `timeout`) or when Graph failed."""

    def __init__(self, future: Future[T] | None, deadline: float, timeout_s: float,
                 error: GraphError | None = None) -> None:
        self._future, self._deadline, self._timeout_s = future, deadline, timeout_s
        self._error = error

    def wait(self) -> T:
        if self._error is not None or self._future is None:
            raise self._error or GraphError(NOT_CONFIGURED, code="not_configured")
        try:
            return self._future.result(timeout=max(0.0, self._deadline - time.monotonic()))
        except FutureTimeout:
            self._future.cancel()  # still in line: never sent
            raise GraphError(f"Microsoft Graph did not answer within "
                             f"{_seconds(self._timeout_s)}", code="timeout",
                             retryable=True) from None


class PageGraph:
    """The process's Graph client for pages, built on first use, and the pool its look-ups
    run on. `configured` is false when no credential is set: nothing is asked then."""

    def __init__(self, settings: Settings, *, workers: int = WORKERS) -> None:
        graph = settings.graph
        self.timeout_s = settings.web.graph_timeout_s
        self.configured = bool(graph.client_secret or graph.certificate_path)
        self.organizers = tuple(graph.organizers)
        self._settings = graph.model_copy(update={
            "connect_timeout_s": min(graph.connect_timeout_s, self.timeout_s),
            "read_timeout_s": min(graph.read_timeout_s, self.timeout_s),
            "max_retries": 0, "max_retry_after_s": self.timeout_s})
        self._workers = workers
        self._lock = threading.Lock()
        self._client: GraphClient | None = None
        self._pool: ThreadPoolExecutor | None = None

    def _graph_client(self) -> GraphClient:
        with self._lock:
            if self._client is None:
                self._client = GraphClient.from_settings(self._settings)
            return self._client

    def submit(self, call: Callable[[GraphClient], T]) -> Pending[T]:
        """Start `call(client)` now; the deadline counts from here."""
        deadline = time.monotonic() + self.timeout_s
        if not self.configured:
            return Pending(None, deadline, self.timeout_s,
                           GraphError(NOT_CONFIGURED, code="not_configured"))
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="page-graph")
            pool = self._pool
        return Pending(pool.submit(lambda: call(self._graph_client())), deadline, self.timeout_s)

    def ask(self, call: Callable[[GraphClient], T]) -> T:
        """`call(client)` within the deadline, or GraphError."""
        return self.submit(call).wait()

    def close(self) -> None:
        """At shutdown: look-ups still in line are dropped, running ones end on their timeouts."""
        with self._lock:
            pool, client = self._pool, self._client
            self._pool = self._client = None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if client is not None:
            client.close()


# -- whom an opt-out's identity reaches ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PersonCheck:
    """The directory's answer for an opt-out's identity, or why there is none (`problem`)."""

    registration: Registration | None
    problem: str = ""


def start_person_check(ctx: AppContext, graph: PageGraph, *, email: str | None,
                       object_id: str | None) -> Pending[Registration]:
    """Ask the directory (as `optout add` does) whom a validated identity reaches."""
    return graph.submit(lambda client: resolve_registration(ctx, client, email=email,
                                                            object_id=object_id))


def person_check(pending: Pending[Registration]) -> PersonCheck:
    try:
        return PersonCheck(pending.wait())
    except GraphError as exc:
        return PersonCheck(None, graph_trouble(exc))


# -- which meeting a link names --------------------------------------------------------------
class GraphMeetingResolver:
    """`review.MeetingResolver` through Graph: a long or short join link by the documented
    `$filter` look-ups (`graph.meetings.find_meeting`, the organisers in scope asked in turn for
    a short link), a Graph meeting id directly; the organiser named from the directory."""

    def __init__(self, graph: PageGraph) -> None:
        self.graph = graph

    def resolve(self, reference: str, *, tenant_id: str | None,
                organizer_id: str | None) -> ResolvedMeeting | None:
        organizers = self.graph.organizers
        return self.graph.ask(lambda client: _resolve(client, reference, organizer_id,
                                                      organizers))


def _resolve(client: GraphClient, reference: str, organizer_id: str | None,
             organizers: tuple[str, ...]) -> ResolvedMeeting | None:
    match: MeetingMatch | None
    try:
        match = find_meeting(client, reference, organizers)
    except InputError:  # not a join link: a Graph meeting id, which encodes its organiser
        match = (get_meeting(client, organizer_id, "".join(reference.split()))
                 if organizer_id else None)
    if match is None:
        return None
    return ResolvedMeeting(subject=match.subject or "(no subject)", start=match.start,
                           organiser=_organiser(client, match.organizer_id), end=match.end,
                           meeting_id=match.meeting_id, join_url=match.join_url,
                           join_meeting_id=match.join_meeting_id)


def _organiser(client: GraphClient, object_id: str) -> str:
    """The organiser as a coordinator knows them (name and address), else their object id."""
    try:
        user = lookup(client, object_ids=[object_id]).by_id.get(normalise_object_id(object_id))
    except GraphError:
        return object_id
    if user is None or not user.display_name:
        return object_id
    return f"{user.display_name} ({user.upn})" if user.upn else user.display_name


# -- a data subject (the DPO desk) -------------------------------------------------------------
def person_lookup(ctx: AppContext, graph: PageGraph, *, email: str | None,
                  object_id: str | None, only_given: bool) -> PersonIdentity:
    """Every identifier of a data subject from the directory (as `dsr export` does), or — only
    when asked (`only_given`, the command line's `--offline`) — the identity given alone.
    GraphError when the directory cannot be read; `people.AmbiguousIdentity` for an address
    several accounts share."""
    if only_given:
        return person_identity(ctx, email=email, object_id=object_id, graph=None)
    return graph.ask(lambda client: person_identity(ctx, email=email, object_id=object_id,
                                                    graph=client))


__all__ = ["GraphMeetingResolver", "PageGraph", "Pending", "PersonCheck", "person_check",
           "person_lookup", "start_person_check"]
