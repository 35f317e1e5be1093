"""`meeting-governance dsr …`, `stats` and `transcript edit` through Typer, on a fresh MG_HOME."""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from meeting_governance.cli import app as cli_app
from meeting_governance.cliutil import state
from meeting_governance.commands import transcript_edit
from meeting_governance.config import load_settings
from meeting_governance.context import AppContext
from meeting_governance.errors import InputError
from meeting_governance.models import Transcript
from meeting_governance.store import read_content

from .helpers import ALICE, BOB, make_transcript, person


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("MG_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["init"])
    assert result.exit_code == 0, result.output
    return runner


@pytest.fixture
def seeded(cli: CliRunner, tmp_path: Path) -> Iterator[dict[str, str]]:
    ctx = AppContext.open(load_settings(None, home=tmp_path / "home"))
    try:
        a = make_transcript(ctx, words=["the quarterly numbres"], people=[person(ALICE)],
                            meeting_id="m-1")
        b = make_transcript(ctx, words=["bravo"], people=[person(BOB)], meeting_id="m-2")
    finally:
        ctx.close()
    yield {"alice": a.id, "bob": b.id}


def invoke(cli: CliRunner, *args: str, app: typer.Typer = cli_app,
           input: str | None = None) -> tuple[int, str, BaseException | None]:
    result = cli.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.exception


def test_export_erase_list_close(cli: CliRunner, seeded: dict[str, str], tmp_path: Path) -> None:
    code, out, exc = invoke(cli, "dsr", "export", "--offline", "--email", ALICE)
    assert code == 0, exc
    bundles = list(tmp_path.glob("DSR-*.zip"))
    assert len(bundles) == 1 and "1 transcripts" in out
    with zipfile.ZipFile(bundles[0]) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
    assert [m["transcript_id"] for m in manifest["meetings"]] == [seeded["alice"]]
    code, out, exc = invoke(cli, "dsr", "export", "--offline", "--email", ALICE, "--out", "x.zip", "--json")
    assert code == 0, exc
    assert json.loads(out)["transcript_ids"] == [seeded["alice"]]

    code, out, exc = invoke(cli, "dsr", "erase", "--offline", "--email", ALICE, "--dry-run", "--json")
    assert code == 0, exc
    assert json.loads(out)["erased"] == [seeded["alice"]] and json.loads(out)["dry_run"]
    code, out, exc = invoke(cli, "dsr", "erase", "--offline", "--email", ALICE, input="n\n")
    assert code == 1  # declined: nothing happened
    code, out, exc = invoke(cli, "dsr", "erase", "--offline", "--email", ALICE, "--reference", "E-1",
                            input="y\n")
    assert code == 0, exc
    assert "E-1: erased 1 transcripts" in out
    code, out, _ = invoke(cli, "transcript", "list", "--json")
    assert [t["id"] for t in json.loads(out)] == [seeded["bob"]]

    code, out, exc = invoke(cli, "dsr", "open", "access", "--email", BOB, "--received",
                            "2020-01-01", "--reference", "OLD-1")
    assert code == 0, exc
    code, out, _ = invoke(cli, "dsr", "list", "--json", "--overdue")
    assert [r["reference"] for r in json.loads(out)] == ["OLD-1"]
    code, out, _ = invoke(cli, "dsr", "list", "--json")
    statuses = {r["reference"]: r["status"] for r in json.loads(out)}
    assert statuses["E-1"] == "completed" and statuses["OLD-1"] == "open"
    code, out, _ = invoke(cli, "dsr", "list")
    assert code == 0 and "OVERDUE" in out
    code, out, exc = invoke(cli, "dsr", "close", "OLD-1")
    assert code == 0, exc
    code, out, _ = invoke(cli, "dsr", "list", "--json", "--overdue")
    assert json.loads(out) == []


def test_withdraw_and_stats(cli: CliRunner, seeded: dict[str, str]) -> None:
    code, out, exc = invoke(cli, "dsr", "withdraw", "--email", BOB, "--name", "Bob")
    assert code == 0, exc
    code, out, _ = invoke(cli, "optout", "list", "--json")
    [optout] = json.loads(out)
    assert optout["email"] == BOB and optout["scope"] == "all" and optout["covers"] == "both"
    code, out, exc = invoke(cli, "stats", "--json")
    assert code == 0, exc
    [row] = json.loads(out)
    assert row["transcribed"] == "<5" and row["seen"] == "<5"
    code, out, _ = invoke(cli, "stats")
    assert code == 0 and "Statistics" in out


@pytest.mark.parametrize("args, message", [
    ([], "say whose data"),
    (["--email", ALICE, "--object-id", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"], "not both"),
    (["--email", "alice.example.org"], "not an e-mail address"),
    (["--object-id", "nope"], "not an Entra object id"),
])
@pytest.mark.parametrize("command", ["export", "erase", "withdraw"])
def test_bad_identity_is_a_clear_error(cli: CliRunner, command: str, args: list[str],
                                       message: str) -> None:
    code, _, exc = invoke(cli, "dsr", command, *args)
    assert code != 0 and isinstance(exc, InputError) and message in str(exc)


def _edit_app() -> typer.Typer:
    """A root like cli.py's, with the `transcript` group as the lead will wire it."""
    root = typer.Typer()

    @root.callback()
    def _root(ctx: typer.Context) -> None:
        ctx.call_on_close(state(ctx).close)

    group = typer.Typer()
    transcript_edit.register(group)
    root.add_typer(group, name="transcript")
    return root


def _text(tmp_path: Path, transcript_id: str) -> list[str]:
    ctx = AppContext.open(load_settings(None, home=tmp_path / "home"))
    try:
        with ctx.session() as session:
            row = session.get(Transcript, transcript_id)
            assert row is not None
            return [s["text"] for s in read_content(ctx, session, row)["segments"]]
    finally:
        ctx.close()


def test_transcript_edit_from_file_and_editor(cli: CliRunner, seeded: dict[str, str],
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    edit = _edit_app()
    fixed = tmp_path / "fixed.txt"
    fixed.write_text("the quarterly numbers\n")
    code, out, exc = invoke(cli, "transcript", "edit", seeded["alice"], "--from", str(fixed),
                            "--reason", "typo", app=edit)
    assert code == 0, exc
    assert "version 1 → 2" in out and _text(tmp_path, seeded["alice"]) == ["the quarterly numbers"]
    script = tmp_path / "editor.py"
    script.write_text("import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
                      "p.write_text(p.read_text().replace('numbers', 'figures'))\n")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    code, out, exc = invoke(cli, "transcript", "edit", seeded["alice"], app=edit)
    assert code == 0, exc
    assert _text(tmp_path, seeded["alice"]) == ["the quarterly figures"]
    staging = tmp_path / "home" / "staging"
    assert not list(staging.glob("edit-*"))  # the plaintext file is gone
    monkeypatch.setenv("EDITOR", "true")  # leaves the file unchanged
    code, _, _ = invoke(cli, "transcript", "edit", seeded["alice"], app=edit)
    assert code == 1 and _text(tmp_path, seeded["alice"]) == ["the quarterly figures"]


@pytest.fixture
def labelled(cli: CliRunner, tmp_path: Path) -> Iterator[str]:
    """A transcript with three speakers; Alice's label named by attendance."""
    from meeting_governance import speakers

    from .helpers import labelled_transcript

    ctx = AppContext.open(load_settings(None, home=tmp_path / "home"))
    try:
        row = labelled_transcript(ctx)
        with ctx.session() as session:
            fresh = session.get(Transcript, row.id)
            assert fresh is not None
            speakers.record(ctx, session, fresh,
                            [speakers.Naming("Speaker 1", 0, "attendance", "alone")])
    finally:
        ctx.close()
    yield row.id


def test_speakers_export_choices_and_redaction_on_the_command_line(
        cli: CliRunner, labelled: str, tmp_path: Path) -> None:
    from .helpers import ALICE_WORDS, BOB_WORDS, UNNAMED_WORDS

    code, out, exc = invoke(cli, "transcript", "speakers", labelled)
    assert code == 0, exc
    assert "Alice Liddell" in out and "attendance" in out and "unnamed" in out
    # Bad input: a clear error, nothing changed.
    code, _, exc = invoke(cli, "transcript", "speakers", labelled, "--name", "Speaker 2")
    assert code != 0 and "needs both --name LABEL and --person ADDRESS" in str(exc)
    code, _, exc = invoke(cli, "transcript", "speakers", labelled, "--name", "Speaker 2",
                          "--person", "nobody@example.org")
    assert code != 0 and "not a participant of this meeting" in str(exc)
    code, out, exc = invoke(cli, "transcript", "speakers", labelled, "--name", "Speaker 2",
                            "--person", BOB, "--json")
    assert code == 0, exc
    named = {v["label"]: v for v in json.loads(out)}  # stdout: the JSON only
    assert (named["Speaker 2"]["name"], named["Speaker 2"]["method"]) == ("Bob Builder", "dpo")

    code, _, exc = invoke(cli, "dsr", "export", "--offline", "--email", ALICE, "--out", "f.zip",
                          "--full-transcript")
    assert code != 0 and "--full-transcript needs --reason" in str(exc)
    assert not (tmp_path / "f.zip").exists()
    code, out, exc = invoke(cli, "dsr", "export", "--offline", "--email", BOB, "--out", "own.zip",
                            "--reference", "A-1")
    assert code == 0, exc
    with zipfile.ZipFile(tmp_path / "own.zip") as bundle:
        text = "\n".join(bundle.read(n).decode() for n in bundle.namelist())
    assert BOB_WORDS in text and not any(w in text for w in (*ALICE_WORDS, UNNAMED_WORDS))
    code, out, exc = invoke(cli, "dsr", "export", "--offline", "--email", BOB, "--out",
                            "full.zip", "--reference", "A-2", "--full-transcript", "--reason",
                            "court order 12")
    assert code == 0, exc
    code, out, exc = invoke(cli, "dsr", "decisions", "A-2")
    assert code == 0 and "full transcript chosen" in out and "court order 12" in out
    code, out, exc = invoke(cli, "dsr", "list")
    assert "(full transcript given)" in out

    code, out, exc = invoke(cli, "dsr", "erase", "--offline", "--email", ALICE, "--redact",
                            "--dry-run")
    assert code == 0, exc
    assert "dry run: would redact the person from 1 transcripts" in out
    code, out, exc = invoke(cli, "dsr", "erase", "--offline", "--email", ALICE, "--redact",
                            "--reference", "E-9", "--yes")
    assert code == 0, exc
    assert "E-9: redacted the person from 1 transcripts (2 of their segments" in out
    assert "receipt: " in out
    code, out, exc = invoke(cli, "dsr", "withdraw", "--offline", "--email", BOB,
                            "--redact-past", "--reference", "W-9")
    assert code == 0, exc
    assert "W-9: opt-out" in out and "W-9: redacted the person from 1 transcripts" in out
    code, out, _ = invoke(cli, "transcript", "show", labelled)
    assert not any(w in out for w in (*ALICE_WORDS, BOB_WORDS, UNNAMED_WORDS))


def test_speakers_of_a_transcript_without_diarization(cli: CliRunner,
                                                      seeded: dict[str, str]) -> None:
    code, out, exc = invoke(cli, "transcript", "speakers", seeded["alice"])
    assert code == 0, exc
    assert "has no speaker labels" in out and "diarization.enabled" in out
