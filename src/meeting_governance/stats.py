"""Anonymised statistics: counts and durations by month, no identities, small cells suppressed.

Each figure is counted in the month its event happened, from columns that survive the purge
(a tombstone keeps `created_at`, `duration_s` and `purged_at`; a recording keeps
`first_seen_at` and its state), so purging never rewrites past months:

- seen: distinct meetings whose recordings were first seen that month
- transcribed / audio hours: transcripts stored that month
- blocked: recordings blocked that month (`updated_at` of a blocked row), by reason category
- purged: transcripts purged that month (retention and erasure alike)

Any count from 1 to `min_cell - 1` is suppressed (None, shown as "<5"), and audio hours are
suppressed with the transcript count they come from. There is no totals row or column on
purpose: a total next to a suppressed cell would give the cell away by subtraction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from sqlmodel import select

from meeting_governance.context import AppContext
from meeting_governance.gate import REASON_OPTED_OUT, REASON_UNKNOWN
from meeting_governance.models import Recording, Transcript

Cell = int | None  # None: suppressed (between 1 and min_cell - 1)
COUNTS = ("seen", "transcribed", "blocked_opted_out", "blocked_unknown", "blocked_other",
          "purged")
LABELS = {"seen": "Meetings seen", "transcribed": "Transcribed",
          "blocked_opted_out": "Blocked: opted out",
          "blocked_unknown": "Blocked: participants unknown", "blocked_other": "Blocked: other",
          "purged": "Purged"}


@dataclass(frozen=True, kw_only=True)
class StatRow:
    """One month's figures, already suppressed: nothing here can single out a person."""

    month: str  # YYYY-MM
    seen: Cell
    transcribed: Cell
    blocked_opted_out: Cell
    blocked_unknown: Cell
    blocked_other: Cell
    purged: Cell
    audio_hours: float | None
    min_cell: int

    def shown(self, value: Cell | float) -> str:
        """A cell as people read it: the number, or "<5" when suppressed."""
        if value is None:
            return f"<{self.min_cell}"
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    def as_dict(self) -> dict[str, int | float | str]:
        """For JSON: numbers, with suppressed cells as the string "<5"."""
        data: dict[str, int | float | str] = {"month": self.month}
        for name in (*COUNTS, "audio_hours"):
            value = getattr(self, name)
            data[name] = f"<{self.min_cell}" if value is None else value
        return data


def blocked_category(reason: str) -> str:
    """The gate's reason, reduced to a category that names nobody."""
    if reason.startswith(REASON_OPTED_OUT):
        return "blocked_opted_out"
    if reason.startswith(REASON_UNKNOWN):
        return "blocked_unknown"
    return "blocked_other"


def suppress(count: int, min_cell: int) -> Cell:
    return None if 0 < count < min_cell else count


def _month(at: datetime | None) -> str | None:
    return at.strftime("%Y-%m") if at else None


def statistics(app: AppContext, *, min_cell: int | None = None) -> list[StatRow]:
    """Every month with any activity, oldest first (only a few small columns are read)."""
    threshold = max(1, min_cell if min_cell is not None else app.settings.stats.min_cell)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    seconds: dict[str, float] = defaultdict(float)
    meetings: dict[str, set[str]] = defaultdict(set)
    with app.session() as session:
        for meeting_id, first_seen in session.exec(select(
                Recording.meeting_id, Recording.first_seen_at)).all():
            seen = _month(first_seen)
            if seen:
                meetings[seen].add(meeting_id)
        for reason, updated in session.exec(select(Recording.reason, Recording.updated_at)
                                            .where(Recording.state == "blocked")).all():
            blocked = _month(updated)
            if blocked:
                counts[blocked][blocked_category(reason or "")] += 1
        for created, purged, duration in session.exec(select(
                Transcript.created_at, Transcript.purged_at, Transcript.duration_s)).all():
            made = _month(created)
            if made:
                counts[made]["transcribed"] += 1
                seconds[made] += duration or 0.0
            gone = _month(purged)
            if gone:
                counts[gone]["purged"] += 1
    for month, ids in meetings.items():
        counts[month]["seen"] = len(ids)
    rows = []
    for month in sorted(counts):
        cell = {name: suppress(n, threshold) for name, n in counts[month].items()}
        rows.append(StatRow(
            month=month, min_cell=threshold, seen=cell["seen"], transcribed=cell["transcribed"],
            blocked_opted_out=cell["blocked_opted_out"], blocked_unknown=cell["blocked_unknown"],
            blocked_other=cell["blocked_other"], purged=cell["purged"],
            audio_hours=(None if cell["transcribed"] is None
                         else round(seconds[month] / 3600, 1))))
    return rows


# -- the chart -----------------------------------------------------------------------------
COLOURS = {"seen": "#4e79a7", "transcribed": "#59a14f", "blocked_opted_out": "#e15759",
           "blocked_unknown": "#f28e2b", "blocked_other": "#b07aa1", "purged": "#76716e"}


def svg_chart(rows: Sequence[StatRow], *, title: str = "Meetings by month") -> str:
    """A grouped bar chart as a standalone SVG (server-side, no script), with a title, a
    description that states every figure in words, value labels and a legend, so a screen
    reader and a printout carry the same information as the picture. Suppressed cells are drawn
    as a short dashed outline labelled "<5"."""
    series = COUNTS
    bar, gap, pad_left, pad_top, height = 12, 18, 48, 40, 220
    group = bar * len(series) + gap
    # Wide enough for the bars and for the legend (three columns of 170 px) below them.
    width = max(pad_left + max(1, len(rows)) * group + 20, pad_left + 3 * 170 + 10)
    legend_y = pad_top + height + 40
    total_h = legend_y + 22 * ((len(series) + 2) // 3) + 10
    peak = max([getattr(r, s) or 0 for r in rows for s in series] + [rows[0].min_cell if rows
                                                                        else 1])
    scale = height / peak
    words = "; ".join(
        f"{r.month}: " + ", ".join(f"{LABELS[s].lower()} {r.shown(getattr(r, s))}"
                                   for s in series) for r in rows) or "no data yet"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_h}" '
           f'viewBox="0 0 {width} {total_h}" role="img" aria-labelledby="mg-chart-title '
           f'mg-chart-desc" font-family="sans-serif" font-size="10">',
           f'<title id="mg-chart-title">{escape(title)}</title>',
           f'<desc id="mg-chart-desc">{escape(words)}. Counts below '
           f'{rows[0].min_cell if rows else 5} are suppressed.</desc>',
           f'<text x="{pad_left - 4}" y="22" font-size="14" font-weight="bold">'
           f'{escape(title)}</text>',
           f'<line x1="{pad_left - 4}" y1="{pad_top + height}" x2="{width - 10}" '
           f'y2="{pad_top + height}" stroke="#333"/>']
    if not rows:
        out.append(f'<text x="{pad_left}" y="{pad_top + height / 2}">No data yet</text>')
    for i, row in enumerate(rows):
        x0 = pad_left + i * group
        for j, name in enumerate(series):
            value = getattr(row, name)
            x = x0 + j * bar
            label = f"{LABELS[name]}, {row.month}: {row.shown(value)}"
            if value is None:
                h = row.min_cell * scale / 2
                out.append(f'<rect x="{x}" y="{pad_top + height - h:.1f}" width="{bar - 2}" '
                           f'height="{h:.1f}" fill="none" stroke="{COLOURS[name]}" '
                           f'stroke-dasharray="2,2"><title>{escape(label)}</title></rect>')
            else:
                h = value * scale
                out.append(f'<rect x="{x}" y="{pad_top + height - h:.1f}" width="{bar - 2}" '
                           f'height="{h:.1f}" fill="{COLOURS[name]}">'
                           f'<title>{escape(label)}</title></rect>')
            out.append(f'<text x="{x + (bar - 2) / 2:.1f}" y="{pad_top + height - h - 3:.1f}" '
                       f'text-anchor="middle" font-size="8">{escape(row.shown(value))}</text>')
        out.append(f'<text x="{x0 + (group - gap) / 2:.1f}" y="{pad_top + height + 16}" '
                   f'text-anchor="middle">{escape(row.month)}</text>')
    for k, name in enumerate(series):
        lx = pad_left + (k % 3) * 170
        ly = legend_y + 22 * (k // 3)
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{COLOURS[name]}"/>'
                   f'<text x="{lx + 14}" y="{ly}">{escape(LABELS[name])}</text>')
    out.append("</svg>")
    return "\n".join(out)


__all__ = ["COUNTS", "LABELS", "StatRow", "blocked_category", "statistics", "suppress",
           "svg_chart"]
