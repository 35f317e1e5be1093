"""How many Graph calls one recording costs, before and after issue 13, by kind.

Runs the real client against the emulator (loopback HTTPS) with a generated scenario of N
recordings (R recurring meetings' worth of reports each, a shared pool of directory users) and
prints one JSON document (common.emit) on stdout. Both flows run in the same process, on the
same scenario:

- *before*: discovery, the meeting, every attendance report's records, the download — what a
  recording cost when the gate trusted any report and matched one address per person; and a
  new msal application (an OpenID discovery and a token request) for every poll;
- *after*: discovery, the meeting and the records of this recording's report only, every
  participant resolved in the directory (20 lookups to a `$batch`, cached as blind values in a
  temporary installation, so people seen before cost nothing), the download, and the second
  gate reading the meeting and its attendance again; one msal application per process.

    python bench/graph_calls.py --recordings 50 --page-size 10 --polls 3
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import emit, figure

from meeting_governance.config import GraphSettings, load_settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.gate_inputs import who_was_there
from meeting_governance.graph import GraphClient, discover, download_recording, resolve_participants
from meeting_governance.graph.client import forget_sign_ins
from mg_emulator import (
    AttendanceRecord,
    AttendanceReport,
    EmulatorServer,
    Meeting,
    Organizer,
    Person,
    Recording,
    Scenario,
)

QUICK_ARGS = ["--recordings", "10", "--polls", "2"]
FULL_ARGS = ["--recordings", "50", "--polls", "3"]
SIGN_IN = ("token", "openid")


def _oid(prefix: int, n: int) -> str:
    return f"{prefix:08d}-0000-4000-8000-{n:012d}"


def build(n: int, organizers: int, page_size: int, records: int, occurrences: int,
          people: int) -> Scenario:
    orgs = tuple(Organizer(id=_oid(0, i), upn=f"organiser{i}@contoso.example")
                 for i in range(organizers))
    pool = tuple(Person(id=_oid(1, j), upn=f"person{j}@contoso.example",
                        mail=f"person{j}@contoso.example",
                        proxy_addresses=(f"SMTP:person{j}@contoso.example",
                                         f"smtp:p{j}@contoso.example")) for j in range(people))
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    meetings, recordings = [], []
    for i in range(n):
        org = orgs[i % organizers].id
        when = start + timedelta(hours=i)
        reports = tuple(AttendanceReport(
            id=f"report-{i}-{k}", start=when - timedelta(days=7 * k),
            end=when - timedelta(days=7 * k) + timedelta(minutes=30), records=tuple(
                AttendanceRecord(id=f"r{i}-{k}-{j}", email=f"person{(i + j) % people}@contoso.example",
                                 identity_id=_oid(1, (i + j) % people), seconds=60)
                for j in range(records))) for k in range(occurrences))
        meetings.append(Meeting(id=f"MSo-bench-{i}==", organizer=org, start=when,
                                end=when + timedelta(minutes=30), attendance_reports=reports))
        recordings.append(Recording(id=f"VjIj-bench-{i}=", meeting=f"MSo-bench-{i}==",
                                    media="clip.mp4", created=when + timedelta(minutes=1),
                                    end=when + timedelta(minutes=29)))
    return Scenario(page_size=page_size, organizers=orgs, meetings=tuple(meetings),
                    recordings=tuple(recordings), people=pool)


def _download(client: GraphClient, ref: Any, root: Path, size: int) -> None:
    done = download_recording(client, ref.organizer_id, ref.meeting_id, ref.recording_id,
                              root / "staging", max_bytes=10 * size,
                              allowed_content_types=["video/mp4"], chunk_bytes=64 * 1024,
                              resume_attempts=3)
    done.path.unlink()


def run_flow(emu: EmulatorServer, flow: str, polls: int, app: AppContext | None,
             root: Path, size: int) -> tuple[Counter[str], int, float]:
    """One flow from a fresh process's point of view; calls by kind, recordings, seconds."""
    forget_sign_ins()
    calls: Counter[str] = Counter()
    found = 0
    began = time.perf_counter()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for round_ in range(polls):
        if flow == "before":
            forget_sign_ins()  # a new msal app per poll, as the daemon made one
        client = GraphClient.from_settings(GraphSettings(**emu.client_config()))
        for organizer in GraphSettings(**emu.client_config()).organizers:
            result = discover(client, organizer, delta_link=None, start=start)
            if round_:
                continue  # later polls only re-run discovery: what the daemon does every 5 min
            for ref in result.recordings:
                found += 1
                window = (ref.created, ref.end)
                if flow == "before":
                    resolve_participants(client, ref.organizer_id, ref.meeting_id)
                    _download(client, ref, root, size)
                else:
                    assert app is not None
                    who_was_there(app, client, ref.organizer_id, ref.meeting_id, window)
                    _download(client, ref, root, size)
                    who_was_there(app, client, ref.organizer_id, ref.meeting_id, window)
        calls.update(client.calls)
        client.close()
    return calls, found, time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--organizers", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--records", type=int, default=4, help="attendance records per report")
    parser.add_argument("--occurrences", type=int, default=3,
                        help="reports per meeting (a recurring meeting's occurrences)")
    parser.add_argument("--people", type=int, default=30, help="directory users attending")
    parser.add_argument("--polls", type=int, default=3, help="poll rounds (sign-in cost)")
    parser.add_argument("--media-bytes", type=int, default=256 * 1024)
    parser.add_argument("--quick", action="store_true", help="10 recordings, 2 polls")
    args = parser.parse_args(argv)
    if args.quick:
        args.recordings, args.polls = 10, 2
    for name in [n for n in os.environ if n.startswith("MG_")]:
        del os.environ[name]

    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mg-bench-graph-") as tmp:
        root = Path(tmp)
        (root / "media").mkdir()
        (root / "media" / "clip.mp4").write_bytes(os.urandom(args.media_bytes))
        scenario = build(args.recordings, args.organizers, args.page_size, args.records,
                         args.occurrences, args.people)
        settings = load_settings(None, home=root / "home")
        initialise(settings, root / "home" / "config.toml")
        app = AppContext.open(settings)
        try:
            for flow in ("before", "after"):
                with EmulatorServer(scenario, media_dir=root / "media",
                                    state_dir=root / f"state-{flow}") as emu:
                    calls, found, elapsed = run_flow(emu, flow, args.polls, app, root,
                                                     args.media_bytes)
                    logged = len(emu.requests.graph_requests())
                    batched = len(emu.requests.batched_requests())
                graph = sum(v for k, v in calls.items() if k not in SIGN_IN)
                results[flow] = {
                    "recordings": found, "calls": dict(sorted(calls.items())),
                    "graph_calls_per_recording": round(graph / max(found, 1), 3),
                    "per_recording": {k: round(v / max(found, 1), 3) for k, v in calls.items()},
                    "sign_in_requests_per_poll": round(
                        sum(calls[k] for k in SIGN_IN) / args.polls, 3),
                    "graph_requests_seen_by_emulator": logged,
                    "lookups_inside_batches": batched, "wall_s": round(elapsed, 3)}
        finally:
            app.close()
    before, after = results["before"], results["after"]
    breakdown = ", ".join(f"{k} {v:g}" for k, v in after["per_recording"].items())
    emit("graph_calls", {
        "graph_calls_per_recording": figure(
            after["graph_calls_per_recording"], "calls", digits=3,
            baseline=before["graph_calls_per_recording"],
            notes=f"after issue 13 (this recording's report only, directory lookups in $batch "
                  f"and cached, second gate re-reads attendance): {breakdown}; baseline: every "
                  f"report's records, no directory, no second read; {args.recordings} "
                  f"recordings, {args.occurrences} reports each, {args.people} people"),
        "sign_in_requests_per_poll": figure(
            after["sign_in_requests_per_poll"], "requests", digits=3,
            baseline=before["sign_in_requests_per_poll"],
            notes=f"token + OpenID discovery requests per poll over {args.polls} polls: one msal "
                  "application per process; baseline: a new one per poll"),
        "ms_per_recording": figure(
            1000 * after["wall_s"] / max(after["recordings"], 1), "ms", digits=1,
            baseline=1000 * before["wall_s"] / max(before["recordings"], 1),
            notes=f"wall time of those calls over loopback, {args.media_bytes // 1024} KiB of "
                  "media each"),
    }, {"before": before, "after": after, "args": vars(args)}, quick=args.quick)
    ok = before["recordings"] == after["recordings"] == args.recordings
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
