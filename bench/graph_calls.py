"""How many Graph calls one recording costs: discovery + participants + download, by kind.

Runs the real client against the emulator (loopback HTTPS) with a generated scenario of N
recordings and prints one JSON document (common.emit) on stdout, e.g.:

    python bench/graph_calls.py --recordings 50 --page-size 10
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import emit, figure

from meeting_governance.graph import GraphClient, discover, download_recording, resolve_participants
from meeting_governance.graph.emulator import (
    AttendanceRecord,
    AttendanceReport,
    EmulatorServer,
    Meeting,
    Organizer,
    Recording,
    Scenario,
)


def build(n: int, organizers: int, page_size: int, records: int) -> Scenario:
    orgs = tuple(Organizer(id=f"00000000-0000-4000-8000-{i:012d}") for i in range(organizers))
    start = datetime(2026, 11, 2, 9, tzinfo=UTC)
    meetings, recordings = [], []
    for i in range(n):
        org = orgs[i % organizers].id
        when = start + timedelta(hours=i)
        report = AttendanceReport(id=f"report-{i}", records=tuple(
            AttendanceRecord(id=f"r{i}-{j}", email=f"person{j}@contoso.example",
                             identity_id=f"10000000-0000-4000-8000-{j:012d}", seconds=60)
            for j in range(records)))
        meetings.append(Meeting(id=f"MSo-bench-{i}==", organizer=org, start=when,
                                end=when + timedelta(minutes=30), attendance_reports=(report,)))
        recordings.append(Recording(id=f"VjIj-bench-{i}=", meeting=f"MSo-bench-{i}==",
                                    media="clip.mp4", created=when + timedelta(minutes=31)))
    return Scenario(page_size=page_size, organizers=orgs, meetings=tuple(meetings),
                    recordings=tuple(recordings))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--organizers", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--records", type=int, default=4, help="attendance records per meeting")
    parser.add_argument("--media-bytes", type=int, default=256 * 1024)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="mg-bench-graph-") as tmp:
        root = Path(tmp)
        (root / "media").mkdir()
        (root / "media" / "clip.mp4").write_bytes(os.urandom(args.media_bytes))
        scenario = build(args.recordings, args.organizers, args.page_size, args.records)
        with EmulatorServer(scenario, media_dir=root / "media", state_dir=root / "state") as emu:
            client = GraphClient.from_settings(emu.graph_settings())
            window = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
            began = time.perf_counter()
            found = 0
            for organizer in emu.graph_settings().organizers:
                result = discover(client, organizer, delta_link=None, start=window[0],
                                  end=window[1])
                for ref in result.recordings:
                    found += 1
                    resolve_participants(client, ref.organizer_id, ref.meeting_id)
                    done = download_recording(
                        client, ref.organizer_id, ref.meeting_id, ref.recording_id,
                        root / "staging", max_bytes=10 * args.media_bytes,
                        allowed_content_types=["video/mp4"], chunk_bytes=64 * 1024,
                        resume_attempts=3)
                    done.path.unlink()
            elapsed = time.perf_counter() - began
            logged = len(emu.requests.graph_requests())
            client.close()
    calls = dict(sorted(client.calls.items()))
    graph_calls = sum(v for k, v in calls.items() if k not in ("token", "openid"))
    per = {k: round(v / max(found, 1), 3) for k, v in calls.items()}
    details = {
        "recordings": found,
        "organizers": args.organizers,
        "page_size": args.page_size,
        "records_per_meeting": args.records,
        "calls": calls,
        "per_recording": per,
        "graph_requests_seen_by_emulator": logged,
        "wall_s": round(elapsed, 3),
    }
    breakdown = ", ".join(f"{k} {v:g}" for k, v in per.items())
    emit("graph_calls", {
        "graph_calls_per_recording": figure(
            graph_calls / max(found, 1), "calls", digits=3,
            notes=f"discovery, participants and download of {found} recordings over loopback "
                  f"HTTPS (the emulator logged {logged}); per recording: {breakdown}"),
        "ms_per_recording": figure(
            1000 * elapsed / max(found, 1), "ms", digits=1,
            notes=f"wall time of those calls, {args.media_bytes // 1024} KiB of media each"),
    }, details)
    return 0 if found == args.recordings and logged == graph_calls else 1


if __name__ == "__main__":
    raise SystemExit(main())
