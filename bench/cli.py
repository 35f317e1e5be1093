#!/usr/bin/env python3
"""How fast the CLI answers: `--help`, `optout list`, `recordings list`, `stats` and every other
command that only reads, each as a user runs it (a fresh `python -m meeting_governance` process
on an initialised, empty MG_HOME), side by side with `python -c pass` in the same run.

    bench/cli.py [--repeats N] [--quick]

For each command: the median wall-clock seconds and CPU seconds (user + system, of the child)
over N runs, interleaved with the baseline so that a busy machine slows both alike; `ratio` is
command / `python -c pass`. The target (issue 17) is under 0.5 s for commands that need no
model: `--help` loads typer and rich only, the others add the configuration, the database and
the keyring, never numpy, PyAV or faster-whisper. `libraries` imports the third-party stack the
database commands stand on (typer, rich, pydantic-settings, SQLAlchemy's ORM, SQLModel) and
nothing of ours, in a plain interpreter: the commands tune the garbage collector
(`cliutil.quick_start`/`quick_exit`) and this line does not, so it shows what that saves as
much as what the stack costs. Prints numbers only.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, emit, figure, progress, quick_mode

QUICK_ARGS = ["--quick"]
FULL_ARGS: list[str] = []
QUICK_TIMEOUT_S = 300
TIMEOUT_S = 900

LIBRARIES = "import typer, rich.table, pydantic_settings, sqlalchemy.orm, sqlmodel"
"""What a command that opens the database stands on before any code of ours runs: the CLI
framework, the configuration's validation and the ORM, imported by a plain interpreter."""

COMMANDS: dict[str, list[str]] = {
    "help": ["--help"],
    "optout_list": ["optout", "list"],
    "recordings_list": ["recordings", "list"],
    "stats": ["stats"],
    # every other command that only reads, so that the goal is held for all, not three
    "transcript_list": ["transcript", "list"],
    "hold_list": ["hold", "list"],
    "dsr_list": ["dsr", "list"],
    "users_list": ["users", "list"],
    "audit_list": ["audit", "list"],
    "audit_verify": ["audit", "verify"],
    "keys_status": ["keys", "status"],
    "retention_policies": ["retention", "policies"],
}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    env.update(MG_HOME=str(home), HF_HUB_OFFLINE="1", COLUMNS="120",
               PYTHONPATH=str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one child process."""
    import time

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, timeout=120)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[1:])} failed ({done.returncode}): "
                         f"{done.stderr.decode(errors='replace')[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    quick = quick_mode(args.quick)
    repeats = args.repeats or (3 if quick else 9)
    cli = [sys.executable, "-m", "meeting_governance"]
    with tempfile.TemporaryDirectory(prefix="mg-bench-cli-") as tmp:
        env = _env(Path(tmp) / "home")
        subprocess.run([*cli, "init"], env=env, check=True, capture_output=True, timeout=300)
        cases = {"baseline": [sys.executable, "-c", "pass"],
                 "libraries": [sys.executable, "-c", LIBRARIES],
                 **{name: [*cli, *argv] for name, argv in COMMANDS.items()}}
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for argv in cases.values():  # warm the page cache once
            _run(argv, env)
        for round_ in range(repeats):
            progress(f"round {round_ + 1}/{repeats}")
            for name, argv in cases.items():
                wall, cpu = _run(argv, env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    base_wall = statistics.median(walls["baseline"])
    base_cpu = statistics.median(cpus["baseline"])
    figures = {"python_pass_wall_s": figure(base_wall, "s", notes="python -c pass"),
               "python_pass_cpu_s": figure(base_cpu, "s", notes="python -c pass")}
    figures["libraries_cpu_s"] = figure(statistics.median(cpus["libraries"]), "s",
                                        baseline=base_cpu, notes=f"python -c '{LIBRARIES}'")
    figures["libraries_wall_s"] = figure(statistics.median(walls["libraries"]), "s",
                                         baseline=base_wall, notes="the same, wall-clock")
    for name in COMMANDS:
        figures[f"{name}_wall_s"] = figure(statistics.median(walls[name]), "s",
                                           baseline=base_wall,
                                           notes=f"median of {repeats}; target < 0.5 s")
        figures[f"{name}_cpu_s"] = figure(statistics.median(cpus[name]), "s",
                                          baseline=base_cpu, notes="user + system, the child")
    emit("cli", figures, {"repeats": repeats, "commands": {k: " ".join(v)
                                                           for k, v in COMMANDS.items()}},
         quick=quick)


if __name__ == "__main__":
    main()
