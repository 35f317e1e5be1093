"""The msal http_client shim: an authority that accepts and never answers cannot hang sign-in."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import msal
import pytest
import requests

from meeting_governance.graph.msal_http import msal_http_client


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
    with requests.Session() as session:
        client = msal_http_client(session, (2.0, 0.5))
        with pytest.raises(requests.ReadTimeout):
            client.get(f"{silent_server}/tenant/v2.0/.well-known/openid-configuration")
        with pytest.raises(requests.ReadTimeout):
            client.post(f"{silent_server}/tenant/oauth2/v2.0/token", data={"a": "b"})


def test_msal_through_the_shim_fails_instead_of_hanging(silent_server: str) -> None:
    authority = silent_server.replace("http://", "https://") + "/tenant"  # msal wants https
    with requests.Session() as session, pytest.raises(requests.Timeout):  # in the handshake
        msal.ConfidentialClientApplication(
            "client", client_credential="secret", authority=authority,
            http_client=msal_http_client(session, (2.0, 0.5)), instance_discovery=False)


def test_a_callers_own_timeout_wins(silent_server: str) -> None:
    with requests.Session() as session:
        client = msal_http_client(session, (2.0, 60.0))
        with pytest.raises(requests.ReadTimeout):
            client.get(f"{silent_server}/x", timeout=(2.0, 0.3))
