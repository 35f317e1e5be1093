"""The one Session for Graph and msal (graph/network.py) bounds every request: an authority that
accepts and never answers cannot hang a sign-in or a token request."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import msal
import pytest
import requests

from meeting_governance.graph.network import GraphSession


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback TCP server that accepts connections and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_every_request_gets_the_read_timeout(silent_server: str) -> None:
    with GraphSession(timeout=(2.0, 0.5)) as client:
        with pytest.raises(requests.ReadTimeout):
            client.get(f"{silent_server}/tenant/v2.0/.well-known/openid-configuration")
        with pytest.raises(requests.ReadTimeout):
            client.post(f"{silent_server}/tenant/oauth2/v2.0/token", data={"a": "b"})


def test_msal_through_the_shim_fails_instead_of_hanging(silent_server: str) -> None:
    authority = silent_server.replace("http://", "https://") + "/tenant"  # msal wants https
    with GraphSession(timeout=(2.0, 0.5)) as session, pytest.raises(requests.Timeout):  # in the handshake
        msal.ConfidentialClientApplication(
            "client", client_credential="secret", authority=authority,
            http_client=session, instance_discovery=False)


def test_a_callers_own_timeout_wins(silent_server: str) -> None:
    with GraphSession(timeout=(2.0, 60.0)) as client:
        with pytest.raises(requests.ReadTimeout):
            client.get(f"{silent_server}/x", timeout=(2.0, 0.3))
