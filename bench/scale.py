#!/usr/bin/env python3
"""Scale: recordings per minute with 1 and 2 worker processes sharing one PostgreSQL database.

    python bench/scale.py [--quick] [--recordings 24]

For each worker count, a fresh schema on the PostgreSQL at 127.0.0.1:5432 is polled once from
the Graph emulator, then that many `meeting-governance process` processes (each with its own
model, `transcription.cpu_threads` = cores / workers) claim recordings with
`FOR UPDATE SKIP LOCKED` until none is left. The figure is recordings per minute; the ratio of
2 workers to 1 is the speed-up the lease-based sharing delivers on this machine (2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy
from common import REPO, emit, figure, progress, quick_mode

sys.path.insert(0, str(REPO))
from tests.pipeline.conftest import subprocess_env
from tests.scale.test_workers import many_recordings

from meeting_governance.config import load_settings
from meeting_governance.context import initialise
from mg_emulator import EmulatorServer
from mg_emulator.scenario import default_media_dir

# The defaults these figures depend on: a change marks them stale in the generated prose.
SETTINGS = ["transcription"]
POSTGRES = os.environ.get("MG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def run(workers: int, count: int, work: Path) -> float:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    home = work / f"home-{workers}"
    try:
        settings = load_settings(None, home=home, database={"url": url})
        initialise(settings, home / "config.toml")
        with EmulatorServer(many_recordings(), media_dir=default_media_dir(),
                            state_dir=work / f"emu-{workers}") as emu:
            threads = str(max((os.cpu_count() or 2) // workers, 1))
            env = subprocess_env(home, emu, url, MG_TRANSCRIPTION__CPU_THREADS=threads,
                                 MG_DAEMON__PROCESS_BATCH="1")
            cmd = [sys.executable, "-m", "meeting_governance"]
            subprocess.run([*cmd, "poll"], env=env, check=True, capture_output=True)
            started = time.perf_counter()
            procs = [subprocess.Popen([*cmd, "process", "--limit", str(count)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                     for _ in range(workers)]
            for proc in procs:
                _, err = proc.communicate(timeout=1800)
                if proc.returncode != 0:
                    raise SystemExit(f"worker failed: {err.decode()[-2000:]}")
            elapsed = time.perf_counter() - started
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            stored = conn.execute(sqlalchemy.text(
                "SELECT count(*) FROM recording WHERE state = 'stored'")).scalar_one()
        engine.dispose()
        if stored != count:
            raise SystemExit(f"{workers} workers stored {stored} of {count}")
        return count / (elapsed / 60)
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    for name in [n for n in os.environ if n.startswith("MG_")]:
        del os.environ[name]
    quick = quick_mode(args.quick)
    count = 30  # the scenario of tests/scale: 30 short real-speech recordings
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        progress("1 worker")
        one = run(1, count, Path(tmp))
        progress("2 workers")
        two = run(2, count, Path(tmp))
    figures = {
        "one_worker": figure(one, "recordings/min", digits=1),
        "two_workers": figure(two, "recordings/min", baseline=one, digits=1,
                              notes="ratio = speed-up of 2 workers over 1 on this machine"),
    }
    emit("scale", figures, {"recordings": count, "cores": os.cpu_count()}, quick=quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
