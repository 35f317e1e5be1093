"""How fast is the gate's decision with a large registry, and with the directory?

100 000 opt-outs and a 300-person meeting (a few of whom opted out, some under an alias only
the directory knows), on SQLite and, when it answers, PostgreSQL. Timed in turns, median of
`--runs`, on the same data in the same run:

- `matching` (indexed IN queries on the identifier table and the blind columns) against a
  baseline that reads every active opt-out and filters in Python; both must agree;
- the gate's decision with directory resolution — every participant resolved to all their
  identifiers (`people.resolve_participants`) then matched — *cached* (every lookup in the
  identity cache) against matching alone, and *cold* (empty cache: 300 lookups through the
  Graph emulator, 20 to a `$batch`, over loopback HTTPS) against cached. Resolution must find
  the alias opt-outs that matching alone misses.

Figures (`bench/common.emit`, section `gate_matching`): `sqlite_matching_ms`,
`sqlite_gate_cached_ms`, `sqlite_gate_cold_ms` and the same for `postgres_`, plus each engine's
query plan for the identity lookup in `details`.

    python bench/gate_matching.py [--quick] [--optouts 100000] [--participants 300] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy
from common import emit, figure, interleaved, peak_rss_mb, progress, quick_mode
from sqlalchemy import insert, text
from sqlmodel import Session

from meeting_governance.config import GraphSettings, load_settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.graph import GraphClient
from meeting_governance.identity import Participant, ParticipantKind
from meeting_governance.meetingref import meeting_keys
from meeting_governance.models import IdentityCache, OptOut, OptOutIdentifier
from meeting_governance.optouts import (
    MeetingRef,
    OptOutRequest,
    add_optout,
    identity_query,
    matching,
)
from meeting_governance.people import resolve_participants
from mg_emulator import EmulatorServer, Organizer, Person, Scenario

POSTGRES_URL = os.environ.get("MG_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
START = datetime(2026, 3, 10, 10, tzinfo=UTC)
MEETING = MeetingRef("bench-meeting-id",
                     "https://teams.microsoft.com/l/meetup-join/19%3ameeting_YmVuY2g%40thread.v2/0",
                     START, START + timedelta(hours=1))
OPTED_OUT = 5  # participants of the meeting who are in the registry
QUICK_ARGS = ["--quick"]
FULL_ARGS: list[str] = []
TIMEOUT_S = 1800


def email(i: int) -> str:
    return f"user{i}@bench.example"


def alias(i: int) -> str:
    return f"u{i}.alias@bench.example"


def oid(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def populate(app: AppContext, count: int) -> None:
    """`OPTED_OUT` real opt-outs through the API, then bulk rows for everyone else."""
    with app.session() as session:
        for i in range(OPTED_OUT):
            add_optout(app, session, OptOutRequest(email=email(i), name=f"Person {i}"),
                       actor="bench")
        # Registered under an alias: only the directory says it is the participant's.
        for i in range(OPTED_OUT, 2 * OPTED_OUT):
            add_optout(app, session, OptOutRequest(email=alias(i)), actor="bench")
    vault = app.vault
    other_keys = [vault.blind("meeting", f"19:meeting_other{i}@thread.v2/0") for i in range(500)]
    batch: list[dict[str, Any]] = []
    now = app.clock.now()
    for i in range(2 * OPTED_OUT, count):
        kind = i % 20
        row: dict[str, Any] = {
            "id": uuid.uuid4().hex, "scope": "all", "covers_recording": True,
            "covers_transcription": kind != 7, "created_by": "bench", "created_at": now,
            "email_blind": vault.blind_email(email(i)) if kind % 3 else None,
            "object_id_blind": vault.blind_object_id(oid(i)) if kind % 3 != 1 else None,
            "revoked_at": now if kind == 13 else None,
        }
        if kind in (2, 5, 11):
            row.update(scope="meeting", meeting_key=other_keys[i % len(other_keys)])
        elif kind in (3, 17):
            day = START + timedelta(days=(i % 60) - 30)
            row.update(scope="range", valid_from=day, valid_until=day + timedelta(days=3))
        batch.append(row)
        if len(batch) == 5000:
            _flush(app, batch)
    _flush(app, batch)


def _flush(app: AppContext, batch: list[dict[str, Any]]) -> None:
    if batch:
        identifiers = [{"optout_id": r["id"], "blind": b, "source": "registered"}
                       for r in batch for b in dict.fromkeys(
                           x for x in (r["email_blind"], r["object_id_blind"]) if x)]
        with app.session() as session:
            session.execute(insert(OptOut), batch)
            session.execute(insert(OptOutIdentifier), identifiers)
        batch.clear()


def participants(count: int, total_optouts: int) -> list[Participant]:
    """The opted-out few first (by their address, then under an alias), then people not in
    the registry (ids beyond it)."""
    people = [Participant.make(kind=ParticipantKind.USER, email=email(i), object_id=oid(i),
                               display_name=f"Person {i}") for i in range(2 * OPTED_OUT)]
    people += [Participant.make(kind=ParticipantKind.USER, email=email(total_optouts + i),
                                object_id=oid(total_optouts + i), display_name=f"Guest {i}")
               for i in range(count - 2 * OPTED_OUT)]
    return people


def directory(people: list[Participant]) -> Scenario:
    """The directory the participants are in: each with an alias."""
    def person(p: Participant) -> Person:
        number = int((p.email or "").split("@")[0].removeprefix("user"))
        return Person(id=p.object_id or "", upn=p.email or "", mail=p.email or "",
                      proxy_addresses=(f"SMTP:{p.email}", f"smtp:{alias(number)}"))

    return Scenario(organizers=(Organizer(id="00000000-0000-4000-8000-0000000000aa"),),
                    page_size=100, people=tuple(person(p) for p in people))


def gate(app: AppContext, graph: GraphClient, people: list[Participant],
         meeting: MeetingRef) -> set[str]:
    """What the gate does: resolve every participant (cache first), then match."""
    resolved = resolve_participants(app, graph, people)
    if resolved.unresolved:
        raise SystemExit(f"{resolved.unresolved} participants not resolved: {resolved.failure}")
    with Session(app.engine) as session:
        return {v.id for v in matching(app, session, resolved.participants, meeting,
                                       blinds=resolved.blinds)}


def clear_cache(app: AppContext) -> None:
    with app.session() as session:
        session.execute(sqlalchemy.delete(IdentityCache))


def full_scan(app: AppContext, people: list[Participant], meeting: MeetingRef) -> set[str]:
    """The baseline: every active opt-out read and checked in Python (what an index avoids)."""
    vault = app.vault
    blinds = {b for p in people for b in vault.blind_identities(email=p.email, object_id=p.object_id)}
    keys = meeting_keys(vault, meeting.meeting_id, meeting.join_url)
    hits = set()
    with Session(app.engine) as session:
        t = OptOut.metadata.tables["optout"].c
        rows = session.execute(sqlalchemy.select(
            t.id, t.email_blind, t.object_id_blind, t.scope, t.meeting_key, t.valid_from,
            t.valid_until, t.covers_transcription).where(t.revoked_at.is_(None))).all()
        for oid_, mail, obj, scope, key, start, until, covers in rows:
            if not covers or not ({mail, obj} & blinds):
                continue
            if scope == "all" or (scope == "meeting" and key in keys) or (
                    scope == "range" and (start is None or start <= meeting.end)
                    and (until is None or until >= meeting.start)):
                hits.add(oid_)
    return hits


def indexed(app: AppContext, people: list[Participant], meeting: MeetingRef) -> set[str]:
    with Session(app.engine) as session:
        return {v.id for v in matching(app, session, people, meeting)}


def plan(app: AppContext) -> list[str]:
    """How the database runs `matching`'s identity query (the evidence that it is not a scan)."""
    stmt = identity_query("email_blind", [app.vault.blind_email(email(0)), "x" * 64])
    sql = str(stmt.compile(dialect=app.engine.dialect, compile_kwargs={"literal_binds": True}))
    with app.engine.connect() as conn:
        if app.engine.dialect.name == "sqlite":
            return [str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
        return [str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN {sql}")]


def bench(url: str | None, home: Path, args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"home": home}
    if url:
        data["database"] = {"url": url}
    settings = load_settings(None, **data)
    initialise(settings, home / "config.toml")
    app = AppContext.open(settings)
    try:
        progress(f"{app.engine.dialect.name}: loading {args.optouts} opt-outs")
        began = time.perf_counter()
        populate(app, args.optouts)
        load_s = time.perf_counter() - began
        if app.engine.dialect.name == "postgresql":
            with app.engine.begin() as conn:  # what autovacuum would do after a bulk load
                conn.execute(text("ANALYZE optout"))
        people = participants(args.participants, args.optouts)
        expected = full_scan(app, people, MEETING)
        got = indexed(app, people, MEETING)
        if got != expected or len(got) != OPTED_OUT:  # the alias opt-outs need the directory
            raise SystemExit(f"results differ: matching {len(got)}, full scan {len(expected)}")
        progress(f"{app.engine.dialect.name}: timing, {args.runs} runs per case in turns")
        timings = interleaved({"matching": lambda: indexed(app, people, MEETING),
                               "full_scan": lambda: full_scan(app, people, MEETING)},
                              repeats=args.runs)
        fast, slow = timings["matching"], timings["full_scan"]
        progress(f"{app.engine.dialect.name}: the gate with the directory, cached and cold")
        with EmulatorServer(directory(people), media_dir=home, state_dir=home / "emu") as emu, \
                GraphClient.from_settings(GraphSettings(**emu.client_config())) as graph:
            resolved = gate(app, graph, people, MEETING)
            if len(resolved) != 2 * OPTED_OUT or not got < resolved:
                raise SystemExit(f"resolution found {len(resolved)} opt-outs, expected "
                                 f"{2 * OPTED_OUT} (matching alone: {len(got)})")
            gates = interleaved(
                {"cached": lambda: gate(app, graph, people, MEETING),
                 "cold": lambda: gate(app, graph, people, MEETING)},
                repeats=args.runs,
                setup=lambda name: clear_cache(app) if name == "cold" else gate(
                    app, graph, people, MEETING))
            batches = len([r for r in emu.requests.graph_requests() if r.path.endswith("$batch")])
        cached, cold = gates["cached"], gates["cold"]
        return {"engine": app.engine.dialect.name, "optouts": args.optouts,
                "gate_cached_ms_median": round(cached.median * 1000, 2),
                "gate_cold_ms_median": round(cold.median * 1000, 2),
                "gate_matches": len(resolved), "batch_requests": batches,
                "participants": len(people), "matches": len(got), "runs": args.runs,
                "matching_ms_median": round(fast.median * 1000, 2),
                "full_scan_ms_median": round(slow.median * 1000, 2),
                "speedup": round(slow.median / fast.median, 1),
                "matching_ms_runs": [round(t * 1000, 2) for t in fast.runs],
                "full_scan_ms_runs": [round(t * 1000, 2) for t in slow.runs],
                "load_s": round(load_s, 1), "identity_query_plan": plan(app)}
    finally:
        app.close()


def postgres_schema() -> tuple[str, Callable[[], None]] | None:
    try:
        admin = sqlalchemy.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        print(f"PostgreSQL not reachable ({type(exc).__name__}); SQLite only", file=sys.stderr)
        return None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", drop


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 000 opt-outs, 3 runs")
    parser.add_argument("--optouts", type=int, default=None, help="default 100 000")
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--runs", type=int, default=None, help="default 7")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    quick = quick_mode(args.quick)
    args.optouts = args.optouts or (10_000 if quick else 100_000)
    args.runs = args.runs or (3 if quick else 7)
    for name in [n for n in os.environ if n.startswith("MG_") and n != "MG_TEST_POSTGRES_URL"]:
        del os.environ[name]
    results = []
    with tempfile.TemporaryDirectory(prefix="mg-bench-") as tmp:
        results.append(bench(None, Path(tmp) / "sqlite", args))
        pg = None if args.no_postgres else postgres_schema()
        if pg:
            url, drop = pg
            try:
                results.append(bench(url, Path(tmp) / "pg", args))
            finally:
                drop()
    figures = {}
    for r in results:
        name = "sqlite" if r["engine"] == "sqlite" else "postgres"
        figures[f"{name}_matching_ms"] = figure(
            r["matching_ms_median"], "ms", baseline=r["full_scan_ms_median"],
            notes=f"optouts.matching, {r['participants']} participants vs {r['optouts']} opt-outs "
                  f"({r['matches']} match); baseline: read every active opt-out and filter in "
                  f"Python; {r['speedup']}x faster; median of {r['runs']}")
        figures[f"{name}_gate_cached_ms"] = figure(
            r["gate_cached_ms_median"], "ms", baseline=r["matching_ms_median"],
            notes=f"the gate's decision with directory resolution, every lookup cached: "
                  f"{r['participants']} participants resolved to all their identifiers, then "
                  f"matched against {r['optouts']} opt-outs ({r['gate_matches']} match, the alias "
                  f"ones included); baseline: matching alone; median of {r['runs']}")
        figures[f"{name}_gate_cold_ms"] = figure(
            r["gate_cold_ms_median"], "ms", baseline=r["gate_cached_ms_median"],
            notes=f"the same with an empty cache: {r['participants']} directory lookups through "
                  f"the Graph emulator over loopback HTTPS, 20 to a $batch; baseline: cached; "
                  f"median of {r['runs']}")
    figures["peak_rss"] = figure(peak_rss_mb(), "MiB", digits=1, notes="whole benchmark process")
    emit("gate_matching", figures, {"engines": results}, quick=quick)


if __name__ == "__main__":
    main()
