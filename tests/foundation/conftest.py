"""Helpers for the foundation tests: raw SQL (to play the attacker), the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from meeting_governance.context import AppContext
from meeting_governance.keyring_file import KeyFile, create_keyring_file
from meeting_governance.keys import Keyring
from meeting_governance.vault import Vault

REPO = Path(__file__).resolve().parents[2]


def raw(app: AppContext, sql: str, **params: Any) -> list[Any]:
    """Run SQL behind the application's back (what an attacker with database access can do)."""
    with app.engine.begin() as conn:
        result = conn.execute(text(sql), params)
        return list(result.fetchall()) if result.returns_rows else []


def flip_bit(data: bytes, index: int = 0, bit: int = 0) -> bytes:
    """The same bytes with one bit inverted (index may be negative)."""
    buf = bytearray(data)
    buf[index] ^= 1 << bit
    return bytes(buf)


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a CLI subprocess: no MG_* from the caller, only these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env["MG_HOME"] = str(home)
    env.update(extra)
    return env


def run_cli(args: list[str], home: Path, *, timeout: float = 120, **extra: str
            ) -> subprocess.CompletedProcess[str]:
    """`python -m meeting_governance ARGS`: the real entry point, exit code and stderr."""
    return subprocess.run([sys.executable, "-m", "meeting_governance", *args],
                          env=cli_env(home, **extra), cwd=home.parent, capture_output=True,
                          text=True, timeout=timeout, check=False)


def assert_one_clear_line(stderr: str, *needles: str) -> None:
    """An error of our own: one line (rich may wrap it only on a narrow terminal), no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:"), stderr
    for needle in needles:
        assert needle in lines[0], (needle, stderr)


@pytest.fixture
def other_vault(tmp_path: Path) -> Iterator[Vault]:
    """A vault over a second, unrelated keyring (the wrong key)."""
    yield Vault(file_keyring(tmp_path / "other-keys" / "keys.json"))


def file_keyring(path: Path) -> Keyring:
    """A new (or existing) file keyring at `path`."""
    create_keyring_file(path)
    keyfile = KeyFile(path)
    return Keyring(keyfile.secrets(), keyfile, keyfile.retire_legacy)
