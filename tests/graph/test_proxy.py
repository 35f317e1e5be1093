"""Proxies: Graph, downloads, the directory and the web sign-in reach the (loopback, HTTPS)
emulator through a real CONNECT proxy, with the CA bundle still verifying the emulator.

`graph.ca_bundle` used to switch the environment off (trust_env = False), so behind a
TLS-inspecting proxy, which needs both, Graph was unreachable: these tests pin that down.
"""

from __future__ import annotations

import hashlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from meeting_governance.config import GraphSettings, Settings
from meeting_governance.errors import GraphError
from meeting_governance.graph import GraphClient, download_recording
from meeting_governance.graph.directory import lookup
from meeting_governance.web.entra import EntraSignIn
from mg_emulator import EmulatorServer

from .connect_proxy import ConnectProxy
from .emulator_scenario import JANE, MEDIA_SIZE, MEETING_FULL, ORG_A

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                   "all_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(autouse=True)
def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets exactly the proxy variables it is about."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    with ConnectProxy() as running:
        yield running


def _dead_proxy() -> str:
    """The address of a port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _emulator_target(emulator: EmulatorServer) -> str:
    return f"127.0.0.1:{emulator.port}"


def _sign_in_and_read(emulator: EmulatorServer, **overrides: object) -> dict[str, object]:
    """A new process's client: sign in (OpenID configuration, token), then read a user."""
    settings = GraphSettings(**emulator.client_config(max_retries=0, **overrides))
    with GraphClient.from_settings(settings, sleep=lambda s: None) as client:
        return client.get_json(client.url("users", JANE), kind="directory")


def test_graph_proxy_carries_sign_in_and_graph_with_the_ca_bundle(
        emulator: EmulatorServer, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    # graph.proxy wins over the environment: this one would fail every request.
    monkeypatch.setenv("HTTPS_PROXY", _dead_proxy())
    user = _sign_in_and_read(emulator, proxy=proxy.url)
    assert user["id"] == JANE
    # msal's Session (sign-in) and the client's Session (Graph) each opened a tunnel.
    assert len(proxy.tunnels) >= 2
    assert set(proxy.tunnels) == {_emulator_target(emulator)}
    kinds = {r.path.split("?")[0].rsplit("/", 1)[-1] for r in emulator.requests.all()}
    assert {"token", "openid-configuration"} <= kinds


def test_https_proxy_from_the_environment_is_used_with_a_ca_bundle(
        emulator: EmulatorServer, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    assert GraphSettings(**emulator.client_config()).ca_bundle  # the case that used to drop the proxy
    user = _sign_in_and_read(emulator)
    assert user["id"] == JANE
    assert len(proxy.tunnels) >= 2 and set(proxy.tunnels) == {_emulator_target(emulator)}


def test_no_proxy_from_the_environment_goes_direct(
        emulator: EmulatorServer, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.org,127.0.0.1")
    assert _sign_in_and_read(emulator)["id"] == JANE
    assert proxy.tunnels == []


def test_graph_no_proxy_bypasses_graph_proxy(emulator: EmulatorServer,
                                             proxy: ConnectProxy) -> None:
    assert _sign_in_and_read(emulator, proxy=proxy.url, no_proxy=["127.0.0.0/8"])["id"] == JANE
    assert proxy.tunnels == []


def test_no_proxy_for_another_host_still_uses_the_proxy(
        emulator: EmulatorServer, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "localhost,.internal.example")
    assert _sign_in_and_read(emulator, proxy=proxy.url)["id"] == JANE
    assert proxy.tunnels


def test_download_and_directory_go_through_the_proxy(
        emulator: EmulatorServer, proxy: ConnectProxy, tmp_path: Path, media_dir: Path) -> None:
    settings = GraphSettings(**emulator.client_config(proxy=proxy.url, max_retries=0))
    with GraphClient.from_settings(settings, sleep=lambda s: None) as client:
        found = lookup(client, object_ids=[JANE])
        result = download_recording(client, ORG_A, MEETING_FULL, "VjIj-rec-1=",
                                    tmp_path / "staging", max_bytes=10 * MEDIA_SIZE,
                                    allowed_content_types=["video/mp4"], chunk_bytes=16 * 1024)
    assert found.by_id[JANE] is not None
    expected = hashlib.sha256((media_dir / "clip.mp4").read_bytes()).hexdigest()
    assert result.sha256 == expected
    assert set(proxy.tunnels) == {_emulator_target(emulator)}
    assert any(r.path.endswith("/content") for r in emulator.requests.graph_requests())


def test_web_sign_in_goes_through_the_proxy(emulator: EmulatorServer, proxy: ConnectProxy,
                                            tmp_path: Path) -> None:
    graph = GraphSettings(**emulator.client_config(proxy=proxy.url))
    settings = Settings(home=tmp_path, graph=graph.model_dump(),
                        web={"entra_enabled": True, "entra_client_id": emulator.client_id,
                             "entra_client_secret": emulator.client_secret})
    flow = EntraSignIn(settings).start("https://mg.example.org/login/entra/callback")
    assert flow["auth_uri"].startswith(f"{emulator.authority_host}/{emulator.tenant_id}/")
    assert set(proxy.tunnels) == {_emulator_target(emulator)}


def test_proxy_credentials_work_and_never_show(emulator: EmulatorServer,
                                               caplog: pytest.LogCaptureFixture) -> None:
    secret = "pr0xy-s3cret"
    with ConnectProxy(credentials=("mg", secret)) as guarded:
        address = guarded.url.removeprefix("http://")
        assert _sign_in_and_read(emulator, proxy=f"http://mg:{secret}@{address}")["id"] == JANE
        assert guarded.tunnels
        caplog.set_level(logging.DEBUG)
        with pytest.raises(GraphError) as refused:
            _sign_in_and_read(emulator, proxy=f"http://mg:wrong-{secret}@{address}")
    message = str(refused.value)
    assert "proxy" in message and "graph.proxy" in message
    assert f"http://mg:***@{address}" in message
    assert secret not in message and secret not in caplog.text
    assert guarded.refused


def test_unreachable_proxy_is_named_in_the_error(emulator: EmulatorServer) -> None:
    dead = _dead_proxy()
    with pytest.raises(GraphError) as failed:
        _sign_in_and_read(emulator, proxy=dead, connect_timeout_s=2)
    assert "ProxyError" in str(failed.value) and f"graph.proxy {dead}" in str(failed.value)
    assert failed.value.retryable


def test_an_untrusted_certificate_behind_a_proxy_says_to_set_the_ca_bundle(
        emulator: EmulatorServer, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an operator sees behind a TLS-inspecting proxy before setting graph.ca_bundle."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(GraphError) as failed:
        _sign_in_and_read(emulator, proxy=proxy.url, ca_bundle="")
    assert "SSLError" in str(failed.value) and "graph.ca_bundle" in str(failed.value)
    assert proxy.tunnels  # it did go through the proxy; the certificate was the problem
