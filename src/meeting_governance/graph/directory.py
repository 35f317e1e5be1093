"""The directory: every identifier Entra ID knows for a person (application permission
`User.Read.All`).

A person is the set of their identifiers: object id, `mail`, `userPrincipalName`, every SMTP
address in `proxyAddresses` (`SMTP:` primary, `smtp:` aliases), `otherMails`, and for a B2B
guest the external address behind the `…#EXT#@tenant` UPN. Participants are looked up by object
id (`GET /users/{id}`) or, without one, by address (`GET /users?$filter=mail eq … or
userPrincipalName eq … or proxyAddresses/any(…) or otherMails/any(…)`, an advanced query:
`ConsistencyLevel: eventual` and `$count=true`), 20 lookups to a `$batch`.

An address may belong to several accounts (`otherMails` are not unique): every account found is
returned, and callers take the union — more identifiers can only block more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from meeting_governance.errors import GraphError
from meeting_governance.graph.batch import BatchAnswer, BatchRequest, batch_get
from meeting_governance.graph.client import GraphClient, quote_segment
from meeting_governance.identity import (
    external_address,
    is_email,
    is_object_id,
    normalise_email,
    normalise_object_id,
)

USER_FIELDS = ("id", "displayName", "mail", "userPrincipalName", "proxyAddresses", "otherMails",
               "userType")
_SELECT = "$select=" + ",".join(USER_FIELDS)
_ADVANCED = {"ConsistencyLevel": "eventual"}


@dataclass(frozen=True, slots=True)
class DirectoryUser:
    """One Entra account and every address that reaches it (normalised). Display only: the
    name is never stored in clear and never used to match."""

    object_id: str
    display_name: str | None
    user_type: str | None  # Member | Guest (as Entra spells it)
    upn: str | None
    addresses: frozenset[str]

    @property
    def guest_domain(self) -> str | None:
        """For a guest, the domain of their own address (`northwind.example`), else None."""
        own = external_address(self.upn)
        if own:
            return own.split("@", 1)[1]
        if (self.user_type or "").lower() == "guest" and self.upn:
            return self.upn.split("@", 1)[-1]
        return None

    @property
    def is_guest(self) -> bool:
        return (self.user_type or "").lower() == "guest" or external_address(self.upn) is not None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def smtp_addresses(proxy_addresses: Iterable[str]) -> list[str]:
    """The e-mail addresses among `proxyAddresses` (`SMTP:`/`smtp:`; not `SIP:`, `X500:` …)."""
    found = []
    for entry in proxy_addresses:
        prefix, sep, address = entry.partition(":")
        if sep and prefix.lower() == "smtp" and is_email(address):
            found.append(normalise_email(address))
    return found


def parse_user(body: dict[str, Any]) -> DirectoryUser | None:
    """A user object as Graph returns it (with `$select`), or None when it has no usable id."""
    oid = body.get("id")
    if not isinstance(oid, str) or not is_object_id(oid):
        return None
    upn = body.get("userPrincipalName") if isinstance(body.get("userPrincipalName"), str) else None
    addresses: set[str] = set()
    for value in (*_strings(body.get("mail")), *_strings(upn), *_strings(body.get("otherMails"))):
        if is_email(value):
            addresses.add(normalise_email(value))
    addresses.update(smtp_addresses(_strings(body.get("proxyAddresses"))))
    own = external_address(upn)
    if own:
        addresses.add(own)
    name = body.get("displayName")
    kind = body.get("userType")
    return DirectoryUser(object_id=normalise_object_id(oid),
                         display_name=name if isinstance(name, str) and name else None,
                         user_type=kind if isinstance(kind, str) and kind else None,
                         upn=normalise_email(upn) if upn else None,
                         addresses=frozenset(addresses))


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def address_filter(address: str) -> str:
    """Every property that can hold an address of a user, in one `$filter`."""
    lit = _literal(address)
    return (f"mail eq {lit} or userPrincipalName eq {lit} or "
            f"proxyAddresses/any(p:p eq {_literal('smtp:' + address)}) or "
            f"proxyAddresses/any(p:p eq {_literal('SMTP:' + address)}) or "
            f"otherMails/any(o:o eq {lit})")


def _by_id_request(rid: str, key: str) -> BatchRequest:
    # A guest's UPN holds `#`: quote_segment sends it as %23, or it would start a fragment.
    return BatchRequest(rid, f"/users/{quote_segment(key)}?{_SELECT}")


def _by_address_request(rid: str, address: str) -> BatchRequest:
    query = f"$filter={quote(address_filter(address), safe='')}&$count=true&{_SELECT}"
    return BatchRequest(rid, f"/users?{query}", _ADVANCED)


@dataclass(frozen=True, slots=True)
class Lookups:
    """What the directory said: by object id (None: no such user) and by address (empty: none)."""

    by_id: dict[str, DirectoryUser | None]
    by_address: dict[str, tuple[DirectoryUser, ...]]


def _fail(answer: BatchAnswer) -> GraphError:
    fix = ("grant the application permission User.Read.All (admin consent)"
           if answer.status in (401, 403) else "retry later")
    return GraphError(f"the directory answered HTTP {answer.status}"
                      f"{' ' + answer.code if answer.code else ''} to a user lookup: {fix}",
                      status=answer.status, code=answer.code,
                      retryable=answer.status >= 500 or answer.status == 429)


def _users(client: GraphClient, answer: BatchAnswer) -> tuple[DirectoryUser, ...]:
    values = answer.body.get("value")
    if not isinstance(values, list):
        raise GraphError("the directory answered a user search without a value list; retry "
                         "later", code="malformed_response", retryable=True)
    items = [v for v in values if isinstance(v, dict)]
    next_link = answer.body.get("@odata.nextLink")
    if isinstance(next_link, str) and next_link:  # many accounts share the address: all count
        more, _ = client.get_all(next_link, kind="directory", headers=_ADVANCED)
        items.extend(more)
    return tuple(u for u in (parse_user(i) for i in items) if u is not None)


def lookup(client: GraphClient, *, object_ids: Iterable[str] = (),
           addresses: Iterable[str] = ()) -> Lookups:
    """Look up users by object id and by address, batched; GraphError when the directory cannot
    be read (unreachable, throttled past the retry budget, permission missing)."""
    ids = sorted({normalise_object_id(o) for o in object_ids if o})
    mails = sorted({normalise_email(a) for a in addresses if a})
    requests = [_by_id_request(f"i{n}", oid) for n, oid in enumerate(ids)]
    by_path = {address for address in mails if external_address(address)}
    for n, address in enumerate(mails):
        if address in by_path:  # a guest UPN: exact, by path
            requests.append(_by_id_request(f"a{n}", address))
        else:
            requests.append(_by_address_request(f"a{n}", address))
    if not requests:
        return Lookups({}, {})
    answers = batch_get(client, requests, kind="directory")
    by_id: dict[str, DirectoryUser | None] = {}
    for n, oid in enumerate(ids):
        answer = answers[f"i{n}"]
        if answer.status == 404:
            by_id[oid] = None
        elif answer.ok:
            by_id[oid] = parse_user(answer.body)
        else:
            raise _fail(answer)
    by_address: dict[str, tuple[DirectoryUser, ...]] = {}
    for n, address in enumerate(mails):
        answer = answers[f"a{n}"]
        if answer.status == 404:
            by_address[address] = ()
        elif not answer.ok:
            raise _fail(answer)
        elif address in by_path:
            user = parse_user(answer.body)
            by_address[address] = (user,) if user else ()
        else:
            by_address[address] = _users(client, answer)
    return Lookups(by_id, by_address)


__all__ = ["USER_FIELDS", "DirectoryUser", "Lookups", "address_filter", "lookup", "parse_user",
           "smtp_addresses"]
