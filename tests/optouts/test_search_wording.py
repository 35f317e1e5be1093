"""`optout list --search` says what an exact, blind-index search can and cannot find."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meeting_governance.cli import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("MG_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    added = runner.invoke(app, ["optout", "add", "--email", "ada.lovelace@example.org",
                                "--name", "Ada Lovelace"])
    assert added.exit_code == 0, added.output
    return runner


def test_no_match_does_not_read_as_nobody_opted_out(cli: CliRunner) -> None:
    result = cli.invoke(app, ["optout", "list", "--search", "ada"])
    assert result.exit_code == 0
    assert "This does not mean the person has no opt-out" in result.stderr
    assert "exact matches only" in result.stderr
    assert "ada.lovelace" not in result.stdout


def test_a_match_still_says_other_addresses_are_not_searched(cli: CliRunner) -> None:
    result = cli.invoke(app, ["optout", "list", "--search", "ADA.LOVELACE@example.org"])
    assert result.exit_code == 0 and "ada.lovelace@example.org" in result.stdout
    assert "other addresses are not searched" in result.stderr


def test_json_output_stays_json_only(cli: CliRunner) -> None:
    result = cli.invoke(app, ["optout", "list", "--json", "--search", "nobody@example.org"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert result.stderr == ""


def test_help_says_exact_only(cli: CliRunner) -> None:
    result = cli.invoke(app, ["optout", "list", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())  # rich's box, wrapped lines
    assert "Exact only" in text and "no result does not mean no opt-out" in text
