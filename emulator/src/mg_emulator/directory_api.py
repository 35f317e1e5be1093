"""The emulator's directory: `/users/{id | userPrincipalName}` and `/users?$filter=…`.

As Microsoft's reference describes them: `proxyAddresses`, `otherMails` and `userType` come back
only when `$select`ed; string comparisons in `$filter` ignore case; a guest's UPN holds `#EXT#`
(`%23EXT%23` in a path); `or` across a lambda (`any`) and other clauses is an advanced query,
which needs `ConsistencyLevel: eventual` and `$count=true`. Unknown users are 404
`Request_ResourceNotFound`, unsupported filters 400 `Request_UnsupportedQuery`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, unquote

from mg_emulator.scenario import Person

_DEFAULT_FIELDS = ("id", "displayName", "mail", "userPrincipalName")
_SELECTABLE = frozenset({"id", "displayName", "mail", "userPrincipalName", "proxyAddresses",
                         "otherMails", "userType", "givenName", "surname", "jobTitle"})
_EQ = re.compile(r"^(\w+)\s+eq\s+'((?:[^']|'')*)'$", re.IGNORECASE)
_ANY = re.compile(r"^(\w+)/any\((\w+):\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\)$", re.IGNORECASE)
_EQ_FIELDS = {"mail": "mail", "userprincipalname": "upn", "id": "id", "displayname": "display_name",
              "usertype": "user_type"}
_ANY_FIELDS = {"proxyaddresses": "proxy_addresses", "othermails": "other_mails"}


class DirectoryError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _split_or(text: str) -> list[str]:
    """Split a filter on ` or ` outside quoted literals."""
    parts: list[str] = []
    current: list[str] = []
    quoted, i = False, 0
    while i < len(text):
        char = text[i]
        if char == "'":
            quoted = not quoted
        if not quoted and text[i:i + 4].lower() == " or ":
            parts.append("".join(current).strip())
            current, i = [], i + 4
            continue
        current.append(char)
        i += 1
    parts.append("".join(current).strip())
    return parts


def _clause(text: str) -> tuple[str, str, bool]:
    """(field, value, is_lambda) of one clause, or DirectoryError."""
    eq = _EQ.match(text)
    if eq and eq.group(1).lower() in _EQ_FIELDS:
        return _EQ_FIELDS[eq.group(1).lower()], eq.group(2).replace("''", "'"), False
    lam = _ANY.match(text)
    if lam and lam.group(1).lower() in _ANY_FIELDS and lam.group(2) == lam.group(3):
        return _ANY_FIELDS[lam.group(1).lower()], lam.group(4).replace("''", "'"), True
    found = eq or lam
    prop = found.group(1) if found else text.split(" ", 1)[0]
    raise DirectoryError(400, "Request_UnsupportedQuery",
                         f"Unsupported or invalid query filter clause specified for property "
                         f"'{prop}' of resource 'User'.")


def _matches(person: Person, field: str, value: str) -> bool:
    wanted = value.casefold()
    if field in ("proxy_addresses", "other_mails"):
        return any(v.casefold() == wanted for v in getattr(person, field))
    return str(getattr(person, field) or "").casefold() == wanted


def _select(query: Mapping[str, str]) -> tuple[str, ...]:
    raw = query.get("select")
    if not raw:
        return _DEFAULT_FIELDS
    fields = tuple(f.strip() for f in raw.split(",") if f.strip())
    for name in fields:
        if name not in _SELECTABLE:
            raise DirectoryError(400, "BadRequest", f"Could not find a property named '{name}' "
                                 "on type 'microsoft.graph.user'.")
    return ("id", *[f for f in fields if f != "id"])


def user_json(person: Person, fields: Sequence[str]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": person.id, "displayName": person.display_name or None,
        "mail": person.mail or None, "userPrincipalName": person.upn or None,
        "proxyAddresses": list(person.proxy_addresses), "otherMails": list(person.other_mails),
        "userType": person.user_type or None, "givenName": None, "surname": None,
        "jobTitle": None}
    return {f: values[f] for f in fields}


class Directory:
    """The scenario's people, answering the two directory requests."""

    def __init__(self, people: Sequence[Person], base_url: str, page_size: int) -> None:
        self.people = tuple(people)
        self.base_url = base_url
        self.page_size = page_size

    def get(self, key: str, query: Mapping[str, str]) -> dict[str, Any]:
        """`/users/{id | userPrincipalName}` (the key already percent-decoded)."""
        wanted = key.casefold()
        person = next((p for p in self.people
                       if p.id.casefold() == wanted or p.upn.casefold() == wanted), None)
        if person is None:
            raise DirectoryError(404, "Request_ResourceNotFound",
                                 f"Resource '{key}' does not exist or one of its queried "
                                 "reference-property objects are not present.")
        return {"@odata.context": f"{self.base_url}/$metadata#users/$entity",
                **user_json(person, _select(query))}

    def search(self, query: Mapping[str, str], headers: Mapping[str, str]) -> dict[str, Any]:
        """`/users?$filter=…` (clauses joined by `or`), paged by the scenario's page size."""
        fields = _select(query)
        text = query.get("filter", "").strip()
        clauses = [_clause(c) for c in _split_or(text)] if text else []
        advanced = (headers.get("consistencylevel", "").lower() == "eventual"
                    and query.get("count", "").lower() == "true")
        if len(clauses) > 1 and any(lam for _, _, lam in clauses) and not advanced:
            raise DirectoryError(400, "Request_UnsupportedQuery", "Unsupported Query.")
        found = [p for p in self.people
                 if not clauses or any(_matches(p, f, v) for f, v, _ in clauses)]
        offset = int(query.get("skiptoken", "0") or 0)
        page = found[offset:offset + self.page_size]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base_url}/$metadata#users({','.join(fields)})",
            "value": [user_json(p, fields) for p in page]}
        if query.get("count", "").lower() == "true":
            body["@odata.count"] = len(found)
        if offset + self.page_size < len(found):
            kept = "&".join(f"${k}={quote(v, safe='')}" for k, v in query.items()
                            if k in ("filter", "select", "count"))
            body["@odata.nextLink"] = (f"{self.base_url}/users?{kept}"
                                       f"&$skiptoken={offset + self.page_size}")
        return body


def directory_key(raw_segment: str) -> str:
    """A `/users/{key}` path segment: `%23EXT%23` decoded, `('…')` unwrapped."""
    text = unquote(raw_segment)
    if text.startswith("('") and text.endswith("')"):
        text = text[2:-2].replace("''", "'")
    return text
