"""Who a person is: every identifier the directory knows for them, as blind-index values only.

One person has many identifiers — object id, mail, UPN, aliases, other mails, a guest's own
address — and Teams may show any one of them (or only the object id). This module turns the
identifiers a meeting shows into every identifier of each person (`resolve_participants`, for
the gate), an address a coordinator types into the person it reaches (`resolve_registration`,
for opt-outs, with a `WhoIs` to show before saving), and a data subject into their identifiers
(`person_identity`, for access, erasure and holds).

Directory answers are cached as blind values (`identity_cache`: looked-up identifier → the
identifiers of the account(s) it reaches) and asked again when older than
`directory.max_age_hours`. Nothing here stores an address or a name in clear.

Fail closed: a participant the directory cannot name (unreachable, throttled, not found) stays
unresolved, and the gate waits; its own identifiers still count for matching an opt-out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session, col, select

from meeting_governance.context import AppContext
from meeting_governance.errors import GraphError, InputError
from meeting_governance.graph.client import GraphClient
from meeting_governance.graph.directory import DirectoryUser, lookup
from meeting_governance.graph.participants import merge_participants
from meeting_governance.identity import Participant, ParticipantKind, normalise_email
from meeting_governance.models import IdentityCache
from meeting_governance.vault import Vault

IN_CHUNK = 500


def own_blinds(vault: Vault, *, email: str | None = None,
               object_id: str | None = None) -> set[str]:
    """The blind values of the identifiers given, as they are."""
    return set(vault.blind_identities(email=email, object_id=object_id))


def user_blinds(vault: Vault, user: DirectoryUser) -> set[str]:
    """Every identifier of one directory account, as blind values."""
    blinds = {vault.blind_object_id(user.object_id)}
    blinds.update(vault.blind_email(a) for a in user.addresses)
    return blinds


# -- what a coordinator is shown ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class WhoIs:
    """Whom an identifier reaches, for a person to check before saving: shown, never stored."""

    kind: str  # member | guest | not_found | ambiguous | not_asked
    display_name: str | None
    description: str
    identifiers: int  # how many identifiers the opt-out will match

    def line(self) -> str:
        who = f"{self.display_name} — " if self.display_name else ""
        return (f"{who}{self.description} ({self.identifiers} identifier"
                f"{'s' if self.identifiers != 1 else ''})")


def who_is(users: Sequence[DirectoryUser], identifiers: int, *,
           asked: bool = True) -> WhoIs:
    """The record a form or the CLI shows for a directory answer."""
    if not asked:
        return WhoIs("not_asked", None, "the directory was not asked — matched by this "
                     "identifier only until the daemon resolves it", identifiers)
    if not users:
        return WhoIs("not_found", None, "not found in the directory — matched by this "
                     "address only", identifiers)
    if len({u.object_id for u in users}) > 1:
        return WhoIs("ambiguous", None, f"{len(users)} directory accounts use this address — "
                     "the opt-out covers all of them", identifiers)
    user = users[0]
    if user.is_guest:
        domain = user.guest_domain
        return WhoIs("guest", user.display_name,
                     f"guest from {domain}" if domain else "guest", identifiers)
    return WhoIs("member", user.display_name, "member of this organisation", identifiers)


# -- the cache --------------------------------------------------------------------------------

def _chunks(values: Sequence[str]) -> Iterable[list[str]]:
    for i in range(0, len(values), IN_CHUNK):
        yield list(values[i:i + IN_CHUNK])


def cached(session: Session, keys: Iterable[str], *, fresh_after: datetime) -> dict[str, set[str]]:
    """Cached identifier sets by looked-up key (blind), for lookups newer than `fresh_after`."""
    wanted = sorted(set(keys))
    found: dict[str, set[str]] = {}
    for chunk in _chunks(wanted):
        for row in session.exec(select(IdentityCache).where(
                col(IdentityCache.key_blind).in_(chunk))).all():
            if row.resolved_at >= fresh_after:
                found[row.key_blind] = set(row.identifiers.split())
    return found


def remember(session: Session, answers: dict[str, set[str]], now: datetime) -> None:
    """Store (or refresh) directory answers: looked-up key → identifier blinds."""
    for key, blinds in answers.items():
        row = session.get(IdentityCache, key)
        text = " ".join(sorted(blinds))
        if row is None:
            session.add(IdentityCache(key_blind=key, identifiers=text, resolved_at=now))
        else:
            row.identifiers, row.resolved_at = text, now
            session.add(row)


def prune(app: AppContext) -> int:
    """Drop cached lookups older than `directory.max_age_hours` (they are asked again)."""
    cutoff = app.clock.now() - app.settings.directory_max_age
    with app.session() as session:
        result = session.exec(delete(IdentityCache).where(
            col(IdentityCache.resolved_at) < cutoff))
        return int(result.rowcount or 0)


# -- participants (the gate) ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ResolvedParticipants:
    """A meeting's participants after the directory: `resolved` set on each it named, and the
    blind values of every identifier of every participant (resolved or not)."""

    participants: tuple[Participant, ...]
    blinds: frozenset[str]
    unresolved: int
    failure: str | None = None  # why the directory could not be read (codes only)
    cache_hits: int = 0
    lookups: int = 0


def _kind(users: Sequence[DirectoryUser], before: ParticipantKind) -> ParticipantKind:
    if before not in (ParticipantKind.USER, ParticipantKind.GUEST, ParticipantKind.UNKNOWN):
        return before
    return ParticipantKind.GUEST if all(u.is_guest for u in users) else ParticipantKind.USER


def resolve_participants(app: AppContext, graph: GraphClient | None,
                         participants: Sequence[Participant]) -> ResolvedParticipants:
    """Every identifier of every identifiable participant: from the cache when fresh, else
    from the directory (batched), which refreshes the cache.

    Looked up by object id when there is one, else (or when the id is not in the directory)
    by address. A participant the directory cannot name stays unresolved; `failure` says why
    when the directory could not be read at all. Pure of side effects but the cache."""
    vault, now = app.vault, app.clock.now()
    fresh_after = now - app.settings.directory_max_age
    wanted = [p for p in participants if p.identifiable]
    keys = {p: (vault.blind_object_id(p.object_id) if p.object_id
                else vault.blind_email(p.email or "")) for p in wanted}
    email_keys = {p: vault.blind_email(p.email) for p in wanted if p.email}
    with app.session() as session:
        hits = cached(session, [*keys.values(), *email_keys.values()], fresh_after=fresh_after)
    found: dict[Participant, set[str]] = {}
    users_of: dict[Participant, tuple[DirectoryUser, ...]] = {}
    for p in wanted:
        if keys[p] in hits:
            found[p] = hits[keys[p]]
    cache_hits = len(found)
    failure: str | None = None
    lookups = 0
    answers: dict[str, set[str]] = {}
    misses = [p for p in wanted if p not in found]
    if misses and graph is None:
        failure = "the directory was not consulted"
    elif misses:
        try:
            by_id = [p for p in misses if p.object_id]
            result = lookup(graph, object_ids=[p.object_id or "" for p in by_id],  # type: ignore[arg-type]
                            addresses=[p.email or "" for p in misses if not p.object_id])
            lookups += len(by_id) + len([p for p in misses if not p.object_id])
            second: list[Participant] = []
            for p in misses:
                if p.object_id:
                    user = result.by_id.get(p.object_id)
                    if user is not None:
                        users_of[p] = (user,)
                    elif p.email and email_keys[p] in hits:
                        found[p] = hits[email_keys[p]]
                    elif p.email:
                        second.append(p)  # an id from another tenant: try the address
                elif result.by_address.get(normalise_email(p.email or "")):
                    users_of[p] = result.by_address[normalise_email(p.email or "")]
            if second:
                more = lookup(graph, addresses=[p.email or "" for p in second])  # type: ignore[arg-type]
                lookups += len(second)
                for p in second:
                    if users := more.by_address.get(normalise_email(p.email or "")):
                        users_of[p] = users
        except GraphError as exc:
            failure = (f"the directory could not be read "
                       f"({exc.code or (f'HTTP {exc.status}' if exc.status else 'unreachable')})")
            users_of.clear()
    for p, users in users_of.items():
        blinds: set[str] = set()
        for user in users:
            blinds |= user_blinds(vault, user)
        found[p] = blinds
        # Cache under the key that found them: the id if it did, else the address.
        key = keys[p] if p.object_id and any(u.object_id == p.object_id for u in users) \
            else email_keys.get(p, keys[p])
        answers[key] = blinds
    if answers:
        with app.session() as session:
            remember(session, answers, now)
    resolved: list[Participant] = []
    every: set[str] = set()
    for p in participants:
        own = own_blinds(vault, email=p.email, object_id=p.object_id)
        every |= own
        if p in found:
            every |= found[p]
            users = users_of.get(p, ())
            oid = p.object_id or (users[0].object_id if len(users) == 1 else None)
            resolved.append(replace(p, resolved=True, object_id=oid,
                                    kind=_kind(users, p.kind) if users else p.kind))
        else:
            resolved.append(p)
    merged = merge_participants(resolved)
    unresolved = sum(1 for p in merged if p.identifiable and not p.resolved)
    from meeting_governance.observability import METRICS  # the gate's, not the CLI's cost

    METRICS.directory_lookups.labels(source="cache").inc(cache_hits)
    METRICS.directory_lookups.labels(source="directory").inc(lookups)
    return ResolvedParticipants(participants=merged, blinds=frozenset(every),
                                unresolved=unresolved, failure=failure if unresolved else None,
                                cache_hits=cache_hits, lookups=lookups)


# -- a registration (opt-outs) ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Registration:
    """What the directory says about an identity typed into an opt-out."""

    status: str  # found | not_found | ambiguous
    blinds: frozenset[str]  # every identifier found, the registered ones included
    who: WhoIs


def resolve_registration(app: AppContext, graph: GraphClient, *, email: str | None = None,
                         object_id: str | None = None) -> Registration:
    """Resolve a typed identity (already validated); GraphError when the directory cannot be
    read — the caller may still register it by the identifier alone."""
    result = lookup(graph, object_ids=[object_id] if object_id else [],
                    addresses=[email] if email else [])
    users: list[DirectoryUser] = []
    if object_id and (user := result.by_id.get(object_id)) is not None:
        users.append(user)
    if email:
        users.extend(u for u in result.by_address.get(normalise_email(email), ())
                     if u.object_id not in {x.object_id for x in users})
    blinds = own_blinds(app.vault, email=email, object_id=object_id)
    for user in users:
        blinds |= user_blinds(app.vault, user)
    status = "not_found" if not users else "ambiguous" if len(users) > 1 else "found"
    return Registration(status, frozenset(blinds), who_is(users, len(blinds)))


def registration_for(app: AppContext, *, email: str | None,
                     object_id: str | None) -> tuple[Registration | None, str | None]:
    """The directory's answer for an opt-out's identity (validated), asked with the configured
    Graph client — or (None, why it could not be had). For the CLI and the web form: show
    `registration.who` before saving, then pass `registration` to `optouts.add_optout`."""
    from meeting_governance.errors import GovernanceError

    try:
        with GraphClient.from_settings(app.settings.graph) as graph:
            return resolve_registration(app, graph, email=email, object_id=object_id), None
    except GovernanceError as exc:
        return None, (f"the directory could not be asked ({exc.__class__.__name__}: "
                      f"{getattr(exc, 'code', None) or 'see the log'}); saved with this "
                      "identifier only — the daemon resolves it on its next refresh")


# -- a data subject (access, erasure, holds) ------------------------------------------------

class AmbiguousIdentity(InputError):
    """An address several directory accounts share: a request about one person cannot use it
    (it would reach other people's data); `accounts` says how many."""

    def __init__(self, accounts: int) -> None:
        super().__init__(f"this address belongs to {accounts} directory accounts; name the "
                         "person by --object-id so that nobody else's data is included")
        self.accounts = accounts


@dataclass(frozen=True, slots=True)
class PersonIdentity:
    """The identifiers a request about one person covers (blind values) and how they were
    found: `live` when the directory was asked."""

    blinds: tuple[str, ...]
    live: bool
    who: WhoIs

    @property
    def note(self) -> str:
        if not self.live:
            return ("searched offline by the identifier given only (the directory was not "
                    "asked: other addresses of this person are not covered)")
        return f"searched by every identifier the directory knows: {self.who.line()}"


def person_identity(app: AppContext, *, email: str | None = None,
                    object_id: str | None = None,
                    graph: GraphClient | None = None) -> PersonIdentity:
    """Every identifier of the person named by `email` or `object_id` (validated), from the
    directory when `graph` is given. Only identifiers that certainly belong to this person:
    an address shared by several accounts is refused (give the object id instead)."""
    given = own_blinds(app.vault, email=email, object_id=object_id)
    if graph is None:
        return PersonIdentity(tuple(sorted(given)), False, who_is((), len(given), asked=False))
    result = lookup(graph, object_ids=[object_id] if object_id else [],
                    addresses=[email] if email else [])
    users = ([u] if object_id and (u := result.by_id.get(object_id)) else
             list(result.by_address.get(normalise_email(email or ""), ())))
    if len({u.object_id for u in users}) > 1:
        raise AmbiguousIdentity(len({u.object_id for u in users}))
    blinds = set(given)
    for user in users:
        blinds |= user_blinds(app.vault, user)
    return PersonIdentity(tuple(sorted(blinds)), True, who_is(users, len(blinds)))


__all__ = ["AmbiguousIdentity", "PersonIdentity", "Registration", "ResolvedParticipants", "WhoIs", "cached",
           "own_blinds", "person_identity", "prune", "registration_for", "remember",
           "resolve_participants", "resolve_registration", "user_blinds", "who_is"]
