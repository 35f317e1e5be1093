#!/usr/bin/env python3
"""One-off: convert `bench/results.json` from format 1 to format 2 (provenance per section).

    python bench/_migrate_v1_to_v2.py [PATH]

Format 1 had one file-wide machine block, overwritten by whichever run came last (a standalone
run replaced the full run's), and no record of the settings a section ran with. Format 2 gives
every section a `provenance` (date, commit, dirty flag, mode, args, tracked settings, machine).
For the sections of a format-1 file that record is reconstructed, and says so (`migrated`):

- commit: the first-parent commit that was HEAD when the section was measured (`git log
  --until=measured_at`); the dirty flag was not recorded per section (null);
- settings: the tracked defaults of `config/default.toml` at that commit, for the keys the module
  declares today (`SETTINGS`), overridden by what the section's details record it ran with;
- machine: the file's one machine block (the same 2-core host measured every section of the
  committed file), without its date, commit and load average, which were another run's;
- repeats: where the details kept each repeat (pipeline, vault, gate_matching), the figures get
  `runs`/`ratio_runs`; pipeline figures are best-of (`stat: best`).

No figure is measured again or changed. Running it twice is refused (the file is format 2).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from common import REPO, RESULTS, RESULTS_FORMAT, declared_settings, save_results  # noqa: E402
from figures import TRACKED_SETTINGS  # noqa: E402

OLD_FORMAT = "meeting-governance-bench/1"
def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout.strip()


def commit_at(when: str) -> str:
    """The first-parent commit that was HEAD at `when` (ISO 8601)."""
    return _git("log", "--first-parent", "-1", f"--until={when}", "--format=%h", "HEAD")


def settings_at(commit: str, keys: list[str]) -> dict[str, Any]:
    data = tomllib.loads(_git("show", f"{commit}:config/default.toml"))
    found: dict[str, Any] = {}
    for key in keys:
        table, name = key.split(".", 1)
        found[key] = data.get(table, {}).get(name)
    return found


def provenance_at(when: str, keys: list[str], machine: dict[str, Any], section: dict[str, Any],
                  ) -> dict[str, Any]:
    commit = commit_at(when)
    return {"date": when, "git_commit": commit, "git_dirty": None,
            "mode": "quick" if section.get("quick") else "full", "args": section.get("args"),
            "settings": settings_at(commit, keys), "machine": machine,
            "migrated": "reconstructed from results format 1: commit = HEAD at the measurement "
                        "time, settings = config/default.toml at that commit, machine = the "
                        "file's one machine block; dirty flag not recorded"}


def _runs(fig: dict[str, Any], runs: list[float], ratio_runs: list[float] | None = None,
          stat: str = "median", goal: float | None = None) -> None:
    fig["stat"] = stat
    fig["runs"] = [round(r, 4) for r in runs]
    if ratio_runs:
        fig["ratio_runs"] = [round(r, 3) for r in ratio_runs]
    if goal is not None:
        fig["goal"] = {"ratio_max": goal}


def migrate_pipeline(section: dict[str, Any], machine: dict[str, Any]) -> None:
    d, figs = section["details"], section["figures"]
    keys = declared_settings(BENCH_DIR / "pipeline.py")
    for key, detail in (("transcription.beam_size", "beam_size"), ("transcription.model", "model"),
                        ("transcription.chunk_seconds", "chunk_seconds"),
                        ("transcription.vad_filter", "vad_filter")):
        if detail in d:
            section["provenance"]["settings"][key] = d[detail]
    bare, pipe, inside = d["bare_runs_s"], d["pipeline_runs_s"], d["transcriber_runs_s"]
    governed = [b + (p - i) for b, p, i in zip(bare, pipe, inside, strict=True)]
    _runs(figs["overhead"], pipe, [p / b for b, p in zip(bare, pipe, strict=True)], "best", 1.03)
    figs["overhead"]["notes"] = figs["overhead"]["notes"].split("; per-repeat ratios")[0]
    _runs(figs["overhead_cpu"], d["pipeline_cpu_s"],
          [p / b for b, p in zip(d["bare_cpu_s"], d["pipeline_cpu_s"], strict=True)], "best")
    _runs(figs["governance_overhead"], governed,
          [g / b for g, b in zip(governed, bare, strict=True)], "best", 1.03)
    _runs(figs["chunked_transcriber"], inside,
          [i / b for b, i in zip(bare, inside, strict=True)], "best")
    when = d.get("memory_measured_at")
    if when:  # memory figures carried over from an earlier run: that run's provenance
        prov = provenance_at(when, keys, machine, section)
        for key, fig in figs.items():
            if key.startswith("memory_"):
                fig["provenance"] = prov


def migrate_vault(section: dict[str, Any]) -> None:
    runs, figs = section["details"]["runs_s"], section["figures"]
    pairs = {"store": ("vault_store", "raw_store"), "read": ("vault_read", "raw_read"),
             "crypto_only": ("vault_crypto", "raw_crypto")}
    for key, (ours, raw) in pairs.items():
        _runs(figs[key], runs[ours], [o / r for o, r in zip(runs[ours], runs[raw], strict=True)])
    both = [s + r for s, r in zip(runs["vault_store"], runs["vault_read"], strict=True)]
    raw_both = [s + r for s, r in zip(runs["raw_store"], runs["raw_read"], strict=True)]
    assert abs(statistics.median(both) - figs["store_and_read"]["value"]) < 0.01
    _runs(figs["store_and_read"], both, [o / r for o, r in zip(both, raw_both, strict=True)])


def migrate_gate(section: dict[str, Any]) -> None:
    for engine in section["details"]["engines"]:
        key = {"sqlite": "sqlite_matching_ms", "postgresql": "postgres_matching_ms"}[
            engine["engine"]]
        fig = section["figures"][key]
        ours, scan = engine["matching_ms_runs"], engine["full_scan_ms_runs"]
        _runs(fig, ours, [o / s for o, s in zip(ours, scan, strict=True)])


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("format") != OLD_FORMAT:
        raise SystemExit(f"not a format-1 results file (format {data.get('format')!r}): "
                         "nothing to migrate")
    machine = {k: v for k, v in (data.get("machine") or {}).items()
               if k not in ("date", "git_commit", "git_dirty", "load_average_1m")}
    sections: dict[str, Any] = {}
    for name, section in data["sections"].items():
        section = dict(section)
        when = section["measured_at"]
        path = BENCH_DIR / f"{name}.py"
        keys = declared_settings(path) if path.is_file() else []
        section.setdefault("quick", False)
        section["provenance"] = provenance_at(when, keys, machine, section)
        if name == "pipeline":
            migrate_pipeline(section, machine)
        elif name == "vault":
            migrate_vault(section)
        elif name == "gate_matching":
            migrate_gate(section)
        assert set(section["provenance"]["settings"]) <= set(TRACKED_SETTINGS)
        sections[name] = section
    return {"format": RESULTS_FORMAT, "sections": sections}


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0]) if args else RESULTS
    data = json.loads(path.read_text(encoding="utf-8"))
    save_results(migrate(data), path)
    print(f"converted {path} to {RESULTS_FORMAT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
