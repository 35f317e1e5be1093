"""Figures generated, never copied: provenance per section, staleness, and the prose templates.

Every number the documentation quotes about speed, accuracy or memory comes from
`bench/results.json`, through templates that `bench/run --readme` fills:

- `bench/README.md.tmpl` becomes `bench/README.md` (all of it);
- `bench/figures-NAME.md.tmpl` fills the region `<!-- figures:NAME -->…<!-- /figures -->` of
  the repository's `README.md`.

Placeholders: `{{ section.figure }}` (value and unit), `{{ section.figure:FORMAT }}` (FORMAT one
of `FIGURE_FORMATS`), `{{ section:FORMAT }}` (`provenance` or `stale`) and `{{ table }}`;
`\\{{` is a literal `{{`.
A figure measured with other settings than today's defaults in `config/default.toml` renders
as "stale: measured with beam 1, default is 5 — rerun `bench/run --only X`", never as its
number; a best-of figure always carries the median and spread of its repeats (or says that
they were not recorded). Hand-written numbers in those files drift; these cannot.
"""

from __future__ import annotations

import os
import re
import statistics
import tomllib
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
CONFIG = REPO / "config" / "default.toml"
README = REPO / "README.md"
BENCH_README = BENCH_DIR / "README.md"
BENCH_TEMPLATE = BENCH_DIR / "README.md.tmpl"

# The defaults a figure can depend on. A module names those it runs with in `SETTINGS`
# (a list of these keys, or of section names meaning all of that section's keys).
TRACKED_SETTINGS: tuple[str, ...] = (
    "transcription.model", "transcription.beam_size", "transcription.batch_size",
    "transcription.chunk_seconds", "transcription.vad_filter",
    "transcription.condition_on_previous_text", "diarization.threshold",
)
# How the generated prose names a setting: "beam 5", "batch 8", "model tiny.en".
SETTING_WORDS = {
    "transcription.model": "model", "transcription.beam_size": "beam",
    "transcription.batch_size": "batch size", "transcription.chunk_seconds": "chunks of",
    "transcription.vad_filter": "VAD", "transcription.condition_on_previous_text":
        "conditioning on previous text", "diarization.threshold": "threshold",
}
FIGURE_FORMATS = ("value", "ratio", "baseline", "percent_over", "per_core_day", "provenance")
PLACEHOLDER = re.compile(
    r"(?<!\\)\{\{\s*(?P<section>[a-z0-9_]+)(?:\.(?P<figure>[a-z0-9_]+))?(?::(?P<fmt>[a-z_]+))?\s*\}\}")
REGION = re.compile(r"(<!-- figures:(?P<name>[a-z0-9_-]+) -->\n)(?P<body>.*?)(<!-- /figures -->)",
                    re.S)


class TemplateError(ValueError):
    """A template names a section that is no benchmark, or a format that does not exist."""


# -- settings and staleness ----------------------------------------------------------------

def current_defaults(config: Path = CONFIG) -> dict[str, Any]:
    """The tracked settings as `config/default.toml` sets them today."""
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    found: dict[str, Any] = {}
    for key in TRACKED_SETTINGS:
        table, name = key.split(".", 1)
        if name in data.get(table, {}):
            found[key] = data[table][name]
    return found


def expand_settings(declared: list[str] | tuple[str, ...]) -> list[str]:
    """`["transcription"]` → every tracked `transcription.*` key; keys stay as they are."""
    keys: list[str] = []
    for item in declared:
        matches = [k for k in TRACKED_SETTINGS if k == item or k.startswith(item + ".")]
        if not matches:
            raise ValueError(f"SETTINGS names {item!r}, which is not tracked; tracked: "
                             f"{', '.join(TRACKED_SETTINGS)} (add it to TRACKED_SETTINGS)")
        keys.extend(k for k in matches if k not in keys)
    return keys


def env_overrides() -> list[str]:
    """`MG_…` variables that would change a tracked setting (the runner removes them)."""
    names = {"MG_" + key.replace(".", "__").upper() for key in TRACKED_SETTINGS}
    return sorted(n for n in os.environ if n.upper() in names)


def settings_for(keys: list[str], config: Path = CONFIG) -> dict[str, Any]:
    """What a run that uses the defaults runs with, for these keys."""
    defaults = current_defaults(config)
    return {k: defaults.get(k) for k in keys}


def _value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if key == "transcription.chunk_seconds" and isinstance(value, int | float):
        return f"{value:g} s"
    return str(value)


def stale_reason(provenance: dict[str, Any] | None, defaults: dict[str, Any]) -> str | None:
    """"measured with beam 1, default is 5", or None when the settings match the defaults."""
    recorded = (provenance or {}).get("settings") or {}
    differing = [k for k, v in recorded.items() if k in defaults and defaults[k] != v]
    if not differing:
        return None
    if len(differing) == 1:
        key = differing[0]
        return (f"measured with {SETTING_WORDS.get(key, key)} {_value(key, recorded[key])}, "
                f"default is {_value(key, defaults[key])}")
    then = ", ".join(f"{SETTING_WORDS.get(k, k)} {_value(k, recorded[k])}" for k in differing)
    now = ", ".join(f"{SETTING_WORDS.get(k, k)} {_value(k, defaults[k])}" for k in differing)
    return f"measured with {then}; defaults are {now}"


def stale_text(section: str, reason: str) -> str:
    return f"stale: {reason} — rerun `bench/run --only {section}`"


# -- repeats -------------------------------------------------------------------------------

def _num(value: float, unit: str = "") -> str:
    """A figure's number as prose shows it: three significant digits, thousands spaced."""
    if unit == "fraction":
        return f"{value * 100:.1f} %"
    if abs(value) >= 1000:
        text = f"{value:,.0f}".replace(",", " ")
    elif abs(value) >= 100:
        text = f"{value:.0f}"
    elif abs(value) >= 1:
        text = f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    if not unit or unit in ("x", "cosine", "fraction"):
        return text
    return f"{text} {unit}"


def _ratio(value: float, unit: str = "") -> str:
    """Ratios near 1 need a fourth digit: 1.011 against a goal of 1.03."""
    return f"{value:.4g}"


def _spread(runs: list[float], unit: str, goal_max: float | None = None,
            of_ratio: bool = False) -> str:
    median = statistics.median(runs)
    what = "per-repeat ratios" if of_ratio else "per repeat"
    num = _ratio if of_ratio else _num
    text = (f"{what}: median {num(median, unit)}, range {num(min(runs))}–"
            f"{num(max(runs), unit)} over {len(runs)} repeats")
    if goal_max is not None:
        met = sum(1 for r in runs if r <= goal_max)
        text += f"; {met} of {len(runs)} within the goal ≤ {goal_max:g}"
    return text


def repeats_note(fig: dict[str, Any], *, of_ratio: bool = False) -> str:
    """Beside a best-of figure: the median and spread of every repeat, or that none were kept.
    Beside a median with its repeats: their spread. Otherwise nothing."""
    runs = fig.get("ratio_runs" if of_ratio else "runs")
    unit = "" if of_ratio else fig.get("unit", "")
    goal = (fig.get("goal") or {}).get("ratio_max") if of_ratio else None
    best = fig.get("stat") == "best"
    if runs:
        note = _spread(list(runs), unit, goal, of_ratio)
        if best:
            return f"fastest repeat; {note}"
        return f"ratio of the medians; {note}" if of_ratio else note
    if best:
        return "fastest of several repeats; repeats not recorded"
    return ""


# -- rendering -----------------------------------------------------------------------------

def _provenance_text(name: str, section: dict[str, Any], defaults: dict[str, Any]) -> str:
    prov = section.get("provenance") or {}
    machine = prov.get("machine") or {}
    date = str(prov.get("date", "?"))[:10]
    commit = prov.get("git_commit") or "?"
    dirty = prov.get("git_dirty")
    tree = (" with local changes" if dirty else "" if dirty is False
            else ", local changes not recorded")
    mode = "quick run" if prov.get("mode") == "quick" or section.get("quick") else "full run"
    text = (f"{mode} of {date} on {machine.get('cpu_model', '?')} "
            f"({machine.get('cpus_usable', '?')} usable CPUs), commit {commit}{tree}")
    if section.get("status", "ok") != "ok":
        text += f"; **{section.get('status')}**: {section.get('error', '')}"
    reason = stale_reason(prov, defaults)
    if reason:
        text += f"; **{stale_text(name, reason)}**"
    return text


def render_figure(name: str, key: str, fmt: str, results: dict[str, Any],
                  defaults: dict[str, Any]) -> str:
    """One placeholder's text: the figure, or why it cannot be quoted."""
    section = results.get("sections", {}).get(name)
    if section is None:
        return f"(not measured yet — run `bench/run --only {name}`)"
    if fmt == "provenance":
        return _provenance_text(name, section, defaults)
    fig = (section.get("figures") or {}).get(key)
    if section.get("status", "ok") != "ok" or fig is None:
        return f"(not in `results.json` — run `bench/run --only {name}`)"
    reason = stale_reason(fig.get("provenance") or section.get("provenance"), defaults)
    if reason:
        return f"({stale_text(name, reason)})"
    unit = fig.get("unit", "")
    value = fig.get("value")
    of_ratio = fmt in ("ratio", "percent_over")
    if fmt in ("", "value"):
        text = _num(value, unit)
    elif fmt == "baseline":
        return _num(fig["baseline"], unit) if fig.get("baseline") is not None else "(no baseline)"
    elif fmt == "ratio":
        text = f"{_ratio(fig['ratio'])}×"
    elif fmt == "percent_over":
        text = f"{(fig['ratio'] - 1) * 100:+.1f} %"
    elif fmt == "per_core_day":
        return f"{24 / value:,.0f}".replace(",", " ")
    else:
        raise TemplateError(f"unknown format {fmt!r} in {{{{ {name}.{key}:{fmt} }}}}; "
                            f"formats: {', '.join(FIGURE_FORMATS)}")
    note = repeats_note(fig, of_ratio=of_ratio)
    return f"{text} ({note})" if note else text


def render(template: str, results: dict[str, Any], defaults: dict[str, Any],
           known_sections: list[str], *, table: str = "") -> str:
    """Fill every placeholder; a section that is no benchmark is a template error. A notice
    repeated within one paragraph (stale, not measured) is spelled out once, then referred to."""

    def paragraph(text: str) -> str:
        seen: set[str] = set()

        def one(match: re.Match[str]) -> str:
            name, key, fmt = match["section"], match["figure"], match["fmt"] or ""
            if name == "table" and not key and not fmt:
                return table
            if name not in known_sections:
                raise TemplateError(f"{match[0]} names {name!r}, which is no benchmark; "
                                    f"benchmarks: {', '.join(known_sections)}")
            if key is None:
                return section_text(name, fmt, results, defaults)
            out = render_figure(name, key, fmt, results, defaults)
            notice = out.startswith("(stale:") or out.startswith("(not ")
            if notice and out in seen:
                return "(stale, as above)" if out.startswith("(stale:") else \
                    "(not measured, as above)"
            if notice:
                seen.add(out)
            return out

        return PLACEHOLDER.sub(one, text).replace("\\{{", "{{")

    return "\n\n".join(paragraph(p) for p in template.split("\n\n"))


def section_text(name: str, fmt: str, results: dict[str, Any], defaults: dict[str, Any]) -> str:
    """`{{ name:provenance }}` (where, when, from which commit, stale or not) or
    `{{ name:stale }}` (the stale notice, or nothing)."""
    if fmt not in ("provenance", "stale"):
        raise TemplateError(f"{{{{ {name}:{fmt} }}}}: a section takes :provenance or :stale")
    section = results.get("sections", {}).get(name)
    if fmt == "stale":
        reason = stale_reason((section or {}).get("provenance"), defaults)
        return f"**{stale_text(name, reason)}**" if reason else ""
    if section is None:
        return f"not measured yet — run `bench/run --only {name}`"
    return _provenance_text(name, section, defaults)


def fill_regions(text: str, templates: dict[str, str], fill: Any) -> str:
    """Replace the body of each `<!-- figures:NAME -->` region with its filled template."""
    missing = set(templates) - {m["name"] for m in REGION.finditer(text)}
    if missing:
        raise TemplateError(f"README.md lacks the region(s) {', '.join(sorted(missing))}: add "
                            "`<!-- figures:NAME -->` and `<!-- /figures -->` lines around it")

    def one(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in templates:
            raise TemplateError(f"README.md region {name!r} has no template "
                                f"bench/figures-{name}.md.tmpl")
        body = fill(templates[name]).rstrip("\n") + "\n"
        return match[1] + body + match[4]

    return REGION.sub(one, text)


def region_templates(bench_dir: Path = BENCH_DIR) -> dict[str, str]:
    return {p.name[len("figures-"):-len(".md.tmpl")]: p.read_text(encoding="utf-8")
            for p in sorted(bench_dir.glob("figures-*.md.tmpl"))}


def generate(results: dict[str, Any], known_sections: list[str], table: str, *,
             config: Path = CONFIG, bench_dir: Path = BENCH_DIR,
             readme: Path = README) -> dict[Path, str]:
    """The generated text of bench/README.md and README.md (not written)."""
    defaults = current_defaults(config)

    def fill(template: str) -> str:
        return render(template, results, defaults, known_sections, table=table)

    out = {bench_dir / "README.md": fill((bench_dir / "README.md.tmpl").read_text(
        encoding="utf-8"))}
    out[readme] = fill_regions(readme.read_text(encoding="utf-8"),
                               region_templates(bench_dir), fill)
    return out
