"""What do server-side sessions and the database-backed sign-in limit cost a request?

The web app over a real database (SQLite and, when it answers, PostgreSQL), driven in-process
(Starlette's TestClient, no network), cases in turns, median of `--runs`:

- `*_session_request_ms`: one signed-in request (GET /api/session: the session row and its
  user are read, the CSRF token derived) against GET /healthz, which reads no session, as
  baseline: the ratio is what the server-side session adds to the cheapest request.
- `*_sign_in_ms`: one sign-in (POST /login: reserve an attempt, check the password with
  argon2id at its real cost, clear the count, create the session, audit) against the argon2id
  verification alone as baseline: the ratio is what the bookkeeping adds to the password check.

    python bench/web_sessions.py [--quick] [--requests 200] [--runs 7] [--no-postgres]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from common import emit, figure, interleaved, peak_rss_mb, progress, quick_mode
from fastapi.testclient import TestClient
from gate_matching import postgres_schema

from meeting_governance import users
from meeting_governance.config import load_settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.web import create_app

QUICK_ARGS = ["--quick"]
FULL_ARGS: list[str] = []
TIMEOUT_S = 1200
PASSWORD = "correct-horse-battery-staple"  # a throwaway account in a temporary database
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _sign_in(client: TestClient) -> None:
    token = _CSRF.search(client.get("/login").text)
    assert token
    answer = client.post("/login", data={"name": "bench", "password": PASSWORD,
                                         "csrf_token": token.group(1)})
    assert answer.status_code == 303, answer.status_code


def bench(url: str | None, home: Path, args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {"home": home, "web": {"login_max_attempts": 1000}}
    if url:
        overrides["database"] = {"url": url}
    settings = load_settings(None, **overrides)
    initialise(settings, home / "config.toml")
    app = AppContext.open(settings)
    try:
        users._hasher = PasswordHasher()  # argon2-cffi's defaults: what production runs
        with app.session() as db:
            users.add_user(app, db, "bench", "coordinator", PASSWORD)
        web = create_app(app)
        client = TestClient(web, follow_redirects=False)
        _sign_in(client)
        assert client.get("/api/session").status_code == 200

        def session_requests() -> None:
            for _ in range(args.requests):
                client.get("/api/session")

        def healthz_requests() -> None:
            for _ in range(args.requests):
                client.get("/healthz")

        requests = interleaved({"session": session_requests, "healthz": healthz_requests},
                               repeats=args.runs)
        hashed = users._hasher.hash(PASSWORD)
        sign_ins = interleaved({
            "sign_in": lambda: _sign_in(TestClient(web, follow_redirects=False)),
            "verify": lambda: users._hasher.verify(hashed, PASSWORD)}, repeats=args.runs)
        engine = "sqlite" if url is None else "postgresql"
        return {
            "engine": engine, "requests_per_run": args.requests, "runs": args.runs,
            "session_request_ms": requests["session"].median * 1000 / args.requests,
            "healthz_request_ms": requests["healthz"].median * 1000 / args.requests,
            "sign_in_ms": sign_ins["sign_in"].median * 1000,
            "verify_ms": sign_ins["verify"].median * 1000,
            "spread": {k: round(v.spread, 3) for k, v in {**requests, **sign_ins}.items()},
        }
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 requests, 3 runs")
    parser.add_argument("--requests", type=int, default=None, help="per timed run (default 200)")
    parser.add_argument("--runs", type=int, default=None, help="default 7")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    quick = quick_mode(args.quick)
    args.requests = args.requests or (50 if quick else 200)
    args.runs = args.runs or (3 if quick else 7)
    for name in [n for n in os.environ if n.startswith("MG_") and n != "MG_TEST_POSTGRES_URL"]:
        del os.environ[name]
    started = time.monotonic()
    results = []
    with tempfile.TemporaryDirectory(prefix="mg-bench-") as tmp:
        progress("SQLite")
        results.append(bench(None, Path(tmp) / "sqlite", args))
        pg = None if args.no_postgres else postgres_schema()
        if pg:
            url, drop = pg
            try:
                progress("PostgreSQL")
                results.append(bench(url, Path(tmp) / "pg", args))
            finally:
                drop()
    figures = {}
    for r in results:
        name = "sqlite" if r["engine"] == "sqlite" else "postgres"
        figures[f"{name}_session_request_ms"] = figure(
            r["session_request_ms"], "ms", baseline=r["healthz_request_ms"],
            notes="GET /api/session signed in (session row + user read, in-process) vs GET "
                  f"/healthz (no session); median of {r['runs']} runs of "
                  f"{r['requests_per_run']} requests")
        figures[f"{name}_sign_in_ms"] = figure(
            r["sign_in_ms"], "ms", baseline=r["verify_ms"],
            notes="POST /login (throttle reservation, argon2id at default cost, session row, "
                  f"audit) vs the argon2id verification alone; median of {r['runs']}")
    figures["peak_rss"] = figure(peak_rss_mb(), "MiB", digits=1, notes="whole benchmark process")
    emit("web_sessions", figures, {"engines": results,
                                   "wall_s": round(time.monotonic() - started, 1)}, quick=quick)


if __name__ == "__main__":
    sys.exit(main())
