#!/usr/bin/env python3
"""Throughput: hours of meetings governed per hour of wall time, for workers x threads layouts.

    python bench/throughput.py [--quick] [--layouts 1x2 2x1] [--long-minutes 60] [--model tiny.en]

For each layout W x T a fresh PostgreSQL schema (127.0.0.1:5432) is initialised, the Graph
emulator serves a mixed queue, `meeting-governance poll` discovers it, and then the real
`meeting-governance daemon --workers W` runs with `transcription.cpu_threads = T` until every
recording is stored: W processes, each with its own model, claiming recordings one at a time
(`FOR UPDATE SKIP LOCKED`) through the whole governed pipeline — participants, the gate twice,
the HTTPS download, transcription, sealing, audit. The queue (a seeded shuffle, oldest first as
the daemon takes it): the hour-long meeting of `corpus.long_meeting`, three copies of the
10-minute meeting, ls60, and the six short demo clips four times over (`--quick`: ls60 and the
demo clips once).

Figures per layout:

- `hours_per_hour`: audio hours stored per wall hour, from the daemon's start to the last
  transcript (the batch as queued, tail included); `x 24` is hours per day for this machine.
- `steady_hours_per_hour`: the sum over workers of audio seconds per busy second (from each
  recording's `downloading` to its `stored` audit entry): the rate with work always queued, which
  a finite batch's tail (one worker left on the hour while the others idle) does not show.
- `hours_per_core_per_day`: the steady rate per core, x 24.
- `peak_rss_per_worker`: the largest peak RSS (VmHWM) of the worker processes.

The ratio of each layout is against the first one (1 x all cores, the daemon's old default).
Scheduling: with each recording's measured service time the same queue is replayed on W
workers oldest-first (as measured), shortest-first and longest-first, for the makespan and the
mean time to a stored transcript.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import corpus
import sqlalchemy
from common import REPO, emit, figure, progress, quick_mode

sys.path.insert(0, str(REPO))
from tests.pipeline.conftest import subprocess_env

from meeting_governance.config import load_settings
from meeting_governance.context import initialise
from mg_emulator import (
    AttendanceRecord,
    AttendanceReport,
    EmulatorServer,
    Meeting,
    Organizer,
    Recording,
    Scenario,
)
from mg_emulator.scenario import default_media_dir

# The defaults these figures depend on: a change marks them stale in the generated prose.
SETTINGS = ["transcription"]
QUICK_ARGS = ["--quick"]
FULL_ARGS: list[str] = []
TIMEOUT_S = 10800
QUICK_TIMEOUT_S = 900
POSTGRES = os.environ.get("MG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ORG = "6f1c3a52-8d0e-4b7a-9c21-3e5f7a9b1c01"


def queue(quick: bool, long_minutes: float, seed: int = 8) -> list[tuple[Path, float]]:
    """(media file, seconds) in the order the recordings were made (oldest first)."""
    import av

    demo = sorted(p for p in default_media_dir().iterdir()
                  if p.suffix in (".m4a", ".mp4") and p.name != "corrupt.mp4")
    items: list[Path] = [corpus.ls60().path, *demo]
    if not quick:
        items += [*demo * 3, *[corpus.meeting10().path] * 3]
        if long_minutes > 0:
            items.append(corpus.long_meeting(long_minutes).path)
    random.Random(seed).shuffle(items)
    out = []
    for path in items:
        with av.open(str(path)) as container:
            out.append((path, float(container.duration or 0) / 1_000_000))
    return out


def scenario(files: list[Path]) -> Scenario:
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    meetings, recordings = [], []
    for n, path in enumerate(files):
        mid = f"MSo-throughput-{n:03d}=="
        at = start + timedelta(minutes=n)
        report = AttendanceReport(id=f"r{n}", records=(AttendanceRecord(
            id="o", email="alex@contoso.example", identity_id=ORG, seconds=60, tenant_id="t"),))
        meetings.append(Meeting(id=mid, organizer=ORG, subject=f"Throughput {n}", start=at,
                                end=at + timedelta(minutes=30), attendance_reports=(report,)))
        recordings.append(Recording(id=f"VjIj-throughput-{n:03d}=", meeting=mid,
                                    media=f"{n:03d}-{path.name}", content_type="video/mp4",
                                    created=at, end=at))
    return Scenario(tenant_id="t", client_id="c", client_secret="s", page_size=50,
                    organizers=(Organizer(id=ORG),), meetings=tuple(meetings),
                    recordings=tuple(recordings))


def _workers(pid: int) -> list[int]:
    """The daemon and the worker processes it spawned (not multiprocessing's helpers)."""
    found = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "spawn_main" in cmdline:
            found.append(int(child))
    return found


def _peak_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_layout(workers: int, threads: int, items: list[tuple[Path, float]], model: str,
               work: Path) -> dict[str, Any]:
    """One layout on a fresh schema: poll, then the daemon until everything is stored."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    home = work / f"home-{workers}x{threads}"
    media = work / "media"
    media.mkdir(exist_ok=True)
    for n, (path, _seconds) in enumerate(items):
        link = media / f"{n:03d}-{path.name}"
        if not link.exists():
            link.symlink_to(path.resolve())
    engine = sqlalchemy.create_engine(url)
    try:
        initialise(load_settings(None, home=home, database={"url": url}), home / "config.toml")
        with EmulatorServer(scenario([p for p, _ in items]), media_dir=media,
                            state_dir=work / f"emu-{workers}x{threads}") as emu:
            env = subprocess_env(home, emu, url, MG_TRANSCRIPTION__MODEL=model,
                                 MG_TRANSCRIPTION__CPU_THREADS=str(threads),
                                 MG_DAEMON__PROCESS_INTERVAL_SECONDS="1",
                                 MG_DAEMON__POLL_INTERVAL_MINUTES="600",
                                 MG_GATE__PARTICIPANTS_DEADLINE_HOURS=str(24 * 3650))
            cli = [sys.executable, "-m", "meeting_governance"]
            subprocess.run([*cli, "poll"], env=env, check=True, capture_output=True)
            started = time.perf_counter()
            daemon = subprocess.Popen([*cli, "daemon", "--workers", str(workers)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            peaks: dict[int, float] = {}
            stored, progressed = 0, time.perf_counter()
            try:
                while stored < len(items):
                    time.sleep(0.5)
                    with engine.connect() as conn:
                        counts = dict(conn.execute(sqlalchemy.text(
                            "SELECT state, count(*) FROM recording GROUP BY state")).all())
                    for pid in _workers(daemon.pid):
                        peak = _peak_mb(pid)
                        if peak is not None:
                            peaks[pid] = max(peaks.get(pid, 0.0), peak)
                    if counts.get("stored", 0) > stored:
                        stored, progressed = counts["stored"], time.perf_counter()
                    stuck = time.perf_counter() - progressed > 900
                    if counts.get("failed") or daemon.poll() is not None or stuck:
                        raise SystemExit(f"{workers}x{threads}: recordings {counts}, daemon "
                                         f"exit {daemon.poll()}, no progress for 900 s: {stuck}")
                wall = time.perf_counter() - started
            finally:
                daemon.send_signal(signal.SIGTERM)
                try:
                    daemon.wait(timeout=300)
                except subprocess.TimeoutExpired:
                    daemon.kill()
        with engine.connect() as conn:
            audit = conn.execute(sqlalchemy.text(
                "SELECT target_id, action, actor, at FROM audit_entry WHERE action IN "
                "('recording.downloading', 'recording.stored') ORDER BY seq")).all()
            graph_ids = dict(conn.execute(sqlalchemy.text(
                "SELECT CAST(id AS TEXT), graph_recording_id FROM recording")).all())
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return {"workers": workers, "threads": threads, "wall_s": wall,
            "peak_rss_mb": sorted(round(v, 1) for v in peaks.values()),
            "recordings": _service_times(audit, graph_ids, items)}


def _service_times(audit: list[Any], graph_ids: dict[str, str],
                   items: list[tuple[Path, float]]) -> list[dict[str, Any]]:
    """Per recording, in queue order: worker, start, end, service seconds, audio seconds."""
    begun: dict[str, datetime] = {}
    rows = []
    for target, action, actor, at in audit:
        if action == "recording.downloading":
            begun[target] = at
        elif target in begun:
            index = int(graph_ids[target].split("-")[-1].rstrip("="))  # VjIj-throughput-NNN=
            rows.append({"queue": index, "worker": actor, "start": begun[target], "end": at,
                         "audio_s": round(items[index][1], 1)})
    rows.sort(key=lambda r: r["queue"])
    first = min((r["start"] for r in rows), default=None)
    for row in rows:
        row["service_s"] = round((row["end"] - row["start"]).total_seconds(), 2)
        row["start"] = round((row["start"] - first).total_seconds(), 2)
        row["end"] = round((row["end"] - first).total_seconds(), 2)
    return rows


def replay(service: list[float], workers: int, order: str) -> tuple[float, float]:
    """(makespan, mean completion) of these jobs, all queued at 0, on `workers` workers."""
    jobs = list(service)
    if order == "shortest":
        jobs.sort()
    elif order == "longest":
        jobs.sort(reverse=True)
    free = [0.0] * workers
    done = []
    for seconds in jobs:
        index = free.index(min(free))
        free[index] += seconds
        done.append(free[index])
    return max(done, default=0.0), statistics.fmean(done) if done else 0.0


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["recordings"]
    audio = sum(r["audio_s"] for r in rows)
    by_worker: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_worker.setdefault(row["worker"], []).append(row)
    steady = sum(sum(r["audio_s"] for r in mine) / max(sum(r["service_s"] for r in mine), 1e-9)
                 for mine in by_worker.values())
    service = [r["service_s"] for r in rows]
    orders = {order: replay(service, result["workers"], order)
              for order in ("oldest", "shortest", "longest")}
    cores = result["workers"] * result["threads"]
    return {"layout": f"{result['workers']}x{result['threads']}", "audio_s": round(audio, 1),
            "wall_s": round(result["wall_s"], 1), "hours_per_hour": audio / result["wall_s"],
            "steady_hours_per_hour": steady, "cores": cores,
            "hours_per_core_per_day": steady * 24 / cores,
            "peak_rss_per_worker_mb": max(result["peak_rss_mb"], default=0.0),
            "peak_rss_mb": result["peak_rss_mb"], "workers_used": len(by_worker),
            "replay": {k: {"makespan_s": round(v[0], 1), "mean_done_s": round(v[1], 1)}
                       for k, v in orders.items()}}


def figures_of(summaries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    first = summaries[0] if summaries else None
    for s in summaries:
        key = s["layout"]
        base = None if s is first or first is None else first
        out[f"{key}_hours_per_hour"] = figure(
            s["hours_per_hour"], "h/h", digits=2,
            baseline=base["hours_per_hour"] if base else None,
            notes=f"{s['audio_s'] / 3600:.2f} h of audio in {s['wall_s']:.0f} s, daemon start "
                  f"to last transcript; {s['hours_per_hour'] * 24:.0f} h of meetings a day on "
                  f"this machine" + (f"; baseline: {first['layout']}" if base else ""))
        out[f"{key}_steady_hours_per_hour"] = figure(
            s["steady_hours_per_hour"], "h/h", digits=2,
            baseline=base["steady_hours_per_hour"] if base else None,
            notes="sum over workers of audio per busy second: the rate with work always queued")
        out[f"{key}_hours_per_core_per_day"] = figure(
            s["hours_per_core_per_day"], "h/core/day", digits=0,
            notes=f"steady rate x 24 / {s['cores']} cores")
        out[f"{key}_peak_rss_per_worker"] = figure(
            s["peak_rss_per_worker_mb"], "MiB", digits=1,
            notes="largest VmHWM of the daemon's worker processes: " +
                  ", ".join(f"{v:.0f}" for v in s["peak_rss_mb"]))
        replayed = s["replay"]
        out[f"{key}_makespan_longest_first"] = figure(
            replayed["longest"]["makespan_s"], "s", digits=1,
            baseline=replayed["oldest"]["makespan_s"],
            notes=f"replay of the measured service times; mean time to a transcript: oldest "
                  f"first {replayed['oldest']['mean_done_s']:.0f} s, shortest first "
                  f"{replayed['shortest']['mean_done_s']:.0f} s, longest first "
                  f"{replayed['longest']['mean_done_s']:.0f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ls60 and six short clips")
    parser.add_argument("--layouts", nargs="*", help="WxT (workers x threads); default: 1xN, "
                        "then N/2 x 2 when N > 2, then N x 1, for N usable cores")
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args(argv)
    for name in [n for n in os.environ if n.startswith("MG_")]:
        del os.environ[name]
    os.environ["HF_HUB_OFFLINE"] = "1"
    quick = quick_mode(args.quick)
    if not corpus.available():
        raise SystemExit(f"the speech corpus is not at {corpus.SPEECH} (set MG_BENCH_SPEECH)")
    cores = len(os.sched_getaffinity(0))
    layouts = args.layouts or [f"1x{cores}", *([f"{cores // 2}x2"] if cores > 2 else []),
                               f"{cores}x1"]
    items = queue(quick, args.long_minutes)
    summaries, raw = [], []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        for layout in layouts:
            workers, threads = (int(v) for v in layout.lower().split("x"))
            progress(f"{layout}: {len(items)} recordings, "
                     f"{sum(s for _, s in items) / 3600:.2f} h of audio")
            result = run_layout(workers, threads, items, args.model, Path(tmp))
            raw.append(result)
            summaries.append(summarise(result))
            progress(f"{layout}: {summaries[-1]['hours_per_hour']:.1f} h/h "
                     f"(steady {summaries[-1]['steady_hours_per_hour']:.1f})")
    details = {"model": args.model, "cores": cores, "summaries": summaries,
               "queue": [{"file": p.name, "seconds": round(s, 1)} for p, s in items],
               "runs": raw}
    emit("throughput", figures_of(summaries), details, quick=quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
