"""One logging configuration for every logger of the process (issue 17).

A fresh process configures logging as the CLI, the daemon and `serve` do, then the libraries
log through their own loggers: APScheduler a job's traceback, uvicorn an access line and an
application error, Alembic a real migration, msal a warning — each carrying an address. Every
line must be JSON, masked, in a 0600 file (and on stderr with -v).
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

from meeting_governance.logs import JsonFormatter, configure_logging, logging_config

ADDRESS = "jane.doe@contoso.example"

SCRIPT = textwrap.dedent('''
    import logging, sys, threading, time, urllib.error, urllib.request
    from pathlib import Path

    from meeting_governance.logs import configure_logging

    ADDRESS, log_file, db_file, port = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    configure_logging("INFO", log_file, stderr=True)

    # APScheduler: a job that raises; the scheduler logs the traceback.
    from apscheduler.schedulers.background import BackgroundScheduler

    def job():
        raise ValueError(f"could not reach {ADDRESS}")

    scheduler = BackgroundScheduler()
    scheduler.add_job(job, id="failing")
    scheduler.start()
    time.sleep(1.5)
    scheduler.shutdown(wait=True)

    # uvicorn, configured as `serve` runs it (log_config=None), with its access log on.
    import uvicorn

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            raise RuntimeError(f"handler failed for {ADDRESS}")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           log_level="info", access_log=True))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    urllib.request.urlopen(f"http://127.0.0.1:{port}/lookup?who={ADDRESS}").read()
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/boom")
    except urllib.error.HTTPError:
        pass
    server.should_exit = True
    time.sleep(0.5)

    # Alembic: a real migration of a new database, then a line through its own logger.
    from meeting_governance.db import make_engine, migrate

    engine = make_engine(f"sqlite:///{db_file}")
    migrate(engine)
    engine.dispose()
    logging.getLogger("alembic.runtime.migration").warning("revision owner %s", ADDRESS)

    # msal: a warning through its logger (its INFO and DEBUG chatter stays out).
    logging.getLogger("msal.application").warning("token for %s", ADDRESS)
    logging.getLogger("msal.application").info("not shown %s", ADDRESS)
''')


def test_every_library_logs_json_masked_to_a_private_file(tmp_path: Path) -> None:
    from tests.pipeline.test_daemon import free_port

    log_file = tmp_path / "logs" / "all.jsonl"
    done = subprocess.run([sys.executable, "-c", SCRIPT, ADDRESS, str(log_file),
                           str(tmp_path / "db.sqlite"), str(free_port())],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    text = log_file.read_text()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is JSON
    assert ADDRESS.lower() not in text.lower()
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700

    def lines_of(prefix: str) -> list[dict[str, object]]:
        return [line for line in lines if str(line["logger"]).startswith(prefix)]

    job = [line for line in lines_of("apscheduler") if line.get("error") == "ValueError"]
    assert job and "[redacted-address]" in str(job[0]["traceback"])
    assert ", in job\n" in str(job[0]["traceback"])  # the frame that raised, for the operator
    access = lines_of("uvicorn.access")
    # (the masking takes the whole token that holds the address: path and query)
    assert access and '"GET [redacted-address] HTTP/1.1" 200' in str(access[0]["msg"])
    crash = [line for line in lines_of("uvicorn.error") if line.get("error") == "RuntimeError"]
    assert crash and crash[0]["error_message"] == "handler failed for [redacted-address]"
    migrations = lines_of("alembic")
    assert any("Running upgrade" in str(line["msg"]) for line in migrations)
    assert any(line["msg"] == "revision owner [redacted-address]" for line in migrations)
    assert [line["msg"] for line in lines_of("msal")] == ["token for [redacted-address]"]

    # -v: the same JSON lines on stderr, masked too.
    assert ADDRESS.lower() not in done.stderr.lower()
    on_stderr = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert {str(line["logger"]).split(".")[0] for line in on_stderr} >= {
        "apscheduler", "uvicorn", "alembic", "msal"}


def test_an_existing_log_file_is_tightened_to_0600(tmp_path: Path) -> None:
    import logging

    log_file = tmp_path / "old.jsonl"
    log_file.write_text("")
    log_file.chmod(0o644)
    configure_logging("INFO", log_file)
    try:
        logging.getLogger("meeting_governance.test").info("started", extra={"count": 1})
    finally:
        configure_logging("INFO", None)
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert json.loads(log_file.read_text().splitlines()[0])["count"] == 1


def test_one_configuration_names_every_library_and_keeps_msal_quiet() -> None:
    config = logging_config("DEBUG", None)
    for name in ("apscheduler", "uvicorn", "uvicorn.access", "alembic", "msal"):
        assert config["loggers"][name]["handlers"] == []  # through the root's, never their own
        assert config["loggers"][name]["propagate"] is True
    assert config["loggers"]["msal"]["level"] == "WARNING"  # even at DEBUG: no token chatter
    assert config["loggers"]["apscheduler"]["level"] == "DEBUG"
    # At INFO, APScheduler's line per job run stays out; its failures do not.
    assert logging_config("INFO", None)["loggers"]["apscheduler"]["level"] == "WARNING"
    assert logging_config("INFO", None)["loggers"]["alembic"]["level"] == "INFO"
    assert isinstance(JsonFormatter(), JsonFormatter)
