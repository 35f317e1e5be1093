"""Data-subject requests and person holds cover every identifier of the person: a transcript
where Teams listed Jane by her alias, one where it listed her by object id only — an access
request by her primary address finds both, an erasure by her object id erases both, a hold by
her other mail holds both; searched offline, by the address given only, neither is found."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meeting_governance import dsr, holds
from meeting_governance.cli import app as cli_app
from meeting_governance.context import AppContext
from meeting_governance.people import person_identity
from tests.dsr.helpers import make_transcript, person

from .emulator_scenario import JANE, LEE, LEE_UPN


@pytest.fixture
def seeded(app: AppContext) -> dict[str, str]:
    by_oid = make_transcript(app, words=["one"], people=[person(object_id=JANE)], meeting_id="m1")
    by_alias = make_transcript(app, words=["two"], people=[person(email="j.smith@contoso.example")],
                               meeting_id="m2")
    lee = make_transcript(app, words=["three"], people=[person(email=LEE_UPN, object_id=LEE)],
                          meeting_id="m3")
    return {"oid": by_oid.id, "alias": by_alias.id, "lee": lee.id}


def test_access_by_the_primary_address_finds_every_meeting(app, client, seeded, tmp_path: Path):
    live = person_identity(app, email="jane.smith@contoso.example", graph=client)
    report = dsr.export_person(app, live, email="jane.smith@contoso.example",
                               out=tmp_path / "a.zip")
    assert set(report.transcript_ids) == {seeded["oid"], seeded["alias"]}
    with zipfile.ZipFile(report.path) as bundle:
        manifest = json.loads(bundle.read("manifest.json"))
    assert all(m["you_as_participant"] for m in manifest["meetings"])  # her own entries
    assert "every identifier the directory knows" in manifest["how_identifiers_were_found"]
    offline = dsr.export_person(app, person_identity(app, email="jane.smith@contoso.example"),
                                email="jane.smith@contoso.example", out=tmp_path / "b.zip")
    assert offline.transcript_ids == ()


def test_erasure_by_object_id_erases_every_meeting_and_only_hers(app, client, seeded):
    live = person_identity(app, object_id=JANE, graph=client)
    report = dsr.erase_person(app, live, object_id=JANE)
    assert set(report.erased) == {seeded["oid"], seeded["alias"]}
    guest = person_identity(app, email="lee@northwind.example", graph=client)
    assert dsr.erase_person(app, guest, email="lee@northwind.example",
                            dry_run=True).erased == (seeded["lee"],)


def test_a_person_hold_by_another_address_holds_every_meeting(app, client, seeded):
    live = person_identity(app, email="jane@home.example", graph=client)
    info = holds.set_hold(app, live, reason="litigation", email="jane@home.example")
    assert info.covered == 2
    # A transcript stored later, listing her by alias only, is covered too.
    later = make_transcript(app, words=["four"], people=[person(email="j.smith@contoso.example")],
                            meeting_id="m4")
    with app.session() as session:
        assert holds.is_held(session, later.id)
    assert holds.find_active(app, email="j.smith@contoso.example") == info.id


def test_the_cli_asks_the_directory_and_says_what_it_searched(app, seeded, cli_against,
                                                              tmp_path: Path):
    cli_against(app)
    runner = CliRunner()
    result = runner.invoke(cli_app, ["dsr", "export", "--email", "J.Smith@contoso.example",
                                     "--out", str(tmp_path / "x.zip"), "--json"])
    assert result.exit_code == 0, result.exception
    assert set(json.loads(result.stdout)["transcript_ids"]) == {seeded["oid"], seeded["alias"]}
    assert "Jane Smith" in result.stderr and "every identifier" in result.stderr
    refused = runner.invoke(cli_app, ["dsr", "export", "--email", "team@contoso.example",
                                      "--out", str(tmp_path / "y.zip")])
    assert refused.exit_code != 0 and "--object-id" in str(refused.exception)


def test_optout_add_shows_whom_the_address_reaches_before_saving(app, cli_against):
    cli_against(app)
    runner = CliRunner()
    checked = runner.invoke(cli_app, ["optout", "add", "--email", "J.Smith@contoso.example",
                                      "--check"])
    assert checked.exit_code == 0, checked.exception
    assert "Resolves to: Jane Smith — member of this organisation (4 identifiers)" in checked.stdout
    assert runner.invoke(cli_app, ["optout", "list", "--json"]).stdout.strip() == "[]"
    guest = runner.invoke(cli_app, ["optout", "add", "--email", "lee@northwind.example",
                                    "--meeting", "https://teams.microsoft.com/meet/123456789012"
                                    "?p=abc", "--yes"])
    assert guest.exit_code == 0, guest.exception
    assert "Lee Northwind — guest from northwind.example" in guest.stdout
    assert "Meeting: “Room” on 2026-11-02 09:00 UTC" in guest.stdout
    nobody = runner.invoke(cli_app, ["optout", "add", "--email", "pat@elsewhere.example", "-y"])
    assert "not found in the directory — matched by this address only" in nobody.stdout
    listed = json.loads(runner.invoke(cli_app, ["optout", "list", "--json"]).stdout)
    assert len(listed) == 2
