"""The directory as commands use it: who an identity reaches, asked once, explained plainly.

Registering an opt-out never fails because the directory cannot be read (it then matches the
identifier given until the daemon resolves it); a data-subject request or a person hold does,
unless `--offline` says to search by the identity given only.
"""

from __future__ import annotations

from meeting_governance.context import AppContext
from meeting_governance.errors import GraphError
from meeting_governance.graph import GraphClient
from meeting_governance.people import PersonIdentity, person_identity, registration_for

OFFLINE_HELP = ("Do not ask the directory for the person's other addresses: search by the "
                "identity given only (the report says so).")


__all__ = ["OFFLINE_HELP", "identity_for", "registration_for"]


def identity_for(app: AppContext, *, email: str | None, object_id: str | None,
                 offline: bool) -> PersonIdentity:
    """Every identifier of a data subject, or a clear error naming `--offline`."""
    if offline:
        return person_identity(app, email=email, object_id=object_id, graph=None)
    try:
        with GraphClient.from_settings(app.settings.graph) as graph:
            return person_identity(app, email=email, object_id=object_id, graph=graph)
    except GraphError as exc:
        raise GraphError(f"the directory could not be asked for every address of this person "
                         f"({exc}); retry when it can be reached, or pass --offline to search "
                         "by the identity given only", status=exc.status, code=exc.code,
                         retryable=exc.retryable) from None
