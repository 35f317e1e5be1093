"""The directory as commands use it: who an identity reaches, asked once, explained plainly.

Registering an opt-out never fails because the directory cannot be read (it then matches the
identifier given until the daemon resolves it); a data-subject request or a person hold does,
unless `--offline` says to search by the identity given only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from meeting_governance.errors import GraphError
from meeting_governance.lazy import module

if TYPE_CHECKING:
    from meeting_governance import graph, people
    from meeting_governance.context import AppContext
    from meeting_governance.people import PersonIdentity, Registration
else:  # loaded when a command uses them: `--help` stays fast
    graph = module("meeting_governance.graph")
    people = module("meeting_governance.people")

OFFLINE_HELP = ("Do not ask the directory for the person's other addresses: search by the "
                "identity given only (the report says so).")


__all__ = ["OFFLINE_HELP", "identity_for", "registration_for"]


def identity_for(app: AppContext, *, email: str | None, object_id: str | None,
                 offline: bool) -> PersonIdentity:
    """Every identifier of a data subject, or a clear error naming `--offline`."""
    if offline:
        return people.person_identity(app, email=email, object_id=object_id, graph=None)
    try:
        with graph.GraphClient.from_settings(app.settings.graph) as client:
            return people.person_identity(app, email=email, object_id=object_id, graph=client)
    except GraphError as exc:
        raise GraphError(f"the directory could not be asked for every address of this person "
                         f"({exc}); retry when it can be reached, or pass --offline to search "
                         "by the identity given only", status=exc.status, code=exc.code,
                         retryable=exc.retryable) from None


def registration_for(app: AppContext, *, email: str | None,
                     object_id: str | None) -> tuple[Registration | None, str | None]:
    """`people.registration_for`, named here so command modules need not import `people`."""
    return people.registration_for(app, email=email, object_id=object_id)
