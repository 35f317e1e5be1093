"""The opt-out registry's identities and its version: what each opt-out matches, kept current.

Each opt-out matches every identifier in `optout_identifier`: the one registered, plus those
the directory resolved it to. Identifiers are only ever added (a person who loses an alias keeps
their opt-out; an alias handed to someone else makes the opt-out block them too — more, never
less). The daemon re-resolves opt-outs on its schedule (`refresh`), the oldest first.

Every change to the registry bumps `registry_state.version` in the same transaction, and the
transaction that stores a transcript reads that row `FOR SHARE` before its last check
(`lock_registry`): on PostgreSQL a registration and a store therefore serialise, and an opt-out
committed before the store is always seen by it. SQLite serialises every writer anyway
(`BEGIN IMMEDIATE`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, update
from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.epochs import Owner
from meeting_governance.errors import GraphError, ShreddedError
from meeting_governance.graph.client import GraphClient
from meeting_governance.graph.directory import lookup
from meeting_governance.identity import normalise_email
from meeting_governance.models import OptOut, OptOutIdentifier, RegistryState, VaultItem
from meeting_governance.people import Registration, own_blinds, prune, user_blinds

log = logging.getLogger(__name__)


def bump_registry(session: Session, now: datetime) -> None:
    """Mark a registry change (in the caller's transaction; holds the row until commit)."""
    result = session.exec(update(RegistryState).where(col(RegistryState.id) == 1)
                          .values(version=RegistryState.version + 1, updated_at=now))
    if not result.rowcount:
        session.add(RegistryState(id=1, version=1, updated_at=now))
        session.flush()


def lock_registry(session: Session) -> int:
    """Wait for registry changes in flight, and keep new ones out until this transaction ends
    (`FOR SHARE`): the store's last check then sees every committed opt-out."""
    row = session.exec(select(RegistryState).where(col(RegistryState.id) == 1)
                       .with_for_update(read=True)).first()
    return row.version if row else 0


def add_identifiers(session: Session, optout_id: str, blinds: Iterable[str], *, source: str,
                    now: datetime | None) -> int:
    """Add identifier rows an opt-out does not have yet; returns how many were new."""
    have = set(session.exec(select(OptOutIdentifier.blind).where(
        col(OptOutIdentifier.optout_id) == optout_id)).all())
    new = sorted(set(blinds) - have)
    for blind in new:
        session.add(OptOutIdentifier(optout_id=optout_id, blind=blind, source=source,
                                     resolved_at=now))
    return len(new)


def record_registration(app: AppContext, session: Session, row: OptOut,
                        registration: Registration | None) -> None:
    """The identifiers of a new opt-out: the registered ones, and the directory's answer."""
    registered = [b for b in (row.email_blind, row.object_id_blind) if b]
    now = app.clock.now()
    add_identifiers(session, row.id, registered, source="registered", now=None)
    if registration is not None:
        add_identifiers(session, row.id, registration.blinds, source="directory", now=now)
        row.resolution, row.resolved_at = registration.status, now
        session.add(row)


@dataclass(frozen=True)
class RefreshReport:
    examined: int
    identifiers_added: int
    not_found: int
    cache_pruned: int
    error: str | None = None


def _identity(app: AppContext, optout_id: str, item: VaultItem | None) -> dict[str, str | None]:
    if item is None:
        return {}
    try:
        data = json.loads(app.vault.open_item(item, owner=Owner("optout", optout_id, "identity")))
    except ShreddedError:
        return {}
    return data if isinstance(data, dict) else {}


def refresh(app: AppContext, graph: GraphClient, *, limit: int | None = None) -> RefreshReport:
    """Re-resolve the active opt-outs whose lookup is missing or older than
    `directory.max_age_hours` (never-resolved first, then the oldest), `limit` at most; then
    drop stale cached lookups. A directory error changes nothing and is reported."""
    limit = limit or app.settings.directory.refresh_batch
    now = app.clock.now()
    stale = now - app.settings.directory_max_age
    with app.session() as session:
        rows = session.exec(
            select(OptOut).where(col(OptOut.revoked_at).is_(None),
                                 or_(col(OptOut.resolved_at).is_(None),
                                     col(OptOut.resolved_at) < stale))
            .order_by(col(OptOut.resolved_at).is_not(None), col(OptOut.resolved_at),
                      col(OptOut.id)).limit(limit)).all()
        items = {i.id: i for i in session.exec(select(VaultItem).where(col(VaultItem.id).in_(
            [r.identity_item for r in rows if r.identity_item]))).all()} if rows else {}
        wanted = {r.id: _identity(app, r.id, items.get(r.identity_item or "")) for r in rows}
    emails = [v["email"] for v in wanted.values() if v.get("email")]
    oids = [v["object_id"] for v in wanted.values() if v.get("object_id")]
    try:
        result = lookup(graph, object_ids=[o for o in oids if o], addresses=[e for e in emails if e])
    except GraphError as exc:
        log.warning("opt-out identities not refreshed", extra={"code": exc.code,
                                                               "status": exc.status})
        return RefreshReport(len(rows), 0, 0, 0, error=str(exc))
    added = missing = 0
    with app.session() as session:
        for row in rows:
            ident = wanted[row.id]
            email, oid = ident.get("email"), ident.get("object_id")
            users = []
            if oid and (user := result.by_id.get(oid)) is not None:
                users.append(user)
            if email:
                users.extend(result.by_address.get(normalise_email(email), ()))
            blinds = own_blinds(app.vault, email=email, object_id=oid)
            for user in users:
                blinds |= user_blinds(app.vault, user)
            added += add_identifiers(session, row.id, blinds, source="directory", now=now)
            fresh = session.get(OptOut, row.id)
            if fresh is not None:
                distinct = {u.object_id for u in users}
                fresh.resolution = ("not_found" if not distinct else
                                    "ambiguous" if len(distinct) > 1 else "found")
                fresh.resolved_at = now
                session.add(fresh)
            missing += 0 if users else 1
        if rows:
            bump_registry(session, now)
    pruned = prune(app)
    log.info("opt-out identities refreshed", extra={"examined": len(rows), "added": added,
                                                    "not_found": missing, "pruned": pruned})
    return RefreshReport(len(rows), added, missing, pruned)


__all__ = ["RefreshReport", "add_identifiers", "bump_registry", "lock_registry",
           "record_registration", "refresh"]
