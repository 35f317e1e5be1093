"""How every request to Microsoft (Graph, downloads, the directory, sign-in) leaves this host.

One Session class for the Graph client and for msal (`http_client`), in the daemon and in the
web sign-in alike, so the proxy, the CA bundle and the timeouts are the same everywhere:

- proxy: `graph.proxy` when set (the environment's proxy variables are then ignored), else the
  standard `HTTPS_PROXY` / `ALL_PROXY` variables; hosts in `graph.no_proxy` (else `NO_PROXY`)
  go direct. `graph.ca_bundle` used to switch requests' environment handling off altogether
  (`trust_env = False`, so that `REQUESTS_CA_BUNDLE` could not override it), which also dropped
  the proxy: behind a TLS-inspecting proxy, which needs both, Graph was unreachable. Here the
  Session never reads the environment on its own (`trust_env` stays off) and resolves the
  proxy and the trust store itself, for each request and each redirect.
- trust: `graph.ca_bundle` when set, else `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE` (as requests
  does), else the system store through certifi.
- timeouts: (connect, read) on every request; requests has no default and msal ignores its
  own `timeout=` once it is handed an `http_client`.

A proxy URL may carry a password: it is never logged and `describe_proxy` redacts it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import requests
from requests.utils import get_environ_proxies, should_bypass_proxies

from meeting_governance.config import GraphSettings, redact_url

if TYPE_CHECKING:
    from requests.sessions import _Settings


class GraphSession(requests.Session):
    """A requests Session with our proxy, trust store and timeouts (see the module doc)."""

    def __init__(self, *, proxy: str = "", no_proxy: list[str] | tuple[str, ...] = (),
                 ca_bundle: str = "", timeout: tuple[float, float] = (10.0, 60.0)) -> None:
        super().__init__()
        # Never let requests read the environment by itself: it would let REQUESTS_CA_BUNDLE
        # override `verify` and bring ~/.netrc credentials; what we take from it is below.
        self.trust_env = False
        self.proxy = proxy
        self.no_proxy = ",".join(h.strip() for h in no_proxy if h.strip()) or None
        self.ca_bundle = ca_bundle
        self.default_timeout = timeout

    def trust(self) -> str | bool:
        """What `verify` is: the configured bundle, the environment's, or the default store."""
        return (self.ca_bundle or os.environ.get("REQUESTS_CA_BUNDLE")
                or os.environ.get("CURL_CA_BUNDLE") or True)

    def proxies_for(self, url: str) -> dict[str, str]:
        """The proxy for this URL ({} means direct). `no_proxy` None: NO_PROXY is read."""
        if should_bypass_proxies(url, no_proxy=self.no_proxy):
            return {}
        if self.proxy:
            return {"http": self.proxy, "https": self.proxy}
        return dict(get_environ_proxies(url, no_proxy=self.no_proxy))

    def request(self, method: str | bytes, url: str | bytes,
                *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> _Settings:
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        settings["proxies"] = {**self.proxies_for(str(url)), **(proxies or {})}
        if verify is None or verify is True:
            settings["verify"] = self.trust()
        return settings

    def rebuild_proxies(self, prepared_request: Any, proxies: Any) -> dict[str, str]:
        # A redirect to another host gets that host's proxy (or none), as with trust_env.
        target = self.proxies_for(str(prepared_request.url))
        rebuilt: dict[str, str] = super().rebuild_proxies(prepared_request, target)
        return rebuilt


def graph_session(settings: GraphSettings, *,
                  timeout: tuple[float, float] | None = None) -> GraphSession:
    """A Session for Graph and its sign-in authority, from the `graph` settings."""
    return GraphSession(
        proxy=settings.proxy, no_proxy=settings.no_proxy, ca_bundle=settings.ca_bundle,
        timeout=timeout or (settings.connect_timeout_s, settings.read_timeout_s))


def describe_proxy(settings: GraphSettings) -> str:
    """Which proxy is in use, for messages: never with its password."""
    if settings.proxy:
        return f"graph.proxy {redact_url(settings.proxy)}"
    names = [n for n in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
             if os.environ.get(n)]
    return f"{names[0]} from the environment" if names else "no proxy"


def network_advice(exc: BaseException, settings: GraphSettings) -> str:
    """What to check when a request never got an HTTP answer, by the kind of failure."""
    if isinstance(exc, requests.exceptions.ProxyError):
        return (f"the proxy refused the connection or could not be reached "
                f"({describe_proxy(settings)}): check graph.proxy, HTTPS_PROXY and NO_PROXY")
    if isinstance(exc, requests.exceptions.SSLError):
        return ("the server's TLS certificate is not trusted: behind a TLS-inspecting proxy set "
                "graph.ca_bundle to a PEM file holding its CA")
    return "retry later"
