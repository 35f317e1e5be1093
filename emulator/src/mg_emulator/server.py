"""The emulator's HTTPS listener: sign-in and Graph on one loopback port, with fault knobs.

A real TLS server (stdlib `ThreadingHTTPServer` + `ssl`) so msal and requests run unchanged:
msal only accepts `https` authorities, and tests must exercise the same code as production.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import ssl
import threading
import time
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from mg_emulator import auth, signin
from mg_emulator.faults import Faults, RequestLog
from mg_emulator.graph_api import ApiError, GraphState
from mg_emulator.scenario import (
    Meeting,
    Person,
    Recording,
    Scenario,
    load_scenario,
)
from mg_emulator.tls import EmulatorKeys, TlsFiles, ensure_tls_files

log = logging.getLogger(__name__)

GRAPH_PREFIX = "/v1.0/"
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
_CONTENT = re.compile(r"^/v1\.0/.+/onlineMeetings/([^/]+)/recordings/([^/]+)/content$")
_METADATA = re.compile(r"^/v1\.0/.+/onlineMeetings/([^/]+)/transcripts/([^/]+)/metadataContent$")
_REPORTS = re.compile(r"/onlineMeetings/([^/]+)/attendanceReports")
_COPY_CHUNK = 64 * 1024
_MAX_FORM = 64 * 1024  # a token request or the sign-in form; larger bodies are refused
BATCH_PATH = "/v1.0/$batch"
_MAX_BATCH = 20  # Graph's limit on requests per JSON batch


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GraphEmulator/1.0"
    timeout = 30  # an idle keep-alive connection frees its thread
    # Headers and body leave in separate writes; with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (about 40 ms a response on Linux), which real Graph never shows.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()  # sets the socket timeout first, so a stalled handshake cannot hang
        self._status = 0
        # Only requests that reach _dispatch are logged (not a malformed request line).
        self._method, self._split, self._logged = "", urlsplit(""), True
        # The handshake runs here, in the connection's thread, not in the accept loop.
        self.request.do_handshake()

    # Paths hold ids; the emulator keeps its own log without bodies instead of stderr lines.
    def log_message(self, format: str, *args: Any) -> None:
        return

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        # Logged before the status line leaves: a client that has its answer must find the
        # request in the log (without Nagle's delay the client can be faster than a log
        # written after the body).
        self._log_request()
        super().send_response(code, message)

    def _log_request(self) -> None:
        if not self._logged:
            self._logged = True
            self.server.emulator.requests.add(self._method, self._split.path, self._split.query,
                                              self._status)

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None,
                   raw: bytes | None = None) -> None:
        payload = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _graph_error(self, status: int, code: str, message: str,
                     headers: dict[str, str] | None = None) -> None:
        request_id = str(uuid.uuid4())
        body = {"error": {"code": code, "message": message, "innerError": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
            "request-id": request_id, "client-request-id": request_id}}}
        self._send_json(status, body, {"request-id": request_id, **(headers or {})})

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self._status = 0
        self._method, self._split, self._logged = method, split, False
        try:
            if split.path.startswith(GRAPH_PREFIX):
                delay = self.server.emulator.faults.delay_s
                if delay > 0:
                    time.sleep(delay)
                if method == "POST" and split.path == BATCH_PATH:
                    self._batch()
                elif method != "GET":
                    self._graph_error(405, "BadRequest", "Only GET and POST /$batch are emulated.")
                else:
                    self._graph(split.path, split.query)
            else:
                self._sign_in(method, split.path, split.query)
        except (ConnectionError, ssl.SSLError, TimeoutError):
            self.close_connection = True
        finally:
            self._log_request()  # no response at all (the connection broke): status 0

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # -- sign-in -----------------------------------------------------------------------------
    def _read_form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_FORM:
            self.close_connection = True
            return {}
        return dict(parse_qsl(self.rfile.read(length).decode("utf-8", "replace"),
                              keep_blank_values=True))

    def _send_page(self, answer: signin.Page | signin.Redirect) -> None:
        """The sign-in page or a redirect: never cached, never framed, no script, no referrer."""
        if isinstance(answer, signin.Redirect):
            self.send_response(302)
            self.send_header("Location", answer.location)
            self.send_header("Content-Length", "0")
            payload = b""
        else:
            payload = answer.body.encode("utf-8")
            self.send_response(answer.status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            # No form-action: Chromium applies it to the redirect after the POST as well.
            self.send_header("Content-Security-Policy", "default-src 'none'; "
                             "style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'")
            self.send_header("X-Frame-Options", "DENY")
            self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        self.wfile.write(payload)

    def _sign_in(self, method: str, path: str, query: str) -> None:
        emu = self.server.emulator
        parts = path.strip("/").split("/")
        tenant = parts[0] if parts else ""
        rest = "/".join(parts[1:])
        if tenant != emu.tenant_id:
            self._send_json(400, auth.aad_error("invalid_tenant", 90002,
                                                "Tenant not found. Check the tenant id."))
            return
        issuer = f"{emu.authority_host}/{tenant}/v2.0"
        if method == "GET" and rest == "v2.0/.well-known/openid-configuration":
            self._send_json(200, auth.openid_configuration(emu.authority_host, tenant))
            return
        if method == "GET" and rest == "discovery/v2.0/keys":
            self._send_json(200, emu.signin.jwks(issuer))
            return
        if method == "GET" and rest == "oauth2/v2.0/authorize":
            params = dict(parse_qsl(query, keep_blank_values=True))
            self._send_page(emu.signin.authorize(params, login_path=f"/{tenant}/login"))
            return
        if method == "POST" and rest == "login":
            self._send_page(emu.signin.login(self._read_form(), login_path=f"/{tenant}/login"))
            return
        if method == "POST" and rest == "oauth2/v2.0/token":
            status, body = auth.token_response(
                self._read_form(), scenario=emu.scenario,
                certificate=emu.tls.client_certificate,
                audience=f"{emu.authority_host}/{tenant}/oauth2/v2.0/token", tokens=emu.tokens,
                signin=emu.signin, issuer=issuer, tenant=tenant)
            self._send_json(status, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})
            return
        self._send_json(404, auth.aad_error("invalid_request", 900561, "Unknown endpoint."))

    # -- Graph -------------------------------------------------------------------------------
    def _authorised(self) -> bool:
        emu = self.server.emulator
        header = self.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        if not token or not emu.tokens.valid(token):
            self._graph_error(401, "InvalidAuthenticationToken",
                              "Access token is empty, expired or not valid.")
            return False
        return True

    def _batch(self) -> None:
        """`POST /$batch`: each GET answered on its own, faults applied per request."""
        emu = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_FORM:
            self.close_connection = True
            self._graph_error(413, "RequestEntityTooLarge", "The batch is too large.")
            return
        raw = self.rfile.read(length)
        if not self._authorised():
            return
        faults = emu.faults
        if faults.take("throttle_count", BATCH_PATH):  # the whole batch throttled
            self._graph_error(faults.throttle_status, "TooManyRequests", "Too many requests.",
                              {"Retry-After": faults.throttle_retry_after})
            return
        if faults.take("unavailable_count", BATCH_PATH):
            self._graph_error(faults.unavailable_status, "ServiceUnavailable",
                              "The service is temporarily unavailable.", {"Retry-After": "1"})
            return
        try:
            requests = json.loads(raw)["requests"]
            assert isinstance(requests, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            self._graph_error(400, "BadRequest", "Invalid batch payload format.")
            return
        if len(requests) > _MAX_BATCH:
            self._graph_error(400, "BadRequest", f"The number of batch requests exceeds "
                              f"{_MAX_BATCH}.")
            return
        items = [item for item in requests if isinstance(item, dict)]
        answers = [self._batch_item(item) for item in items]
        for item, answer in zip(items, answers, strict=True):  # logged before the answer leaves
            inner = urlsplit(str(item.get("url", "")))
            emu.requests.add("GET", "/v1.0/" + inner.path.lstrip("/"), inner.query,
                             answer["status"], in_batch=True)
        self._send_json(200, {"responses": answers})

    def _batch_item(self, item: dict[str, Any]) -> dict[str, Any]:
        emu, faults = self.server.emulator, self.server.emulator.faults
        rid = str(item.get("id", ""))
        inner = urlsplit(str(item.get("url", "")))
        path = "/v1.0/" + inner.path.lstrip("/")
        decoded = unquote(path)

        def error(status: int, code: str, message: str,
                  headers: dict[str, str] | None = None) -> dict[str, Any]:
            return {"id": rid, "status": status,
                    "headers": {"Content-Type": "application/json", **(headers or {})},
                    "body": {"error": {"code": code, "message": message}}}

        if str(item.get("method", "")).upper() != "GET":
            return error(405, "BadRequest", "Only GET is emulated inside a batch.")
        if faults.take("throttle_count", decoded):
            return error(faults.throttle_status, "TooManyRequests", "Too many requests.",
                         {"Retry-After": faults.throttle_retry_after})
        if faults.take("unavailable_count", decoded):
            return error(faults.unavailable_status, "ServiceUnavailable",
                         "The service is temporarily unavailable.", {"Retry-After": "1"})
        if faults.take("forbidden_count", decoded):
            return error(403, "Authorization_RequestDenied",
                         "Insufficient privileges to complete the operation.")
        raw_headers = item.get("headers")
        headers = raw_headers if isinstance(raw_headers, dict) else {}
        try:
            body = emu.graph.handle(path, inner.query, headers={
                str(k): str(v) for k, v in headers.items()})
        except ApiError as exc:
            return error(exc.status, exc.code, exc.message)
        return {"id": rid, "status": 200, "headers": {"Content-Type": "application/json"},
                "body": body}

    def _graph(self, path: str, query: str) -> None:
        emu = self.server.emulator
        faults = emu.faults
        if not self._authorised():
            return
        decoded = unquote(path)
        if faults.take("expire_token_count", decoded):
            emu.tokens.revoke_all()
            self._graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, "
                              "the token is expired.")
            return
        if faults.take("throttle_count", decoded):
            self._graph_error(faults.throttle_status, "TooManyRequests",
                              "Too many requests.", {"Retry-After": faults.throttle_retry_after})
            return
        if faults.take("unavailable_count", decoded):
            self._graph_error(faults.unavailable_status, "ServiceUnavailable",
                              "The service is temporarily unavailable.", {"Retry-After": "1"})
            return
        if faults.take("forbidden_count", decoded):
            self._graph_error(403, "Authorization_RequestDenied",
                              "Insufficient privileges to complete the operation.")
            return
        content = _CONTENT.match(path)
        if content:
            self._content(path, content.group(1), content.group(2))
            return
        metadata = _METADATA.match(path)
        if metadata:
            self._transcript_metadata(path, metadata.group(1), metadata.group(2))
            return
        reports = _REPORTS.search(path)
        hidden = reports is not None and faults.attendance_missing(unquote(reports.group(1)))
        try:
            body = emu.graph.handle(path, query, attendance_missing=hidden,
                                    duplicate_across_pages=faults.duplicate_across_pages,
                                    headers=dict(self.headers.items()))
        except ApiError as exc:
            self._graph_error(exc.status, exc.code, exc.message)
            return
        if faults.take("malformed_json_count", decoded):
            text = json.dumps(body).encode()
            raw = text[: max(1, len(text) // 2)] if faults.truncated_json else b"<html>oops"
            self._send_json(200, None, raw=raw)
            return
        self._send_json(200, body, {"request-id": str(uuid.uuid4())})

    def _transcript_metadata(self, path: str, meeting_raw: str, transcript_raw: str) -> None:
        """`GET .../transcripts/{id}/metadataContent`: text/vtt (speakers, times and text)."""
        emu = self.server.emulator
        try:
            emu.graph.handle(path.rsplit("/", 1)[0], "")  # same checks as the transcript GET
        except ApiError as exc:
            self._graph_error(exc.status, exc.code, exc.message)
            return
        body = emu.graph.transcript_metadata(unquote(meeting_raw), unquote(transcript_raw))
        if body is None:
            self._graph_error(404, "NotFound", "The transcript was not found.")
            return
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/vtt")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _content(self, path: str, meeting_raw: str, recording_raw: str) -> None:
        emu = self.server.emulator
        recording = emu.graph.recording(unquote(meeting_raw), unquote(recording_raw))
        try:
            emu.graph.handle(path.rsplit("/", 2)[0], "")  # same checks as the metadata GET
        except ApiError as exc:
            self._graph_error(exc.status, exc.code, exc.message)
            return
        if recording is None or emu.faults.recording_missing(recording.id):
            self._graph_error(404, "NotFound", "The recording was not found.")
            return
        media = emu.media_dir / recording.media
        if not media.is_file():
            self._graph_error(404, "NotFound", "The recording content is not available.")
            return
        total = media.stat().st_size
        start = 0
        status = 200
        range_header = self.headers.get("Range")
        if range_header and emu.faults.range_supported:
            match = _RANGE.match(range_header.strip())
            if match:
                start = int(match.group(1))
                if start >= total:
                    self._graph_error(416, "InvalidRange", "The requested range is not "
                                      "satisfiable.", {"Content-Range": f"bytes */{total}"})
                    return
                status = 206
        cut = emu.faults.take_cut()
        self.send_response(status)
        self.send_header("Content-Type", recording.content_type)
        self.send_header("Content-Length", str(total - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        self.end_headers()
        sent = 0
        with media.open("rb") as handle:
            handle.seek(start)
            while chunk := handle.read(_COPY_CHUNK):
                if cut is not None and start + sent + len(chunk) > cut:
                    keep = max(0, cut - start - sent)
                    self.wfile.write(chunk[:keep])
                    self.wfile.flush()
                    self.close_connection = True  # the connection drops mid-body
                    return
                self.wfile.write(chunk)
                sent += len(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: EmulatorServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """End kept-alive connections too, so a stopped emulator is unreachable at once."""
        with self._open_lock:
            open_now = list(self._open)
            self._open.clear()
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-handshake or mid-body is normal here (cut downloads).
        log.debug("graph emulator: connection ended abruptly", exc_info=True)


class EmulatorServer:
    """Microsoft Graph and its sign-in authority on one HTTPS loopback port.

    `faults` and `requests` are the test hooks: knobs to break things, a log to prove calls.
    `keys` (from `make_keys`) lets many emulators share one CA and signing key, as a test
    session does; without them the certificates live in `state_dir`, reused while valid.
    """

    def __init__(self, scenario: Scenario, *, media_dir: Path, state_dir: Path | None = None,
                 keys: EmulatorKeys | None = None, port: int = 0,
                 host: str = "127.0.0.1") -> None:
        if keys is None and state_dir is None:
            raise ValueError("EmulatorServer needs state_dir (where its certificates live) "
                             "or keys (from mg_emulator.make_keys)")
        self.scenario = scenario
        self.media_dir = Path(media_dir)
        self.faults = Faults()
        self.requests = RequestLog()
        self.tokens = auth.TokenStore()
        # /authorize, its page, user tokens
        self.signin = (signin.SignIn(scenario) if keys is None
                       else signin.SignIn(scenario, key=keys.signing_key))
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.tls: TlsFiles = (keys.tls if keys is not None
                              else ensure_tls_files(Path(state_dir or ".")))
        self.graph = GraphState(scenario, base_url="")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> EmulatorServer:
        if self._server is not None:
            return self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.tls.server_cert, self.tls.server_key)
        server = _Server((self._host, self._port), _Handler, bind_and_activate=True)
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
        server.emulator = self
        self._server = server
        self._port = server.server_address[1]
        self.graph.base_url = self.base_url
        self._thread = threading.Thread(target=server.serve_forever, name="graph-emulator",
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what a client needs -----------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._port

    @property
    def authority_host(self) -> str:
        return f"https://{self._host}:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.authority_host}/v1.0"

    @property
    def ca_bundle(self) -> str:
        return str(self.tls.ca_bundle)

    @property
    def tenant_id(self) -> str:
        return self.scenario.tenant_id

    @property
    def client_id(self) -> str:
        return self.scenario.client_id

    @property
    def client_secret(self) -> str:
        return self.scenario.client_secret

    @property
    def client_certificate_path(self) -> str:
        """PEM with the app's private key and certificate (the certificate credential)."""
        return str(self.tls.client_pem)

    @property
    def client_certificate_thumbprint(self) -> str:
        return self.tls.client_thumbprint_sha1

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """The `graph` configuration section of a client pointing at this emulator (secret
        credential unless overridden), as plain keys — graph.cloud "custom", since no Microsoft
        cloud's preset names a loopback address: Meeting Governance's `GraphSettings(**…)`
        or its `MG_GRAPH__*` variables take them as they are."""
        values: dict[str, Any] = {
            "cloud": "custom", "tenant_id": self.tenant_id, "client_id": self.client_id,
            "client_secret": self.client_secret, "authority_host": self.authority_host,
            "base_url": self.base_url, "ca_bundle": self.ca_bundle,
            "organizers": [o.id for o in self.scenario.organizers],
        }
        values.update(overrides)
        return values

    def add_recording(self, recording: Recording) -> None:
        """A new recording appears at runtime (it shows up in the next delta round)."""
        self.graph.add_recording(recording)

    def add_meeting(self, meeting: Meeting) -> None:
        self.graph.add_meeting(meeting)

    def reset_directory(self) -> None:
        """Back to the scenario's directory."""
        self.graph.reset_directory()

    def set_person(self, person: Person | None = None, *, remove: str | None = None) -> None:
        """Change the directory at runtime: add or replace a user, or remove one by id."""
        self.graph.set_person(person, remove=remove)

    def reset_sync_state(self) -> None:
        """Every delta and skip token issued so far is answered 410 Gone from now on."""
        self.graph.reset_sync_state()

    def expire_delta_tokens_after(self, seconds: float | None) -> None:
        """Tokens older than this are answered 400 syncStateNotFound (None: never)."""
        self.graph.delta_token_ttl_s = seconds


def run_emulator(port: int, scenario_path: str | Path, media_dir: str | Path,
                 state_dir: str | Path, *, ready: threading.Event | None = None,
                 stop: threading.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (the `meeting-governance emulator` command)."""
    scenario = load_scenario(scenario_path)
    emulator = EmulatorServer(scenario, media_dir=Path(media_dir), state_dir=Path(state_dir),
                              port=port)
    stop = stop or threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with emulator:
            log.info("graph emulator listening on %s (CA bundle %s)", emulator.base_url,
                     emulator.ca_bundle)
            print(  # the command's own output: how to point a client at it
                f"Graph emulator on {emulator.base_url}\n"
                f"  MG_GRAPH__CLOUD=custom\n"
                f"  MG_GRAPH__AUTHORITY_HOST={emulator.authority_host}\n"
                f"  MG_GRAPH__BASE_URL={emulator.base_url}\n"
                f"  MG_GRAPH__CA_BUNDLE={emulator.ca_bundle}\n"
                f"  MG_GRAPH__TENANT_ID={emulator.tenant_id}\n"
                f"  MG_GRAPH__CLIENT_ID={emulator.client_id}\n"
                f"  MG_GRAPH__CLIENT_SECRET=<client_secret from {scenario_path}>\n"
                f"  MG_GRAPH__ORGANIZERS={','.join(o.id for o in scenario.organizers)}\n"
                f"started {formatdate(usegmt=True)}; Ctrl-C stops it", flush=True)
            if ready is not None:
                ready.set()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
