"""`meeting-governance serve`: the real command, in its own process, answering on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from .conftest import Web


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_serve_command(web: Web) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env["MG_HOME"] = str(web.ctx.settings.home)
    proc = subprocess.Popen([sys.executable, "-m", "meeting_governance", "serve", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not answer"
                time.sleep(0.2)
        assert response.json() == {"status": "ok"}
        assert response.headers["x-frame-options"] == "DENY"
        assert httpx.get(f"http://127.0.0.1:{port}/optouts").status_code == 303
    finally:
        proc.send_signal(signal.SIGINT)
        out, _err = proc.communicate(timeout=15)
    assert f"http://127.0.0.1:{port}/login" in out


def test_serve_with_a_broken_keyring_stops_at_start(web: Web) -> None:
    """The keys open on first use, but `serve` opens them at start: a keyring that cannot be
    read stops the server with the fix named, not the first coordinator who saves an opt-out."""
    keys = web.ctx.settings.keys_file
    keys.write_text("not json", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env["MG_HOME"] = str(web.ctx.settings.home)
    done = subprocess.run([sys.executable, "-m", "meeting_governance", "serve", "--port",
                           str(_free_port())], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "cannot be read as JSON" in done.stderr and "restore it from your key backup" in done.stderr
    assert "serving" not in done.stdout
