"""Statistics: counts by month, no identities, small cells suppressed; the SVG chart."""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from meeting_governance.context import AppContext
from meeting_governance.models import Recording, Transcript
from meeting_governance.stats import StatRow, blocked_category, statistics, svg_chart

JAN = datetime(2026, 1, 15, 10, tzinfo=UTC)
FEB = datetime(2026, 2, 10, 10, tzinfo=UTC)


def _recording(app: AppContext, at: datetime, *, state: str = "stored", reason: str = "",
               meeting: str | None = None) -> None:
    with app.session() as session:
        session.add(Recording(graph_recording_id=uuid.uuid4().hex,
                              meeting_id=meeting or f"secret-meeting-{uuid.uuid4().hex}",
                              organizer_id="00000000-0000-0000-0000-0000000000aa", state=state,
                              reason=reason, first_seen_at=at, updated_at=at))


def _transcript(app: AppContext, created: datetime, *, purged: datetime | None = None,
                duration_s: float = 3600.0) -> None:
    with app.session() as session:
        session.add(Transcript(id=uuid.uuid4().hex, created_at=created, updated_at=created,
                               duration_s=duration_s, purged_at=purged,
                               purge_reason="retention" if purged else ""))


def _seed(app: AppContext) -> None:
    for _ in range(6):
        _recording(app, JAN)
    _recording(app, JAN, meeting="same-meeting")
    _recording(app, JAN, meeting="same-meeting")  # two recordings, one meeting
    for _ in range(5):
        _recording(app, JAN, state="blocked", reason="opted out (1 opt-out)")
    _recording(app, JAN, state="blocked", reason="participants unknown: no attendance report yet")
    for _ in range(7):
        _transcript(app, JAN, purged=FEB, duration_s=1800.0)
    _recording(app, FEB)
    _transcript(app, FEB, duration_s=7200.0)


def test_counts_by_month_with_small_cells_suppressed(app: AppContext) -> None:
    _seed(app)
    rows = statistics(app, min_cell=5)
    assert [r.month for r in rows] == ["2026-01", "2026-02"]
    jan, feb = rows
    assert jan.seen == 13 and jan.transcribed == 7 and jan.audio_hours == 3.5
    assert jan.blocked_opted_out == 5
    assert jan.blocked_unknown is None  # 1 < 5: suppressed
    assert jan.blocked_other == 0  # zero is not suppressed
    assert jan.purged == 0
    assert feb.seen is None and feb.transcribed is None and feb.audio_hours is None
    assert feb.purged == 7
    data = [r.as_dict() for r in rows]
    assert data[0]["blocked_unknown"] == "<5" and data[1]["audio_hours"] == "<5"
    assert "secret-meeting" not in json.dumps(data)
    everything = statistics(app, min_cell=1)
    assert everything[1].seen == 1 and everything[1].audio_hours == 2.0
    assert statistics(app)[0].min_cell == app.settings.stats.min_cell


def test_blocked_categories() -> None:
    assert blocked_category("opted out (2 opt-outs)") == "blocked_opted_out"
    assert blocked_category("participants unknown: no participants known") == "blocked_unknown"
    assert blocked_category("media too large") == "blocked_other"


def test_svg_chart_is_accessible_and_escaped() -> None:
    rows = [StatRow(month="2026-01", seen=12, transcribed=None, blocked_opted_out=5,
                    blocked_unknown=0, blocked_other=0, purged=7, audio_hours=None, min_cell=5),
            StatRow(month="2026-02", seen=30, transcribed=20, blocked_opted_out=None,
                    blocked_unknown=None, blocked_other=0, purged=0, audio_hours=9.5,
                    min_cell=5)]
    svg = svg_chart(rows, title="Meetings <by> month")
    root = ET.fromstring(svg)  # well-formed, so the title's "<" was escaped
    ns = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img"
    assert root.find(f"{ns}title").text == "Meetings <by> month"  # type: ignore[union-attr]
    desc = root.find(f"{ns}desc").text or ""  # type: ignore[union-attr]
    assert "2026-01: meetings seen 12, transcribed <5" in desc
    labels = [t.text for t in root.iter(f"{ns}text")]
    assert {"2026-01", "2026-02", "Meetings seen", "Purged", "<5", "30"} <= set(labels)
    assert "<script" not in svg
    empty = ET.fromstring(svg_chart([]))
    assert any(t.text == "No data yet" for t in empty.iter(f"{ns}text"))
