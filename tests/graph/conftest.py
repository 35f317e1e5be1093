"""One real HTTPS Graph emulator per session; msal and requests talk to it unpatched.

Each test starts with no faults and an empty request log, and builds its own GraphClient (so
its own msal token cache). Waits are recorded by an injected `sleep`, never slept.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meeting_governance.config import GraphSettings
from meeting_governance.graph import GraphClient
from mg_emulator import EmulatorKeys, EmulatorServer

from .emulator_scenario import MEDIA_SIZE, build_scenario


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media")
    (path / "clip.mp4").write_bytes(os.urandom(MEDIA_SIZE))
    (path / "page.html").write_bytes(b"<html>not media</html>")
    return path


@pytest.fixture(scope="session")
def emulator_session(emulator_keys: EmulatorKeys, media_dir: Path) -> Iterator[EmulatorServer]:
    with EmulatorServer(build_scenario(), media_dir=media_dir, keys=emulator_keys) as emu:
        yield emu


@pytest.fixture
def emulator(emulator_session: EmulatorServer) -> Iterator[EmulatorServer]:
    emulator_session.faults.reset()
    emulator_session.requests.clear()
    emulator_session.reset_directory()
    yield emulator_session
    emulator_session.faults.reset()
    emulator_session.reset_directory()


class SleepRecorder:
    """Stands in for time.sleep: remembers each wait so tests can check Retry-After."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_client(emulator: EmulatorServer,
                sleeps: SleepRecorder) -> Iterator[Callable[..., GraphClient]]:
    made: list[GraphClient] = []

    def _make(**overrides: Any) -> GraphClient:
        settings = GraphSettings(**emulator.client_config(**overrides))
        client = GraphClient.from_settings(settings, sleep=sleeps, random_fn=lambda: 0.5)
        made.append(client)
        return client

    yield _make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., GraphClient]) -> GraphClient:
    return make_client()


@pytest.fixture
def cli_against(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Point the command line (MG_* variables) at an installation and this emulator."""

    def point(app: Any) -> None:
        graph = GraphSettings(**emulator.client_config())
        values = {"HOME": str(app.settings.home), "DATABASE__URL": app.settings.database_url,
                  "GRAPH__TENANT_ID": graph.tenant_id, "GRAPH__CLIENT_ID": graph.client_id,
                  "GRAPH__CLIENT_SECRET": graph.client_secret,
                  "GRAPH__CLOUD": "custom", "GRAPH__AUTHORITY_HOST": graph.authority_host,
                  "GRAPH__BASE_URL": graph.base_url, "GRAPH__CA_BUNDLE": graph.ca_bundle,
                  "GRAPH__ORGANIZERS": ",".join(graph.organizers)}
        for key, value in values.items():
            monkeypatch.setenv(f"MG_{key}", value)

    return point
