"""The command line: every --help, init, audit, keys, not-built commands, and clean errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import typer
from sqlmodel import Session
from typer.testing import CliRunner

from meeting_governance.cli import app as cli_app
from meeting_governance.config import load_settings, packaged_default_toml
from meeting_governance.context import AppContext
from meeting_governance.epochs import Owner, standing

from .conftest import assert_one_clear_line, run_cli

runner = CliRunner()
ROOT = typer.main.get_command(cli_app)


def is_group(command: Any) -> bool:
    return hasattr(command, "list_commands")  # typer vendors its own click: duck-type it


def command_tree(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command and group, depth first, with its path of names."""
    found = [(path, command)]
    if is_group(command):
        ctx = command.context_class(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None
            found.extend(command_tree(sub, (*path, name)))
    return found


TREE = command_tree(ROOT)
CONTRACT = ["init", "demo", "daemon", "poll", "process", "purge", "recordings list", "optout add",
            "optout list", "optout revoke", "optout import", "transcript list", "transcript show",
            "transcript export", "hold set", "hold release", "dsr export", "dsr erase",
            "audit verify", "audit list", "keys rotate", "users add", "serve", "emulator"]


def invoke(args: list[str], home: Path, **env: str | None) -> Any:
    return runner.invoke(cli_app, args, env={"MG_HOME": str(home), "MG_CONFIG": None, **env},
                         catch_exceptions=True)


def test_the_contract_is_all_there() -> None:
    paths = {" ".join(path) for path, _ in TREE}
    missing = [name for name in CONTRACT if name not in paths]
    assert not missing, f"commands of the contract missing from the CLI: {missing}"


@pytest.mark.parametrize(("path", "command"), TREE, ids=[" ".join(p) or "root" for p, _ in TREE])
def test_help(path: tuple[str, ...], command: Any, tmp_path: Path) -> None:
    result = invoke([*path, "--help"], tmp_path / "home")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.stdout
    assert command.help or command.short_help, f"{' '.join(path)} has no help text"
    assert not (tmp_path / "home").exists()  # --help touches nothing


def test_version(tmp_path: Path) -> None:
    result = invoke(["--version"], tmp_path / "home")
    assert result.exit_code == 0 and result.stdout.startswith("meeting-governance ")


def test_init_twice_changes_nothing_the_second_time(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = invoke(["init"], home)
    assert first.exit_code == 0, first.output
    assert "created" in first.stdout and "migrated" in first.stdout
    assert (home / "config.toml").is_file() and (home / "keys" / "keys.json").is_file()
    keyring = (home / "keys" / "keys.json").read_bytes()
    second = invoke(["init"], home)
    assert second.exit_code == 0, second.output
    assert "nothing changed" in second.stdout
    assert "created" not in second.stdout and "migrated" not in second.stdout
    assert (home / "keys" / "keys.json").read_bytes() == keyring


@pytest.mark.parametrize("how", ["flag", "env"])
def test_init_creates_the_config_file_it_is_pointed_at(tmp_path: Path, how: str) -> None:
    cfg = tmp_path / "etc" / "mg.toml"
    home = tmp_path / "home"
    if how == "flag":
        result = invoke(["--config", str(cfg), "init"], home)
    else:
        result = invoke(["init"], home, MG_CONFIG=str(cfg))
    assert result.exit_code == 0, result.output
    assert f"created config {cfg}" in result.stdout.replace("\n", "")
    assert cfg.read_bytes() == packaged_default_toml().read_bytes()
    assert cfg.stat().st_mode & 0o077 == 0
    assert not (home / "config.toml").exists()
    again = invoke(["--config", str(cfg), "init"], home)
    assert "nothing changed" in again.stdout


def init_home(tmp_path: Path, **env: str) -> Path:
    home = tmp_path / "home"
    result = invoke(["init"], home, **env)
    assert result.exit_code == 0, result.output
    return home


def test_audit_list_json_is_only_json(tmp_path: Path) -> None:
    home = init_home(tmp_path)
    result = invoke(["audit", "list", "--json"], home)
    assert result.exit_code == 0, result.output
    entries = json.loads(result.stdout)
    assert entries[0]["action"] == "system.init" and entries[0]["seq"] == 1
    keys = invoke(["keys", "status", "--json"], home)
    status = json.loads(keys.stdout)
    assert status["epochs"] == [] and status["destroyed"] == 0  # no key before the first data
    assert status["legacy_kek_versions"] == {} and status["problems"] == []


@pytest.mark.slow
def test_audit_verify_names_the_tampered_entry(tmp_path: Path) -> None:
    home = init_home(tmp_path)
    ok = run_cli(["audit", "verify"], home)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
    with sqlite3.connect(home / "meeting-governance.db") as conn:
        conn.execute("UPDATE audit_entry SET actor = 'mallory' WHERE seq = 1")
    broken = run_cli(["audit", "verify"], home)
    assert broken.returncode != 0
    assert_one_clear_line(broken.stderr, "entry 1", "changed")
    assert broken.stdout == ""


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_keys_rotate_destroys_old_keys_and_keeps_data_readable(
        tmp_path: Path, db: str, request: pytest.FixtureRequest) -> None:
    env = {}
    if db == "postgres":
        env["MG_DATABASE__URL"] = request.getfixturevalue("pg_schema_url")
    home = init_home(tmp_path, **env)
    settings = load_settings(None, home=home, **({"database": {"url": env["MG_DATABASE__URL"]}}
                                                 if env else {}))
    owner = Owner("optout", "o-1", "note")
    app = AppContext.open(settings)
    try:
        with app.session() as session:
            item_id = app.vault.seal_text(session, "the minutes of the board", owner=owner,
                                          epoch=standing("optout"))
    finally:
        app.close()
    before = json.loads(invoke(["keys", "status", "--json"], home, **env).stdout)
    [old] = before["epochs"]
    assert old["items"] == 1 and old["state"] == "active" and old["in_keyring"]
    result = invoke(["keys", "rotate"], home, **env)
    assert result.exit_code == 0, result.output
    assert "1 epoch keys replaced and destroyed; 1 data keys re-wrapped" in result.stdout
    app = AppContext.open(settings)
    try:
        assert not app.keys.exists(old["key_id"])
        with Session(app.engine) as session:
            assert app.vault.open_text(session, item_id, owner=owner) == "the minutes of the board"
    finally:
        app.close()
    status = json.loads(invoke(["keys", "status", "--json"], home, **env).stdout)
    by_state = {e["state"]: e for e in status["epochs"]}
    assert by_state["destroyed"]["key_id"] == old["key_id"] and not by_state["destroyed"]["in_keyring"]
    assert by_state["active"]["items"] == 1 and by_state["active"]["label"] == "standing:optout"
    assert status["destroyed"] == 1 and status["problems"] == []
    verify = invoke(["audit", "verify"], home, **env)
    assert verify.exit_code == 0, verify.output


def test_retire_refuses_an_unknown_version(tmp_path: Path) -> None:
    home = init_home(tmp_path)
    result = invoke(["keys", "retire", "1"], home)
    assert result.exit_code != 0
    assert "KEK version 1 is not in the keyring file" in str(result.exception)


@pytest.mark.parametrize("how", ["flag", "env", "home"])
def test_unknown_config_key_is_one_clear_line(tmp_path: Path, how: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    cfg = (home / "config.toml") if how == "home" else (tmp_path / "bad.toml")
    cfg.write_text('[graph]\ntenant_id = "t"\norganisers = ["x"]\n')
    args = ["--config", str(cfg)] if how == "flag" else []
    if how == "env":
        result = run_cli(["audit", "list"], home, MG_CONFIG=str(cfg))
    else:
        result = run_cli([*args, "audit", "list"], home)
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, "unknown key 'graph.organisers'", str(cfg))
    assert result.stdout == ""


def test_wrong_environment_value_is_one_clear_line(tmp_path: Path) -> None:
    result = run_cli(["audit", "list"], tmp_path / "home", MG_WEB__PORT="0")
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, "web.port", "MG_WEB__PORT")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_database_is_one_clear_line(tmp_path: Path, damage: str) -> None:
    home = init_home(tmp_path)
    db = home / "meeting-governance.db"
    data = db.read_bytes()
    db.write_bytes(b"\x13\x37" * 4096 if damage == "garbage" else data[:20000])
    result = run_cli(["audit", "verify"], home)
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "damaged or not a database")


def test_wrong_keyring_mode_is_one_clear_line(tmp_path: Path) -> None:
    home = init_home(tmp_path)
    (home / "keys" / "keys.json").chmod(0o644)
    result = run_cli(["audit", "verify"], home)
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "chmod 600")


@pytest.mark.slow
def test_python_dash_m_help(tmp_path: Path) -> None:
    result = run_cli(["--help"], tmp_path / "home")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_unreachable_postgres_is_one_clear_line(tmp_path: Path) -> None:
    url = "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/test"
    result = run_cli(["audit", "list"], tmp_path / "home", MG_DATABASE__URL=url)
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "cannot use the database")
    assert "s3cret" not in result.stderr  # the password is never printed
