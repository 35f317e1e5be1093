"""The web app's `/healthz` says whether this server can serve: its database answers and its
keyring opens. A load balancer takes a server out on 503 and puts it back on 200. The endpoint
is public, so the body names what is wrong, never a host, a path or an error text."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from meeting_governance.context import AppContext, initialise
from meeting_governance.web import create_app
from tests.conftest import make_settings
from tests.tcp_proxy import TcpProxy

from .conftest import Web


def test_a_keyring_that_went_away_is_503_and_ok_once_back(web: Web,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    client = web.client()
    assert client.get("/healthz").json() == {"status": "ok"}
    keys = web.ctx.settings.keys_file
    moved = keys.with_suffix(".moved")
    keys.rename(moved)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "reasons": ["keyring unreachable"]}
    assert str(keys.parent) not in response.text
    logged = [r for r in caplog.records if r.getMessage() == "health: keyring unreachable"]
    assert logged and "does not exist" in logged[0].detail  # type: ignore[attr-defined]
    moved.rename(keys)
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.postgres
def test_a_database_that_goes_away_is_503_and_ok_once_back(pg_schema_url: str,
                                                           tmp_path: Path) -> None:
    url = make_url(pg_schema_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    home = tmp_path / "home"
    settings = make_settings(home, via_proxy)
    initialise(settings, home / "config.toml")
    ctx = AppContext.open(settings)
    try:
        client = TestClient(create_app(ctx))
        assert client.get("/healthz").json() == {"status": "ok"}
        proxy.cut()
        response = client.get("/healthz")
        assert response.status_code == 503
        assert response.json() == {"status": "degraded", "reasons": ["database unreachable"]}
        assert str(proxy.port) not in response.text and "127.0.0.1" not in response.text
        proxy.restore()
        response = client.get("/healthz")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})
    finally:
        proxy.cut()
        ctx.close()
