"""`retention apply`: re-evaluate stored transcripts after a policy change."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from meeting_governance.config import RetentionPolicy, RetentionRule
from meeting_governance.context import AppContext
from meeting_governance.models import AuditEntry, Transcript
from meeting_governance.retention import apply_policies

from .helpers import T0, make_transcript

ORG = "00000000-0000-0000-0000-0000000000aa"


def test_apply_reports_later_and_refuses_shortening(app: AppContext) -> None:
    row = make_transcript(app)  # standard, meeting_end = T0 - 90 d, retain_until = T0
    other = make_transcript(app, organizer_id="00000000-0000-0000-0000-0000000000bb",
                            meeting_id="m2")
    retention = app.settings.retention
    retention.policies = {"standard": RetentionPolicy(days=30), "board": RetentionPolicy(days=365)}
    retention.rules = [RetentionRule(policy="board", organizer=ORG)]

    dry = apply_policies(app, dry_run=True)
    assert [c.transcript_id for c in dry.later] == [row.id]
    assert [c.transcript_id for c in dry.refused_shorten] == [other.id]
    assert dry.applied == 0
    with app.session() as session:
        assert session.get(Transcript, row.id).retention_policy == "standard"  # type: ignore[union-attr]

    done = apply_policies(app)
    assert done.applied == 1
    with app.session() as session:
        moved = session.get(Transcript, row.id)
        kept = session.get(Transcript, other.id)
        assert moved is not None and kept is not None
        assert moved.retention_policy == "board"
        assert moved.retain_until == T0 - timedelta(days=90) + timedelta(days=365)
        assert kept.retain_until == T0  # not shortened silently
        changed = session.exec(select(AuditEntry).where(
            AuditEntry.action == "retention.changed")).all()
        assert [e.target_id for e in changed] == [row.id]

    shortened = apply_policies(app, allow_shorten=True)
    assert [c.transcript_id for c in shortened.earlier] == [other.id]
    with app.session() as session:
        assert session.get(Transcript, other.id).retain_until == T0 - timedelta(days=60)  # type: ignore[union-attr]
    assert apply_policies(app).unchanged == 2


def test_apply_leaves_group_assigned_policies_without_a_resolver(app: AppContext) -> None:
    row = make_transcript(app, policy="hr")
    retention = app.settings.retention
    retention.policies = {"standard": RetentionPolicy(days=90), "hr": RetentionPolicy(days=700)}
    retention.rules = [RetentionRule(policy="hr", group="gggggggg-0000-0000-0000-000000000001")]
    report = apply_policies(app, allow_shorten=True)
    assert report.unresolved_groups == 1 and report.applied == 0
    report = apply_policies(app, groups_of=lambda _org: ["gggggggg-0000-0000-0000-000000000001"])
    assert [c.transcript_id for c in report.later] == [row.id]
