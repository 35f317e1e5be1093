"""The one door to Microsoft Graph: an app-only msal token, one requests Session, retries.

Everything Graph-shaped goes through `GraphClient`: the token (reused from msal's cache,
refreshed once on a 401), connect/read timeouts, throttling (429/503/504 with `Retry-After`),
backoff on dropped connections, Graph's error body turned into a `GraphError`, and paging
that follows `@odata.nextLink` verbatim. Messages and logs carry ids and codes only, never
addresses, names or subjects.

The msal application (and so its token cache) is shared by every client of one process with
the same sign-in settings: msal's constructor fetches the OpenID configuration and each new
application asks for a new token, so a daemon that made one per poll paid two sign-in requests
every five minutes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from meeting_governance.config import GraphSettings
from meeting_governance.errors import GraphError
from meeting_governance.lazy import module

if TYPE_CHECKING:
    import msal
    import requests

    from meeting_governance.graph import network
else:  # loaded with the first client: a command that only reads the database never pays
    msal = module("msal")  # for them (bench/cli.py)
    requests = module("requests")
    network = module("meeting_governance.graph.network")

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 503, 504})
# Hosts where msal's instance discovery (a call to login.microsoftonline.com) makes sense.
_MICROSOFT_AUTHORITY_SUFFIXES = (
    "login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn",
    "login.chinacloudapi.cn", "login.microsoft.com", "login.windows.net", "login.sovcloud-identity.fr",
)

_FIX_BY_STATUS = {
    400: "the request was rejected as malformed; check the organiser id and the time window",
    401: ("the token was refused; check the client id, the secret or certificate, admin consent, "
          "and that graph.cloud is the cloud of your tenant"),
    403: ("the app lacks a permission or a Teams application access policy for this organiser; "
          "grant OnlineMeetings.Read.All, OnlineMeetingArtifact.Read.All, "
          "OnlineMeetingRecording.Read.All and User.Read.All and assign the access policy "
          "(it can take 30 minutes)"),
    404: "the meeting or recording does not exist (any more) or the access policy does not cover it",
    410: "the delta link expired; discovery starts a new round from graph.lookback_days",
    416: "the requested byte range is not available; restart the download from zero",
}


def quote_segment(value: str) -> str:
    """Percent-encode one opaque Graph id for a path segment (`/`, `=`, `+`, `#`, `@`, `*` too).

    `.` and `..` are encoded as well: left as they are, URL normalisation would remove them as
    dot segments and the request would address another resource."""
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


def odata_string(value: str) -> str:
    """An OData string literal inside a function call: single quotes doubled, then encoded."""
    return "'" + quote(value.replace("'", "''"), safe="") + "'"


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds: Graph sends fractions (`2.128`); HTTP also allows a date."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def is_microsoft_authority(authority_host: str) -> bool:
    host = (urlsplit(authority_host).hostname or "").lower()
    return any(host == s or host.endswith("." + s) for s in _MICROSOFT_AUTHORITY_SUFFIXES)


def _require_app(settings: GraphSettings) -> None:
    """The product has no default tenant or app registration: name the keys to set."""
    missing = [f"graph.{key} (MG_GRAPH__{key.upper()})"
               for key in ("tenant_id", "client_id") if not getattr(settings, key).strip()]
    if missing:
        raise GraphError(
            f"Microsoft Graph is not configured: set {' and '.join(missing)} to your Entra ID "
            "tenant and the app registration's application id (see config/default.toml); "
            "`meeting-governance demo` runs without a tenant"
        )


def _credential(settings: GraphSettings) -> str | dict[str, str]:
    """A client secret, or the certificate credential msal signs client assertions with."""
    if settings.certificate_path:
        path = Path(settings.certificate_path).expanduser()
        try:
            pem = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise GraphError(
                f"cannot read the certificate file {path}: {exc.__class__.__name__}; set "
                "graph.certificate_path to a PEM file holding the private key (and certificate)"
            ) from None
        credential = {"private_key": pem}
        if settings.certificate_thumbprint:
            credential["thumbprint"] = settings.certificate_thumbprint.replace(":", "").strip()
        elif "BEGIN CERTIFICATE" in pem:
            credential["public_certificate"] = pem
        else:
            raise GraphError(
                "the certificate credential needs a thumbprint: set graph.certificate_thumbprint "
                "or put the certificate in the PEM file next to the private key"
            )
        return credential
    if settings.client_secret:
        return settings.client_secret
    raise GraphError(
        "no Graph credential is configured: set graph.client_secret (MG_GRAPH__CLIENT_SECRET) "
        "or graph.certificate_path and graph.certificate_thumbprint"
    )


class _SignIn:
    """One msal application with its own Session (for the authority only) and a lock."""

    def __init__(self, app: msal.ConfidentialClientApplication) -> None:
        self.app = app
        self.lock = threading.Lock()


_SIGN_INS: dict[tuple[str, ...], _SignIn] = {}
_SIGN_INS_LOCK = threading.Lock()


def _sign_in_key(settings: GraphSettings) -> tuple[str, ...]:
    """What makes two clients share an msal application: the same app, tenant, authority,
    credential and trust settings (the secret only as a digest)."""
    secret = hashlib.sha256(settings.client_secret.encode()).hexdigest()
    return (settings.authority_host.rstrip("/").lower(), settings.tenant_id, settings.client_id,
            secret, settings.certificate_path, settings.certificate_thumbprint,
            settings.ca_bundle, hashlib.sha256(settings.proxy.encode()).hexdigest(),
            ",".join(settings.no_proxy), str(settings.connect_timeout_s),
            str(settings.read_timeout_s))


def forget_sign_ins() -> None:
    """Drop every shared msal application, as a new process would start (tests use it)."""
    with _SIGN_INS_LOCK:
        _SIGN_INS.clear()


class GraphClient:
    """App-only Microsoft Graph client: one msal app per process, one Session, bounded retries.

    `sleep` and `random` are injectable so tests can record the waits instead of waiting.
    `calls` counts HTTP requests sent (token requests included) by kind, for the benchmark.
    """

    def __init__(
        self,
        settings: GraphSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        random_fn: Callable[[], float] = random.random,
        session: requests.Session | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.authority = f"{settings.authority_host.rstrip('/')}/{settings.tenant_id}"
        self.calls: Counter[str] = Counter()
        self._sleep = sleep
        self._random = random_fn
        _require_app(settings)
        self._credential = _credential(settings)
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        # Proxy, CA bundle and timeouts: the same for every Graph and sign-in request.
        self.session = session or network.graph_session(settings)
        self._sign_in: _SignIn | None = None

    @classmethod
    def from_settings(cls, settings: GraphSettings, **kwargs: Any) -> GraphClient:
        return cls(settings, **kwargs)

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

    # -- sign-in ---------------------------------------------------------------------------
    def _shared_sign_in(self) -> _SignIn:
        """The process's msal application for these settings, built on first use (msal's
        constructor fetches the OpenID configuration); failures are not cached."""
        if self._sign_in is not None:
            return self._sign_in
        key = _sign_in_key(self.settings)
        with _SIGN_INS_LOCK:
            shared = _SIGN_INS.get(key)
            if shared is None:
                shared = _SignIn(self._new_msal_app())
                _SIGN_INS[key] = shared
        self._sign_in = shared
        return shared

    def _new_msal_app(self) -> msal.ConfidentialClientApplication:
        self.calls["openid"] += 1
        # The shared application outlives this client, so it gets a Session of its own.
        try:
            return msal.ConfidentialClientApplication(
                self.settings.client_id,
                client_credential=self._credential,
                authority=self.authority,
                http_client=network.graph_session(self.settings),
                instance_discovery=is_microsoft_authority(self.settings.authority_host),
            )
        except requests.RequestException as exc:
            raise GraphError(
                f"cannot reach the sign-in authority ({exc.__class__.__name__}): "
                f"{network.network_advice(exc, self.settings)}; check graph.authority_host (graph.cloud), "
                "the network, graph.proxy and graph.ca_bundle", retryable=True,
            ) from None
        except ValueError as exc:
            raise GraphError(
                f"the sign-in authority rejected the configuration ({exc.__class__.__name__}): "
                "check graph.authority_host and graph.tenant_id",
            ) from None

    def token(self, *, force_refresh: bool = False) -> str:
        """An access token from msal's cache, or a fresh one (`force_refresh` drops the cache)."""
        shared = self._shared_sign_in()
        with shared.lock:
            app = shared.app
            if force_refresh:
                app.remove_tokens_for_client()
            try:
                result = app.acquire_token_for_client(scopes=[self.settings.scope])
            except requests.RequestException as exc:
                self.calls["token"] += 1
                raise GraphError(
                    f"the token request failed ({exc.__class__.__name__}); the authority is "
                    f"unreachable: {network.network_advice(exc, self.settings)}", retryable=True,
                ) from None
        if result.get("token_source") == "identity_provider" or "error" in result:
            self.calls["token"] += 1
        if "access_token" not in result:
            code = str(result.get("error") or "unknown_error")
            retryable = code in {"temporarily_unavailable", "server_error"}
            raise GraphError(
                f"sign-in failed with {code}: check graph.client_id, graph.tenant_id and the "
                "client secret or certificate (and that it has not expired)",
                code=code, retryable=retryable,
            )
        return str(result["access_token"])

    # -- HTTP ------------------------------------------------------------------------------
    def url(self, *segments: str) -> str:
        """An absolute Graph URL from raw path segments, each quoted as one segment."""
        return self.base_url + "/" + "/".join(quote_segment(s) for s in segments)

    def _absolute(self, url: str) -> str:
        """Relative paths join the base URL; absolute ones must stay on Graph's own host,
        so a crafted nextLink can never carry our bearer token elsewhere."""
        if "://" not in url:
            return self.base_url + "/" + url.lstrip("/")
        base, target = urlsplit(self.base_url), urlsplit(url)
        if (target.scheme, target.netloc.lower()) != (base.scheme, base.netloc.lower()):
            raise GraphError(
                "Graph returned a link to another host; refusing to send the token there "
                "(check graph.base_url)"
            )
        return url

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.backoff_max_s, self.settings.backoff_base_s * (2 ** attempt))
        return ceiling / 2 + self._random() * ceiling / 2

    def pause(self, attempt: int) -> None:
        """Wait the bounded, jittered backoff for this attempt (resumed downloads use it)."""
        self._sleep(self._backoff(attempt))

    def sleep_for(self, retry_after: float) -> None:
        """Wait what Graph asked (`Retry-After`, capped), plus a little jitter: batches use it."""
        cap = self.settings.max_retry_after_s
        self._sleep(min(cap, retry_after * (1 + 0.1 * self._random())))

    def _throttle_delay(self, response: requests.Response, attempt: int) -> float:
        cap = self.settings.max_retry_after_s
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is None:
            return min(cap, self._backoff(attempt))
        # Never earlier than asked; a little jitter so many workers don't return together.
        return min(cap, retry_after * (1 + 0.1 * self._random()))

    def request(
        self,
        method: str,
        url: str,
        *,
        kind: str = "other",
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        json_body: Any = None,
    ) -> requests.Response:
        """Send one logical request with retries; returns a 2xx response or raises GraphError."""
        target = self._absolute(url)
        attempt = 0
        refreshed = False
        while True:
            token = self.token(force_refresh=False)
            sent = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            sent.update(headers or {})
            if json_body is not None:
                sent["Content-Type"] = "application/json"
            self.calls[kind] += 1
            try:
                response = self.session.request(
                    method, target, headers=sent, timeout=self._timeout, stream=stream,
                    data=None if json_body is None else json.dumps(json_body).encode(),
                )
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                if attempt >= self.settings.max_retries:
                    raise GraphError(
                        f"Graph could not be reached for a {kind} call after {attempt + 1} "
                        f"attempts ({exc.__class__.__name__}): "
                        f"{network.network_advice(exc, self.settings)}", retryable=True,
                    ) from None
                delay = self._backoff(attempt)
                log.info("graph %s: %s, retrying in %.2fs", kind, exc.__class__.__name__, delay)
                self._sleep(delay)
                attempt += 1
                continue
            status = response.status_code
            if status == 401 and not refreshed:
                # The cached token may have been revoked or expired early: one fresh try.
                response.close()
                self.token(force_refresh=True)
                refreshed = True
                continue
            if status in RETRY_STATUSES:
                if attempt >= self.settings.max_retries:
                    raise self._error(response, kind, retryable=True, attempts=attempt + 1)
                delay = self._throttle_delay(response, attempt)
                response.close()
                log.info("graph %s: HTTP %d, retrying in %.2fs", kind, status, delay)
                self._sleep(delay)
                attempt += 1
                continue
            if status >= 400:
                raise self._error(response, kind, retryable=status >= 500)
            return response

    def _error(
        self, response: requests.Response, kind: str, *, retryable: bool, attempts: int = 1,
    ) -> GraphError:
        status = response.status_code
        code: str | None = None
        request_id = response.headers.get("request-id") or response.headers.get("client-request-id")
        try:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict):
                code = str(error.get("code")) if error.get("code") else None
                inner = error.get("innerError") or error.get("innererror") or {}
                if isinstance(inner, dict) and inner.get("request-id"):
                    request_id = str(inner["request-id"])
        except (ValueError, RecursionError):
            pass
        finally:
            response.close()
        if status in RETRY_STATUSES:
            fix = f"Graph is throttling or unavailable after {attempts} attempts; retry later"
        else:
            fix = _FIX_BY_STATUS.get(status, "retry later" if retryable else "see the Graph code")
        rid = f", request id {request_id}" if request_id else ""
        label = f"HTTP {status} {code}" if code else f"HTTP {status}"
        return GraphError(
            f"Graph answered {label} to a {kind} call{rid}: {fix}",
            status=status, code=code, request_id=request_id, retryable=retryable,
        )

    def get_json(self, url: str, *, kind: str = "other",
                 headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET a JSON object; a malformed or truncated body is a retryable GraphError."""
        return self._json(self.request("GET", url, kind=kind, headers=headers), kind)

    def post_json(self, url: str, payload: Any, *, kind: str = "other") -> dict[str, Any]:
        """POST a JSON body (Graph's `$batch`) and read the JSON object it answers."""
        return self._json(self.request("POST", url, kind=kind, json_body=payload), kind)

    def _json(self, response: requests.Response, kind: str) -> dict[str, Any]:
        try:
            body = response.json()
        except (ValueError, RecursionError):  # nesting deeper than Python's limit is malformed too
            raise GraphError(
                f"Graph returned a malformed or truncated JSON body ({len(response.content)} "
                f"bytes) to a {kind} call; nothing was used from it, retry later",
                status=response.status_code, retryable=True,
                request_id=response.headers.get("request-id"),
            ) from None
        finally:
            response.close()
        if not isinstance(body, dict):
            raise GraphError(
                f"Graph returned JSON that is not an object to a {kind} call; retry later",
                status=response.status_code, retryable=True,
            )
        return body

    def iter_pages(self, url: str, *, kind: str = "page",
                   headers: Mapping[str, str] | None = None) -> Pages:
        """Every item of a collection, following each `@odata.nextLink` verbatim."""
        return Pages(self, url, kind, headers)

    def get_all(self, url: str, *, kind: str = "page", headers: Mapping[str, str] | None = None
                ) -> tuple[list[dict[str, Any]], str | None]:
        """All items and the final `@odata.deltaLink` (None when the collection has none)."""
        pages = self.iter_pages(url, kind=kind, headers=headers)
        items = list(pages)
        return items, pages.delta_link


class Pages:
    """Iterator over a paged collection; `delta_link` is set once it is exhausted.

    Links are opaque: Graph answers with other forms (`users('{id}')`, `skipToken=`) than
    the first request, and rebuilding them loses state, so they are used exactly as given.
    """

    def __init__(self, client: GraphClient, url: str, kind: str,
                 headers: Mapping[str, str] | None = None) -> None:
        self._client = client
        self._next: str | None = url
        self._kind = kind
        self._headers = headers
        self.delta_link: str | None = None
        self.pages = 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while self._next is not None:
            body = self._client.get_json(self._next, kind=self._kind, headers=self._headers)
            self.pages += 1
            values = body.get("value", [])
            if not isinstance(values, list):
                raise GraphError(
                    f"a {self._kind} page has no 'value' list; retry later", retryable=True,
                )
            for item in values:
                if isinstance(item, dict):
                    yield item
            next_link = body.get("@odata.nextLink")
            if next_link == self._next:
                raise GraphError(
                    f"Graph returned the same nextLink twice for a {self._kind} call; "
                    "stopping to avoid a loop, retry later", retryable=True,
                )
            self._next = str(next_link) if next_link else None
            if self._next is None and body.get("@odata.deltaLink"):
                self.delta_link = str(body["@odata.deltaLink"])
