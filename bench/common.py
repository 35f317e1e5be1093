"""What every benchmark shares: timing, peak memory, the machine, and `results.json`.

A benchmark module is a script `bench/NAME.py` with a `main()`. It measures its figures and
their baselines side by side in one run, then calls `emit(section, figures, details)`, which
prints one JSON document on stdout (what `bench/run` collects) and, when the module runs on its
own, also merges the section into `bench/results.json`.

A figure is `figure(value, unit, baseline=..., notes=...)`: `ratio` is value / baseline, so for a
time a ratio above 1 means slower than the baseline. A figure taken over repeats keeps them
(`runs=`, `ratio_runs=`, `stat="best"|"median"`), so the documentation can show the median and
spread beside a best-of figure. Every section records its provenance (commit, dirty flag, the
tracked settings it ran with, the machine, the date) when that section runs: a standalone run
changes only its own section. Never print personal data or transcript text: only numbers.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results.json"
RESULTS_FORMAT = "meeting-governance-bench/2"
# Set by bench/run for its children: they print their JSON and leave results.json to it.
RUNNER_ENV = "BENCH_RUNNER"
QUICK_ENV = "BENCH_QUICK"
PACKAGES = ("meeting-governance", "cryptography", "sqlalchemy", "sqlmodel", "alembic", "psycopg",
            "faster-whisper", "ctranslate2", "numpy", "pywhispercpp")


# -- figures -------------------------------------------------------------------------------

def figure(value: float, unit: str, *, baseline: float | None = None, notes: str = "",
           digits: int = 4, runs: list[float] | None = None,
           ratio_runs: list[float] | None = None, stat: str | None = None,
           goal_ratio_max: float | None = None) -> dict[str, Any]:
    """One measured figure; `ratio` = value / baseline when there is a baseline.

    `runs` (the value of each repeat) and `ratio_runs` (each repeat's ratio) let the prose show
    the median and spread beside a best-of figure (`stat="best"`); `goal_ratio_max` lets it
    count the repeats that met the goal."""
    ratio = None
    if baseline is not None and baseline != 0:
        ratio = round(value / baseline, 3)
    fig: dict[str, Any] = {"value": round(value, digits), "unit": unit,
                           "baseline": None if baseline is None else round(baseline, digits),
                           "ratio": ratio, "notes": notes}
    if stat:
        fig["stat"] = stat
    if runs:
        fig["runs"] = [round(r, digits) for r in runs]
    if ratio_runs:
        fig["ratio_runs"] = [round(r, 3) for r in ratio_runs]
    if goal_ratio_max is not None:
        fig["goal"] = {"ratio_max": goal_ratio_max}
    return fig


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each run and their median."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the runs were."""
        return (max(self.runs) - min(self.runs)) / self.median if self.median else 0.0


def time_once(fn: Callable[[], object]) -> float:
    """Seconds one call takes (garbage collected first, so earlier runs do not bill it)."""
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1,
                setup: Callable[[], object] | None = None) -> Timing:
    """Time `fn` `repeats` times after `warmup` untimed calls; `setup` runs untimed before each."""
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    runs = []
    for _ in range(repeats):
        if setup:
            setup()
        runs.append(time_once(fn))
    return Timing(tuple(runs))


def interleaved(cases: dict[str, Callable[[], object]], *, repeats: int = 3,
                setup: Callable[[str], object] | None = None) -> dict[str, Timing]:
    """Time several cases in turns (A B A B …) so drift on a shared machine hits each alike."""
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            if setup:
                setup(name)
            runs[name].append(time_once(fn))
    return {name: Timing(tuple(values)) for name, values in runs.items()}


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size of this process (or of its largest waited-for child), in MiB."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


# -- the machine ---------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# What a benchmark run itself rewrites: a second section run after a first is not "dirty".
GENERATED = ("bench/results.json", "bench/README.md", "README.md")


def _dirty() -> bool | None:
    """Local changes to tracked files other than the generated ones; None outside a git work
    tree (not recorded rather than claimed clean)."""
    if _git("rev-parse", "--is-inside-work-tree") != "true":
        return None
    return bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".",
                     *(f":(exclude){path}" for path in GENERATED)))


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def machine_info() -> dict[str, Any]:
    """Where and when the figures were measured: compare only figures from the same machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    mem_total = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_total = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "memory": mem_total,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": package_versions(),
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": _dirty(),
    }


def provenance(settings: dict[str, Any], *, quick: bool, args: list[str] | None = None
               ) -> dict[str, Any]:
    """Where, when, from which code and with which settings one section was measured."""
    machine = machine_info()
    return {"date": machine.pop("date"), "git_commit": machine.pop("git_commit"),
            "git_dirty": machine.pop("git_dirty"), "mode": "quick" if quick else "full",
            "args": list(args or sys.argv[1:]), "settings": settings, "machine": machine}


def declared_settings(path: Path) -> list[str]:
    """The tracked settings a module runs with (its top-level `SETTINGS = [...]`), expanded."""
    import ast

    from figures import expand_settings

    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "SETTINGS" for t in node.targets):
            return expand_settings(list(ast.literal_eval(node.value)))
    return []


# -- results.json --------------------------------------------------------------------------

def load_results(path: Path = RESULTS) -> dict[str, Any]:
    """The current results file, or an empty one. A file of another format is refused rather
    than silently replaced (it holds figures nobody can cheaply measure again)."""
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc}): restore it from git") from exc
        if isinstance(data, dict) and data.get("format") == RESULTS_FORMAT:
            return data
        raise ValueError(f"{path} has format {data.get('format') if isinstance(data, dict) else '?'!r}, "
                         f"not {RESULTS_FORMAT!r}: convert it with bench/_migrate_v1_to_v2.py")
    return {"format": RESULTS_FORMAT, "sections": {}}


def save_results(data: dict[str, Any], path: Path = RESULTS) -> None:
    """Write atomically (a crash never leaves half a file). No file-wide machine block: each
    section carries its own provenance."""
    ordered = {"format": RESULTS_FORMAT,
               "sections": dict(sorted(data.get("sections", {}).items()))}
    ordered.update({k: v for k, v in data.items()
                    if k not in ordered and k not in ("machine", "mode")})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ordered, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_results(section: str, figures: dict[str, dict[str, Any]], *,
                  details: dict[str, Any] | None = None, path: Path = RESULTS,
                  quick: bool = False, settings: dict[str, Any] | None = None,
                  **extra: Any) -> None:
    """Merge one section into `results.json` with its provenance, leaving the other sections
    (and their provenance) as they are."""
    from figures import settings_for

    data = load_results(path)
    if settings is None:
        settings = settings_for(declared_settings(BENCH_DIR / f"{section}.py")) \
            if (BENCH_DIR / f"{section}.py").is_file() else {}
    prov = provenance(settings, quick=quick)
    data["sections"][section] = {"status": "ok", "quick": quick, "measured_at": prov["date"],
                                 "provenance": prov, "figures": figures,
                                 "details": details or {}, **extra}
    save_results(data, path)


def quick_mode(argv_quick: bool = False) -> bool:
    """`--quick` on the module's command line, or `bench/run --quick` above it."""
    return argv_quick or os.environ.get(QUICK_ENV) == "1"


def emit(section: str, figures: dict[str, dict[str, Any]], details: dict[str, Any] | None = None,
         *, quick: bool = False) -> None:
    """Print the section as JSON on stdout; on its own (not under bench/run) also save it."""
    document = {"section": section, "quick": quick, "figures": figures, "details": details or {}}
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    if os.environ.get(RUNNER_ENV) != "1":
        from figures import env_overrides

        overrides = env_overrides()
        if overrides:
            print(f"not merged into {RESULTS}: {', '.join(overrides)} changed a default the "
                  "figures are quoted for; unset it, or run under bench/run", file=sys.stderr)
            return
        write_results(section, figures, details=details, quick=quick)
        print(f"merged section {section!r} into {RESULTS}", file=sys.stderr)


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout stays one JSON document."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
