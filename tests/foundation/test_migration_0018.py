"""Revision 0018 (speaker links, DSR decisions) on a database in use: a transcript stored under
0014 stays readable after the upgrade and can be named and redacted; the downgrade removes the
two tables and nothing else."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from meeting_governance import dsr, speakers
from meeting_governance.config import Settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.db import alembic_config, current_revision, head_revision, make_engine
from meeting_governance.models import Transcript
from meeting_governance.store import read_content

from ..dsr.helpers import ALICE, BOB_WORDS, labelled_transcript


def test_0018_upgrades_a_database_in_use_and_downgrades_cleanly(settings: Settings) -> None:
    initialise(settings, settings.home / "config.toml")
    ctx = AppContext.open(settings)
    try:
        row = labelled_transcript(ctx)
    finally:
        ctx.close()
    engine = make_engine(settings.database_url)
    command.downgrade(alembic_config(engine), "0014")
    assert current_revision(engine) == "0014"
    tables = set(inspect(engine).get_table_names())
    assert "speaker_link" not in tables and "dsr_decision" not in tables
    assert "transcript" in tables and "vault_item" in tables
    engine.dispose()

    ctx = AppContext.open(settings)  # migrates, as every command does at start
    try:
        assert current_revision(ctx.engine) == head_revision()
        with ctx.session() as session:
            fresh = session.get(Transcript, row.id)
            assert fresh is not None
            speakers.record(ctx, session, fresh,
                            [speakers.Naming("Speaker 1", 0, "attendance", "alone")])
        report = dsr.redact_person(ctx, email=ALICE, reference="M-1", policy="keep")
        assert [r.own_turns for r in report.redacted] == [2]
        with ctx.session() as session:
            fresh = session.get(Transcript, row.id)
            assert fresh is not None
            assert BOB_WORDS in [s["text"] for s in read_content(ctx, session, fresh)["segments"]]
    finally:
        ctx.close()
