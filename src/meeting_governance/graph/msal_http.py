"""The one msal `http_client` shim: a requests Session with our timeouts.

msal ignores its own `timeout=` once it is handed an `http_client`, and requests has no default
timeout, so without this an unresponsive sign-in authority would hang a sign-in (web) or a token
request (daemon) for ever. Used by `graph.client` (app-only tokens) and `web.entra` (user
sign-in, and the id_token validator's key fetches).
"""

from __future__ import annotations

from typing import Any

import requests


class MsalHttpClient:
    """What msal calls (`get`, `post`, `close`), each request bounded by `timeout`."""

    def __init__(self, session: requests.Session, timeout: tuple[float, float]) -> None:
        self.session = session
        self.timeout = timeout

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return self.session.post(url, **kwargs)

    def close(self) -> None:
        """The Session belongs to whoever made it, who closes it."""


def msal_http_client(session: requests.Session,
                     timeout: tuple[float, float]) -> MsalHttpClient:
    """`session` as msal's `http_client`, with (connect, read) `timeout` on every request."""
    return MsalHttpClient(session, timeout)
