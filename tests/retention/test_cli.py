"""The commands of the contract, through Typer's CliRunner against a real installation."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meeting_governance.cli import app as cli_app
from meeting_governance.context import AppContext
from meeting_governance.errors import InputError, IntegrityError

from .helpers import ALICE, T0, make_transcript


@pytest.fixture
def run(app: AppContext, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MG_HOME", str(app.settings.home))
    monkeypatch.setenv("MG_DATABASE__URL", app.settings.database_url)
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(cli_app, ["--config", str(app.settings.home / "config.toml"),
                                         *args])
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    return invoke


def test_purge_json_dry_run_and_table(app: AppContext, run) -> None:  # type: ignore[no-untyped-def]
    row = make_transcript(app)
    dry = run("purge", "--dry-run", "--as-of", T0.isoformat())
    assert "would purge" in dry.stdout and "standard" in dry.stdout
    result = run("purge", "--json", "--as-of", "2026-01-01T12:00:00Z")
    report = json.loads(result.stdout)  # JSON only on stdout
    assert report["tombstone_ids"] == [row.id] and report["by_policy"] == {"standard": 1}
    assert report["dry_run"] is False and report["receipt_path"]

    ok = run("purge", "verify-receipt", report["receipt_path"])
    assert "is valid" in ok.stdout
    tampered = Path(report["receipt_path"]).read_bytes().replace(row.id.encode(), b"0" * 32)
    bad_file = app.settings.home / "tampered.json"
    bad_file.write_bytes(tampered)
    bad = run("purge", "verify-receipt", str(bad_file), ok=False)
    assert isinstance(bad.exception, IntegrityError)
    checked = run("purge", "verify-receipt", report["receipt_path"], "--json")
    assert json.loads(checked.stdout)["ok"] is True

    wrong = run("purge", "--as-of", "next tuesday", ok=False)
    assert isinstance(wrong.exception, InputError)


def test_hold_commands(app: AppContext, run) -> None:  # type: ignore[no-untyped-def]
    row = make_transcript(app)
    made = run("hold", "set", row.id, "--reason", "complaint from a participant")
    assert "hold" in made.stdout
    person = json.loads(run("hold", "set", "--offline", "--email", ALICE, "--reason", "litigation",
                            "--json").stdout)
    assert person["kind"] == "person" and person["covered"] == 1
    listed = json.loads(run("hold", "list", "--json").stdout)
    assert {h["kind"] for h in listed} == {"transcript", "person"}
    assert all(h["reason"] is None for h in listed)
    assert ALICE not in run("hold", "list").stdout
    report = json.loads(run("purge", "--json", "--as-of", T0.isoformat()).stdout)
    assert report["purged"] == 0 and report["held"] == 1

    run("hold", "release", row.id, "--reason", "withdrawn")
    run("hold", "release", "--email", ALICE, "--reason", "settled")
    assert json.loads(run("hold", "list", "--json").stdout) == []
    assert len(json.loads(run("hold", "list", "--all", "--json").stdout)) == 2
    later = (T0 + timedelta(days=400)).isoformat()
    report = json.loads(run("purge", "--json", "--as-of", later).stdout)
    # Released now (wall clock): due at once, since retain_until passed long ago. The run's
    # as_of must be after the release for it to count.
    now_report = json.loads(run("purge", "--json").stdout)
    assert report["purged"] + now_report["purged"] == 1


def test_retention_commands(app: AppContext, run) -> None:  # type: ignore[no-untyped-def]
    make_transcript(app)
    policies = json.loads(run("retention", "policies", "--json").stdout)
    assert policies["policies"][0]["name"] == "standard" and policies["policies"][0]["default"]
    applied = json.loads(run("retention", "apply", "--dry-run", "--json").stdout)
    assert applied["examined"] == 1 and applied["unchanged"] == 1
    assert "examined 1" in run("retention", "apply").stdout
