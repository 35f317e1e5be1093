"""A real HTTP CONNECT proxy on loopback, as corporate proxies speak it (RFC 9110 §9.3.6).

It answers `CONNECT host:port`, then relays bytes both ways: TLS runs end to end through the
tunnel, so the client still verifies the emulator's certificate with its CA bundle. It can
demand Basic proxy credentials (407 otherwise) and remembers every tunnel it opened.
"""

from __future__ import annotations

import base64
import select
import socket
import socketserver
import threading
from types import TracebackType


class ConnectProxy:
    """`with ConnectProxy() as proxy:` — `proxy.url`, `proxy.tunnels` (the targets)."""

    def __init__(self, *, credentials: tuple[str, str] | None = None) -> None:
        self.tunnels: list[str] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._credentials = credentials
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline(8192).decode("latin-1").strip()
                headers: dict[str, str] = {}
                while True:
                    line = self.rfile.readline(8192).decode("latin-1")
                    if line in ("\r\n", "\n", ""):
                        break
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                method, _, rest = request_line.partition(" ")
                target = rest.split(" ")[0]
                if method != "CONNECT":
                    self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                    return
                if not outer._authorised(headers.get("proxy-authorization", "")):
                    with outer._lock:
                        outer.refused.append(target)
                    self.wfile.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                                     b"Proxy-Authenticate: Basic realm=\"test\"\r\n"
                                     b"Content-Length: 0\r\n\r\n")
                    return
                host, _, port = target.rpartition(":")
                try:
                    upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
                except (OSError, ValueError):
                    self.wfile.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
                    return
                with outer._lock:
                    outer.tunnels.append(target)
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
                _relay(self.connection, upstream)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.1})

    def _authorised(self, header: str) -> bool:
        if self._credentials is None:
            return True
        expected = base64.b64encode(":".join(self._credentials).encode()).decode()
        return header == f"Basic {expected}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ConnectProxy:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways until either side closes."""
    sockets = [client, upstream]
    try:
        while True:
            readable, _, broken = select.select(sockets, [], sockets, 30)
            if broken or not readable:
                return
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                (upstream if sock is client else client).sendall(data)
    except OSError:
        return
    finally:
        upstream.close()
