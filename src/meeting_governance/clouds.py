"""Microsoft's clouds: which sign-in authority, Graph root and scope belong together.

A token is valid only in the cloud that issued it ("Access tokens acquired for a national cloud
deployment are not interchangeable with those acquired for the global service or any other
national cloud"), so an authority of one cloud with the Graph of another ends in HTTP 401 with
advice about secrets that cannot help. `graph.cloud` picks all three endpoints at once; an
endpoint set by hand is checked against the others here, when the configuration is loaded.

Endpoints, from Microsoft's "Microsoft Graph national cloud deployments"
(https://learn.microsoft.com/graph/deployments, tables "App registration and token service
root endpoints" and "Microsoft Graph and Graph Explorer service root endpoints"); the scope
rule from "Access national cloud deployments with the Microsoft Graph SDKs"
(https://learn.microsoft.com/graph/sdks/national-clouds: a `.default` scope must use the domain
of the cloud's Graph root). Microsoft 365 GCC (moderate) uses the global endpoints; GCC High
is "usgov" (L4) and DoD is "usgovdod" (L5), which share one sign-in authority.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Cloud:
    """One Microsoft cloud's endpoints."""

    name: str
    title: str
    authority_host: str
    graph_root: str
    # Other host names of the same authority (msal's well-known aliases).
    authority_aliases: tuple[str, ...] = ()

    @property
    def base_url(self) -> str:
        return f"{self.graph_root}/v1.0"

    @property
    def scope(self) -> str:
        return f"{self.graph_root}/.default"


CLOUDS: dict[str, Cloud] = {
    cloud.name: cloud for cloud in (
        Cloud("global", "the global service", "https://login.microsoftonline.com",
              "https://graph.microsoft.com", ("login.microsoft.com", "login.windows.net")),
        Cloud("usgov", "US Government L4 (GCC High)", "https://login.microsoftonline.us",
              "https://graph.microsoft.us"),
        Cloud("usgovdod", "US Government L5 (DoD)", "https://login.microsoftonline.us",
              "https://dod-graph.microsoft.us"),
        Cloud("china", "China (operated by 21Vianet)", "https://login.chinacloudapi.cn",
              "https://microsoftgraph.chinacloudapi.cn", ("login.partner.microsoftonline.cn",)),
    )
}
CUSTOM = "custom"  # the built-in emulator, or endpoints no preset names: no preset is applied
CLOUD_NAMES = (*CLOUDS, CUSTOM)
ENDPOINT_KEYS = ("authority_host", "base_url", "scope")


class CloudMismatch(ValueError):
    """The three endpoints do not belong to one cloud (or a needed one is missing)."""


def _host(url: str) -> str:
    try:
        return (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return ""


def clouds_of(key: str, url: str) -> frozenset[str] | None:
    """The clouds an endpoint belongs to; None for a host no Microsoft cloud uses."""
    host = _host(url)
    if key == "authority_host":
        found = frozenset(c.name for c in CLOUDS.values()
                          if host == _host(c.authority_host) or host in c.authority_aliases)
    else:
        found = frozenset(c.name for c in CLOUDS.values() if host == _host(c.graph_root))
    return found or None


def _label(clouds: frozenset[str] | None) -> str:
    if not clouds:
        return "belongs to no Microsoft cloud (a custom endpoint)"
    return "belongs to " + " or ".join(f"{CLOUDS[c].title} (\"{c}\")" for c in sorted(clouds))


def _check_https(key: str, url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise CloudMismatch(
            f"graph.{key} must be an https:// URL with a host (got {url!r}): msal refuses any "
            "other authority and a bearer token must never travel in clear; fix graph." + key)


def resolve_endpoints(cloud: str, given: dict[str, str]) -> dict[str, str]:
    """The three endpoints for `cloud`, with hand-set ones (non-empty in `given`) checked.

    Raises CloudMismatch naming the keys that disagree and the fix."""
    hand_set = {k: given.get(k, "").strip() for k in ENDPOINT_KEYS if given.get(k, "").strip()}
    for key in ("authority_host", "base_url"):
        if key in hand_set:
            _check_https(key, hand_set[key])
    if cloud == CUSTOM:
        missing = [f"graph.{k}" for k in ("authority_host", "base_url") if k not in hand_set]
        if missing:
            raise CloudMismatch(
                f"graph.cloud = \"custom\" takes no preset, so {' and '.join(missing)} must be "
                "set (the emulator prints both); or set graph.cloud to \"global\", \"usgov\", "
                "\"usgovdod\" or \"china\" and leave the endpoints empty")
        base = urlsplit(hand_set["base_url"])
        resolved = {"scope": f"{base.scheme}://{base.netloc}/.default", **hand_set}
        known = {k: clouds_of(k, v) for k, v in hand_set.items()}
        recognised = [c for c in known.values() if c is not None]
        if len(recognised) > 1 and not frozenset(CLOUDS).intersection(*recognised):
            raise CloudMismatch(_mismatch_message(cloud, hand_set, known))
        return resolved
    preset = CLOUDS[cloud]
    resolved = {"authority_host": preset.authority_host, "base_url": preset.base_url,
                "scope": preset.scope, **hand_set}
    known = {k: (clouds_of(k, v) if k in hand_set else frozenset({cloud}))
             for k, v in resolved.items()}
    if any(cloud not in (c or ()) for c in known.values()):
        raise CloudMismatch(_mismatch_message(cloud, resolved, known, hand_set=set(hand_set)))
    return resolved


def _mismatch_message(cloud: str, values: dict[str, str], known: dict[str, frozenset[str] | None],
                      *, hand_set: set[str] | None = None) -> str:
    hand_set = set(values) if hand_set is None else hand_set
    parts = []
    for key in ENDPOINT_KEYS:
        if key not in values:
            continue
        origin = "" if key in hand_set else f" (from graph.cloud = \"{cloud}\")"
        parts.append(f"graph.{key} = {values[key]}{origin} {_label(known[key])}")
    wrong = [f"graph.{k}" for k in ENDPOINT_KEYS if k in values]
    # The cloud every hand-set endpoint agrees on, if there is one: the likely intent.
    sets = [c for k in hand_set if (c := known.get(k)) is not None]
    agreed = sorted(frozenset(CLOUDS).intersection(*sets)) if sets else []
    hint = (f"set graph.cloud = \"{agreed[0]}\"" if len(agreed) == 1 else
            "set graph.cloud to your tenant's cloud (\"global\", \"usgov\", \"usgovdod\" or "
            "\"china\")")
    return (f"{', '.join(wrong)} do not belong to one cloud: {'; '.join(parts)}. A token from "
            "one cloud is refused by another cloud's Graph (HTTP 401). Fix: " + hint +
            " and leave graph.authority_host, graph.base_url and graph.scope empty (they follow "
            "graph.cloud); graph.cloud = \"custom\" is for the built-in emulator or endpoints no "
            "Microsoft cloud uses")
