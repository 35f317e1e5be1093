"""`meeting-governance optout …` through the real Typer app, on a fresh MG_HOME."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meeting_governance.cli import app
from meeting_governance.errors import InputError

from .helpers import JOIN_URL, OID


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("MG_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    return runner


def invoke(cli: CliRunner, *args: str) -> tuple[int, str, BaseException | None]:
    result = cli.invoke(app, list(args))
    return result.exit_code, result.stdout, result.exception


def listed(cli: CliRunner, *args: str) -> list[dict[str, object]]:
    code, out, exc = invoke(cli, "optout", "list", "--json", *args)
    assert code == 0, exc
    data: list[dict[str, object]] = json.loads(out)  # stdout holds JSON only
    return data


def test_add_list_search_revoke(cli: CliRunner) -> None:
    code, out, _ = invoke(cli, "optout", "add", "--email", "Ada@Example.com", "--name", "Ada",
                          "--meeting", JOIN_URL, "--covers", "transcription", "--note", "n")
    assert code == 0 and "will not be transcribed while Ada (ada@example.com)" in out
    code, out, _ = invoke(cli, "optout", "add", "--object-id", OID, "--from", "2026-03-01",
                          "--until", "2026-03-31")
    assert code == 0 and "Meetings from 2026-03-01 to 2026-03-31" in out
    rows = listed(cli)
    assert len(rows) == 2 and all(r["active"] for r in rows)
    ada = listed(cli, "--search", "ada@example.com")
    assert len(ada) == 1 and ada[0]["meeting"] == JOIN_URL and ada[0]["covers"] == "transcription"
    code, out, _ = invoke(cli, "optout", "revoke", str(ada[0]["id"]), "--reason", "withdrawn")
    assert code == 0 and "revoked" in out
    assert [r["email"] for r in listed(cli, "--active")] == [None]
    revoked = listed(cli, "--search", "ada@example.com")[0]
    assert revoked["revoke_reason"] == "withdrawn" and not revoked["active"]
    code, _, exc = invoke(cli, "optout", "revoke", str(ada[0]["id"]))
    assert code != 0 and isinstance(exc, InputError)
    code, out, _ = invoke(cli, "optout", "list")
    assert code == 0 and "Opt-outs" in out


def test_add_refuses_bad_input(cli: CliRunner) -> None:
    for args, text in [((), "email: give an e-mail address"),
                       (("--email", "x"), "email: not an e-mail"),
                       (("--email", "a@b.org", "--meeting", "m", "--from", "2026-01-01"),
                        "meeting: choose one meeting or a date range"),
                       (("--email", "a@b.org", "--from", "soon"), "from: not a date"),
                       (("--email", "a@b.org", "--covers", "all"), "covers: expected")]:
        code, _, exc = invoke(cli, "optout", "add", *args)
        assert code != 0 and isinstance(exc, InputError) and text in str(exc), (args, exc)
    assert listed(cli) == []


def test_import(cli: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("email,name\na@example.com,A\nb@example.com,B\n", encoding="utf-8")
    code, out, _ = invoke(cli, "optout", "import", str(good))
    assert code == 0 and "imported 2 opt-outs" in out
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nc@example.com\nnope\n", encoding="utf-8")
    code, _, exc = invoke(cli, "optout", "import", str(bad))
    assert code != 0 and str(exc).startswith("bad.csv: line 3: email: not an e-mail address")
    assert len(listed(cli)) == 2


@pytest.mark.slow
def test_console_script_prints_one_error_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env.update(MG_HOME=str(tmp_path / "home"), COLUMNS="200")
    run = [sys.executable, "-m", "meeting_governance"]
    subprocess.run([*run, "init"], env=env, check=True, capture_output=True)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"email\nok@example.com\n\xff\n")
    proc = subprocess.run([*run, "optout", "import", str(bad)], env=env, capture_output=True,
                          text=True)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "error: bad.csv: line 3: the file is not UTF-8 text (byte 21); save it as \"CSV UTF-8\""]
    assert proc.stdout == ""
