"""Small builders shared by the opt-out tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from meeting_governance.context import AppContext
from meeting_governance.identity import Participant, ParticipantKind
from meeting_governance.optouts import OptOutRequest, OptOutView, add_optout

THREAD = "19:meeting_NzQ5MjY2ZjEtYjQ0Zi00YTllLTlkYmE@thread.v2"
JOIN_URL = ("https://teams.microsoft.com/l/meetup-join/19%3ameeting_NzQ5MjY2ZjEtYjQ0Zi00YTllLTlkYmE"
            "%40thread.v2/0?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c"
            "%22Oid%22%3a%22dc17674c-81d9-4adb-bfb2-8f6a442e4d04%22%7d")
OID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def person(email: str | None = None, object_id: str | None = None,
           name: str | None = None) -> Participant:
    return Participant.make(kind=ParticipantKind.USER, email=email, object_id=object_id,
                            display_name=name)


def add(app: AppContext, **fields: Any) -> OptOutView:
    with app.session() as session:
        return add_optout(app, session, OptOutRequest(**fields), actor="coordinator:ana")


def once(app: AppContext, key: str, make: Callable[[], str]) -> str:
    """Hypothesis runs many examples on one function-scoped `app`: set its data up only once."""
    cache: dict[str, str] = app.__dict__.setdefault("_test_once", {})
    if key not in cache:
        cache[key] = make()
    return cache[key]
