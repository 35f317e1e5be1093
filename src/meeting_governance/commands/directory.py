"""The directory as commands use it: who an identity reaches, asked once, explained plainly.

Registering an opt-out never fails because the directory cannot be read (it then matches the
identifier given until the daemon resolves it); a data-subject request or a person hold does,
unless `--offline` says to search by the identity given only.
"""

from __future__ import annotations

from meeting_governance.context import AppContext
from meeting_governance.errors import GovernanceError, GraphError
from meeting_governance.graph import GraphClient
from meeting_governance.people import (
    PersonIdentity,
    Registration,
    person_identity,
    resolve_registration,
)

OFFLINE_HELP = ("Do not ask the directory for the person's other addresses: search by the "
                "identity given only (the report says so).")


def registration_for(app: AppContext, *, email: str | None,
                     object_id: str | None) -> tuple[Registration | None, str | None]:
    """The directory's answer for an opt-out's identity, or (None, why it was not had)."""
    try:
        with GraphClient.from_settings(app.settings.graph) as graph:
            return resolve_registration(app, graph, email=email, object_id=object_id), None
    except GovernanceError as exc:
        return None, (f"the directory could not be asked ({exc.__class__.__name__}: "
                      f"{getattr(exc, 'code', None) or 'see the log'}); saved with this "
                      "identifier only — the daemon resolves it on its next refresh")


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
