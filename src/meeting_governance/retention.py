"""Retention policies: which policy a transcript gets, and re-applying them after a change.

`assign` is a pure function of the `[retention]` settings and a meeting's facts, so the
pipeline, `retention apply` and the tests agree by construction. `apply_policies` re-evaluates
stored transcripts; it never shortens a period unless asked (`allow_shorten`), because a
shorter period brings a purge forward and a purge cannot be undone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import col, select

from meeting_governance.config import RetentionRule, RetentionSettings
from meeting_governance.context import AppContext
from meeting_governance.errors import ConfigError
from meeting_governance.identity import normalise_email, normalise_object_id
from meeting_governance.models import Transcript


@dataclass(frozen=True)
class Assignment:
    """The policy a transcript falls under and the instant it becomes due for purge."""

    policy: str
    retain_until: datetime


def _same_organizer(rule_value: str, organizer_id: str) -> bool:
    # Rules may name an organiser by object id or UPN; both compare normalised.
    if "@" in rule_value:
        return normalise_email(rule_value) == normalise_email(organizer_id)
    return normalise_object_id(rule_value) == normalise_object_id(organizer_id)


def rule_matches(rule: RetentionRule, *, organizer_id: str, groups: Iterable[str]) -> bool:
    """Every criterion the rule names must hold; a rule naming none is a catch-all."""
    if rule.organizer and not _same_organizer(rule.organizer, organizer_id):
        return False
    if rule.group:
        wanted = normalise_object_id(rule.group)
        if wanted not in {normalise_object_id(g) for g in groups}:
            return False
    return True


def assign(retention: RetentionSettings, *, organizer_id: str, groups: Iterable[str] = (),
           meeting_end: datetime) -> Assignment:
    """First matching rule wins, else the default policy; `retain_until` = end + days."""
    if meeting_end.tzinfo is None:
        raise ValueError("meeting_end must be an aware datetime")
    groups = tuple(groups)
    name = retention.default_policy
    for rule in retention.rules:
        if rule_matches(rule, organizer_id=organizer_id, groups=groups):
            name = rule.policy
            break
    policy = retention.policies.get(name)
    if policy is None:
        raise ConfigError(f"retention policy {name!r} is not defined; "
                          f"allowed: {', '.join(sorted(retention.policies))}")
    return Assignment(policy=name, retain_until=meeting_end + timedelta(days=policy.days))


# -- retention apply ------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """One transcript whose policy or due date differs under the current configuration."""

    transcript_id: str
    old_policy: str
    new_policy: str
    old_retain_until: datetime | None
    new_retain_until: datetime

    @property
    def direction(self) -> str:
        if self.old_retain_until is None or self.new_retain_until > self.old_retain_until:
            return "later"
        if self.new_retain_until < self.old_retain_until:
            return "earlier"
        return "relabelled"


@dataclass
class ApplyReport:
    """What `retention apply` found and (unless a dry run) changed."""

    dry_run: bool
    allow_shorten: bool
    examined: int = 0
    unchanged: int = 0
    later: list[Change] = field(default_factory=list)
    earlier: list[Change] = field(default_factory=list)
    relabelled: list[Change] = field(default_factory=list)
    refused_shorten: list[Change] = field(default_factory=list)
    unresolved_groups: int = 0

    @property
    def applied(self) -> int:
        if self.dry_run:
            return 0
        return len(self.later) + len(self.earlier) + len(self.relabelled)


GroupResolver = Callable[[str], Sequence[str]]


def _anchor(row: Transcript) -> datetime:
    """The instant retention counts from: the meeting's end, else its start, else storage."""
    return row.meeting_end or row.meeting_start or row.created_at


def apply_policies(app: AppContext, *, dry_run: bool = False, allow_shorten: bool = False,
                   groups_of: GroupResolver | None = None, batch_size: int = 500) -> ApplyReport:
    """Re-evaluate every unpurged transcript against the configured policies.

    Without `groups_of` the organiser's groups are unknown: a transcript whose current policy a
    group rule could have chosen is left alone (counted as `unresolved_groups`) rather than moved
    to a policy picked on incomplete facts. Each batch is one transaction, each change audited.
    """
    retention = app.settings.retention
    group_policies = {r.policy for r in retention.rules if r.group}
    report = ApplyReport(dry_run=dry_run, allow_shorten=allow_shorten)
    last_id = ""
    while True:
        with app.session() as session:
            rows = session.exec(
                select(Transcript).where(col(Transcript.purged_at).is_(None),
                                         col(Transcript.id) > last_id)
                .order_by(col(Transcript.id)).limit(batch_size)
            ).all()
            if not rows:
                break
            last_id = rows[-1].id
            for row in rows:
                report.examined += 1
                if groups_of is None and group_policies and row.retention_policy in group_policies:
                    report.unresolved_groups += 1
                    continue
                groups = groups_of(row.organizer_id) if groups_of else ()
                new = assign(retention, organizer_id=row.organizer_id, groups=groups,
                             meeting_end=_anchor(row))
                if new.policy == row.retention_policy and new.retain_until == row.retain_until:
                    report.unchanged += 1
                    continue
                change = Change(row.id, row.retention_policy, new.policy, row.retain_until,
                                new.retain_until)
                if change.direction == "earlier" and not allow_shorten:
                    report.refused_shorten.append(change)
                    continue
                getattr(report, change.direction).append(change)
                if dry_run:
                    continue
                row.retention_policy = new.policy
                row.retain_until = new.retain_until
                row.updated_at = app.clock.now()
                session.add(row)
                app.audit(session, "retention.changed", target_type="transcript",
                          target_id=row.id, old_policy=change.old_policy,
                          new_policy=change.new_policy,
                          old_retain_until=(change.old_retain_until.isoformat()
                                            if change.old_retain_until else None),
                          new_retain_until=change.new_retain_until.isoformat(),
                          direction=change.direction)
    if not dry_run:
        with app.session() as session:
            app.audit(session, "retention.apply", target_type="retention",
                      examined=report.examined, later=len(report.later),
                      earlier=len(report.earlier), relabelled=len(report.relabelled),
                      refused_shorten=len(report.refused_shorten),
                      unresolved_groups=report.unresolved_groups, allow_shorten=allow_shorten)
    return report
