"""The pure policy assignment: rules by organiser or group, first match wins, else default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.config import RetentionPolicy, RetentionRule, RetentionSettings
from meeting_governance.errors import ConfigError
from meeting_governance.retention import assign

END = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
ORG = "aaaaaaaa-0000-0000-0000-000000000001"
GROUP = "bbbbbbbb-0000-0000-0000-000000000002"


def settings(*rules: RetentionRule) -> RetentionSettings:
    return RetentionSettings(
        default_policy="standard",
        policies={"standard": RetentionPolicy(days=90), "board": RetentionPolicy(days=365),
                  "short": RetentionPolicy(days=7), "hr": RetentionPolicy(days=730)},
        rules=list(rules))


def test_default_policy_when_no_rule_matches() -> None:
    a = assign(settings(RetentionRule(policy="board", organizer=ORG)),
               organizer_id="cccccccc-0000-0000-0000-000000000003", meeting_end=END)
    assert a.policy == "standard"
    assert a.retain_until == END + timedelta(days=90)


def test_rule_by_organizer_and_by_group_first_match_wins() -> None:
    cfg = settings(RetentionRule(policy="short", group=GROUP),
                   RetentionRule(policy="board", organizer=ORG.upper()))
    assert assign(cfg, organizer_id=ORG, meeting_end=END).policy == "board"
    assert assign(cfg, organizer_id=ORG, groups=[GROUP], meeting_end=END).policy == "short"


def test_rule_by_upn_is_case_insensitive() -> None:
    cfg = settings(RetentionRule(policy="hr", organizer="HR.Lead@Example.org"))
    assert assign(cfg, organizer_id="hr.lead@example.org", meeting_end=END).policy == "hr"


def test_rule_with_both_criteria_needs_both() -> None:
    cfg = settings(RetentionRule(policy="board", organizer=ORG, group=GROUP))
    assert assign(cfg, organizer_id=ORG, meeting_end=END).policy == "standard"
    assert assign(cfg, organizer_id=ORG, groups=[GROUP], meeting_end=END).policy == "board"


def test_naive_end_is_refused_and_unknown_policy_is_config_error() -> None:
    with pytest.raises(ValueError):
        assign(settings(), organizer_id=ORG, meeting_end=END.replace(tzinfo=None))
    broken = RetentionSettings.model_construct(default_policy="gone",
                                               policies={"standard": RetentionPolicy(days=1)},
                                               rules=[])
    with pytest.raises(ConfigError):
        assign(broken, organizer_id=ORG, meeting_end=END)


@given(days=st.integers(min_value=0, max_value=3650),
       end=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                        timezones=st.just(UTC)),
       in_group=st.booleans())
def test_retain_until_is_end_plus_the_chosen_policy_days(days: int, end: datetime,
                                                         in_group: bool) -> None:
    cfg = RetentionSettings(default_policy="d",
                            policies={"d": RetentionPolicy(days=days),
                                      "g": RetentionPolicy(days=days + 1)},
                            rules=[RetentionRule(policy="g", group=GROUP)])
    got = assign(cfg, organizer_id=ORG, groups=[GROUP] if in_group else [], meeting_end=end)
    assert got.policy == ("g" if in_group else "d")
    assert got.retain_until - end == timedelta(days=days + (1 if in_group else 0))
