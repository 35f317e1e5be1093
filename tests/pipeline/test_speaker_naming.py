"""Names for speakers on real speech, end to end: three LibriSpeech speakers in one recording,
the real tiny.en model and speaker encoder, the Graph emulator over HTTPS with an attendance
report whose intervals and a Teams transcript whose timeline are evidence; then a DPO names
the third, one person is redacted and another exports their own words."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from meeting_governance import dsr, speakers
from meeting_governance.cli import app as cli_app
from meeting_governance.config import DiarizationSettings
from meeting_governance.diarization import Diarization
from meeting_governance.errors import ShreddedError
from meeting_governance.models import Transcript
from meeting_governance.pipeline import Services, poll, process
from meeting_governance.store import content_owner, read_content
from meeting_governance.transcribe import Transcriber
from mg_emulator import (
    AttendanceRecord,
    AttendanceReport,
    EmulatorServer,
    Meeting,
    Organizer,
    Person,
    Recording,
    Scenario,
)
from mg_emulator.scenario import CallTranscript, TranscriptCue
from tests.conftest import scan_for
from tests.diarization.conftest import A, B, C, Joined, join

from .conftest import Env, make_env

pytestmark = pytest.mark.slow

TENANT = "naming-tenant"
ORG = "6f1c3a52-8d0e-4b7a-9c21-3e5f7a9b1c09"
BEA = "a1b2c3d4-0011-4000-8000-000000000011"
CY = "a1b2c3d4-0012-4000-8000-000000000012"
ORG_MAIL, BEA_MAIL, CY_MAIL = ("ada.first@contoso.example", "bea.second@contoso.example",
                               "cy.third@contoso.example")
MEETING = "MSo-naming=="
START = datetime(2026, 11, 3, 10, tzinfo=UTC)
TEAMS_HEARD = "teams heard marmalade zeppelin"  # Teams' text: must be dropped, everywhere


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Joined:
    """Ada, Bea, Cy, Ada: about 30 s of three real people, 1 s pauses."""
    return join(tmp_path_factory.mktemp("three") / "three.wav", [A, B, C, A], 1.0)


def _scenario(three: Joined) -> Scenario:
    (_, _, _), (b0, b1, _), (c0, _, _) = three.spans[0], three.spans[1], three.spans[2]
    end = three.spans[-1][1] + 2
    records = (
        AttendanceRecord(id="r-ada", email=ORG_MAIL, identity_id=ORG, display_name="Ada First",
                         role="Organizer", tenant_id=TENANT, intervals=((0, end),)),
        # Bea and Cy join just before each first speaks: Ada was alone when she opened.
        AttendanceRecord(id="r-bea", email=BEA_MAIL, identity_id=BEA, display_name="Bea Second",
                         tenant_id=TENANT, intervals=((b0 - 0.5, end),)),
        AttendanceRecord(id="r-cy", email=CY_MAIL, identity_id=CY, display_name="Cy Third",
                         tenant_id=TENANT, intervals=((c0 - 0.5, end),)),
    )
    transcript = CallTranscript(id="tr-1", created=START,
                                end=START + timedelta(seconds=end), cues=(
        TranscriptCue(b0, b1, "Bea Second", TEAMS_HEARD),))
    meeting = Meeting(id=MEETING, organizer=ORG, subject="Naming review", start=START,
                      end=START + timedelta(seconds=end),
                      join_url="https://teams.microsoft.com/l/meetup-join/19%3ameeting_naming%40thread.v2/0",
                      attendance_reports=(AttendanceReport(id="rep-naming", records=records,
                                                           start=START,
                                                           end=START + timedelta(seconds=end)),),
                      transcripts=(transcript,))
    recording = Recording(id="VjIj-naming=/rec", meeting=MEETING, media=three.path.name,
                          content_type="audio/wav", created=START,
                          end=START + timedelta(seconds=end), call_id="call-naming")
    people = (Person(id=BEA, display_name="Bea Second", upn=BEA_MAIL, mail=BEA_MAIL),
              Person(id=CY, display_name="Cy Third", upn=CY_MAIL, mail=CY_MAIL))
    return Scenario(tenant_id=TENANT, client_id="naming-client", client_secret="naming-secret",
                    organizers=(Organizer(id=ORG, upn=ORG_MAIL, display_name="Ada First"),),
                    meetings=(meeting,), recordings=(recording,), people=people)


@pytest.fixture
def naming_env(home: Path, db_url: str, tmp_path: Path, three: Joined,
               whisper_model: Any) -> Iterator[Env]:
    with EmulatorServer(_scenario(three), media_dir=three.path.parent,
                        state_dir=tmp_path / "emulator") as emu:
        env = make_env(home, db_url, emu, whisper_model,
                       diarization={"enabled": True},
                       gate={"participants_deadline_hours": 24 * 90})
        diarization = Diarization.from_settings(DiarizationSettings(enabled=True))
        env.services = Services(
            graph_factory=env.services.graph_factory,
            transcriber=Transcriber(env.settings.transcription, model=whisper_model,
                                    diarization=diarization))
        try:
            yield env
        finally:
            env.services.close()
            env.app.close()


def _label_of(content: dict[str, Any], three: Joined) -> dict[str, str]:
    """True speaker (LibriSpeech id) -> the label diarization gave most of their segments."""
    votes: dict[str, dict[str, int]] = {}
    for s in content["segments"]:
        who = three.speaker_at((s["start"] + s["end"]) / 2)
        if who and s.get("speaker"):
            votes.setdefault(who, {}).setdefault(s["speaker"], 0)
            votes[who][s["speaker"]] += 1
    return {who: max(v.items(), key=lambda kv: kv[1])[0] for who, v in votes.items()}


def test_speakers_named_by_evidence_redacted_and_exported(naming_env: Env, three: Joined,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    env = naming_env
    with env.graph() as graph:
        poll(env.app, graph)
    report = process(env.app, env.services, limit=5)
    assert [o.state for o in report.outcomes] == ["stored"], report.outcomes
    with env.app.session() as session:
        row = session.exec(select(Transcript)).one()
        content = read_content(env.app, session, row)
    ada, bea, cy = (three.spans[0][2], three.spans[1][2], three.spans[2][2])
    labels = _label_of(content, three)
    # Speaker changes are found on real speech: three people, three labels.
    assert len(set(labels.values())) == 3, labels

    views = {v.label: v for v in speakers.speakers(env.app, row.id)}
    assert (views[labels[ada]].name, views[labels[ada]].method) == ("Ada First", "attendance")
    assert (views[labels[bea]].name, views[labels[bea]].method) == ("Bea Second",
                                                                    "teams_timeline")
    # Cy joined before speaking, with Ada and Bea present, and Teams said nothing of her.
    assert (views[labels[cy]].shown, views[labels[cy]].method) == (labels[cy], "unnamed")

    # A DPO listens and names her, through the CLI.
    monkeypatch.setenv("MG_HOME", str(env.settings.home))
    if env.settings.database.url:
        monkeypatch.setenv("MG_DATABASE__URL", env.settings.database.url)
    runner = CliRunner()
    bad = runner.invoke(cli_app, ["transcript", "speakers", row.id, "--name", "Speaker 9",
                                  "--person", CY_MAIL])
    assert bad.exit_code != 0 and "has no speaker 'Speaker 9'" in str(bad.exception)
    done = runner.invoke(cli_app, ["transcript", "speakers", row.id, "--name", labels[cy],
                                   "--person", CY_MAIL, "--json"])
    assert done.exit_code == 0, done.output
    listed = {v["label"]: v for v in json.loads(done.stdout)}
    assert (listed[labels[cy]]["name"], listed[labels[cy]]["method"]) == ("Cy Third", "dpo")
    vtt = runner.invoke(cli_app, ["transcript", "export", row.id, "--format", "vtt"]).stdout
    assert "<v Ada First>" in vtt and "<v Bea Second>" in vtt and "<v Cy Third>" in vtt
    assert "NOTE Bea Second (diarization label" in vtt and "named by teams_timeline" in vtt

    # Teams' words were never kept: not in the database, the log or any temporary file.
    assert scan_for(env.settings.home, [TEAMS_HEARD.encode()]) == []
    assert scan_for(tmp_path, [TEAMS_HEARD.encode()]) == []

    # Bea asks to be erased from the meeting: her turns go, Ada's and Cy's words stay.
    words = {who: [s["text"] for s in content["segments"] if s.get("speaker") == labels[who]]
             for who in (ada, bea, cy)}
    assert all(words.values()), words
    redacted = dsr.redact_person(env.app, email=BEA_MAIL, reference="RED-9")
    assert [(r.transcript_id, r.own_turns) for r in redacted.redacted] == \
        [(row.id, len(words[bea]))]
    assert redacted.redacted[0].uncertain_removed == 0  # every label is named
    with env.app.session() as session:
        after = session.get(Transcript, row.id)
        assert after is not None and after.version == 2
        texts = [s["text"] for s in read_content(env.app, session, after)["segments"]]
        with pytest.raises(ShreddedError):
            env.app.vault.open(session, row.content_item or "", owner=content_owner(row.id))
    assert texts == [s["text"] for s in content["segments"]
                     if s.get("speaker") in (labels[ada], labels[cy])]

    # Ada's own export: her words in full, the others only as times.
    out = tmp_path / "ada.zip"
    dsr.export_person(env.app, email=ORG_MAIL, out=out)
    with zipfile.ZipFile(out) as bundle:
        text = "\n".join(bundle.read(n).decode() for n in bundle.namelist())
    assert all(w in text for w in words[ada])
    assert not any(w in text for w in words[cy] + words[bea])
    assert "another participant spoke (" in text
    out.unlink()
