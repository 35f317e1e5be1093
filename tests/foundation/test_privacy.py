"""No plaintext at rest: scan the SQLite file, its WAL and the whole MG_HOME for known values."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from meeting_governance import audit
from meeting_governance.context import AppContext
from meeting_governance.db import checkpoint
from meeting_governance.epochs import Owner
from meeting_governance.observability import JsonFormatter, configure_logging
from tests.conftest import scan_for

SENTENCE = "Zebra-striped quarterly forecast for the Lisbon merger is strictly confidential"
EMAIL = "Dana.Whitfield@contoso-example.org"
NAME = "Dana Whitfield"
SUBJECT = "Project Halcyon steering committee"
NEEDLES = [SENTENCE.encode(), EMAIL.encode(), EMAIL.lower().encode(), NAME.encode(),
           SUBJECT.encode(), b"Halcyon", b"Whitfield", b"contoso-example"]


def db_path(app: AppContext) -> Path:
    return Path(app.settings.database_url.split("///", 1)[1])


def store_known_plaintext(app: AppContext) -> list[str]:
    epoch = app.vault.retention_epoch(app.clock.now())
    with app.session() as session:
        ids = [
            app.vault.seal_text(session, SENTENCE * 20, purpose="transcript", epoch=epoch,
                                owner=Owner("transcript", "t1", "content")),
            app.vault.seal_json(session, [{"email": EMAIL, "display_name": NAME}], epoch=epoch,
                                owner=Owner("transcript", "t1", "participants")),
            app.vault.seal_text(session, SUBJECT, epoch=epoch,
                                owner=Owner("transcript", "t1", "subject")),
        ]
        app.audit(session, "transcript.stored", target_type="transcript", target_id=ids[0],
                  person=app.vault.blind_email(EMAIL))
    return ids


def test_nothing_in_clear_in_the_wal_before_a_checkpoint(sqlite_app: AppContext) -> None:
    store_known_plaintext(sqlite_app)
    wal = Path(f"{db_path(sqlite_app)}-wal")
    assert wal.is_file() and wal.stat().st_size > 0  # the data is really in the WAL here
    assert scan_for(sqlite_app.settings.home, NEEDLES) == []


def test_nothing_in_clear_anywhere_after_a_checkpoint(sqlite_app: AppContext) -> None:
    ids = store_known_plaintext(sqlite_app)
    checkpoint(sqlite_app.engine)
    wal = Path(f"{db_path(sqlite_app)}-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # TRUNCATE really folded it in
    assert db_path(sqlite_app).stat().st_size > len(SENTENCE) * 20
    sqlite_app.close()
    assert scan_for(sqlite_app.settings.home, NEEDLES) == []
    assert scan_for(sqlite_app.settings.home, [i.encode() for i in ids[:1]])  # sanity: rows are there


def test_shredded_ciphertext_leaves_no_trace_in_the_file(sqlite_app: AppContext) -> None:
    ids = store_known_plaintext(sqlite_app)
    with sqlite_app.session() as session:
        from meeting_governance.models import VaultItem

        item = session.get(VaultItem, ids[0])
        assert item is not None and item.ciphertext is not None and item.wrapped_key is not None
        remnants = [item.ciphertext[:48], item.ciphertext[-48:], item.wrapped_key]
        sqlite_app.vault.shred(session, ids[0])
    checkpoint(sqlite_app.engine)
    sqlite_app.close()
    assert scan_for(sqlite_app.settings.home, remnants) == []


def test_logs_hold_no_address(sqlite_app: AppContext, tmp_path: Path) -> None:
    log_file = sqlite_app.settings.log_file
    configure_logging("INFO", log_file)
    try:
        log = logging.getLogger("meeting_governance.test")
        log.info("opt-out added for %s", EMAIL, extra={"who": EMAIL, "count": 1})
        try:
            raise ValueError(f"bad address {EMAIL}")
        except ValueError:
            log.exception("failed")
    finally:
        configure_logging("INFO", None)
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert lines[0]["count"] == 1 and "[redacted-address]" in lines[0]["msg"]
    assert scan_for(sqlite_app.settings.home, [EMAIL.encode()]) == []


def test_formatter_redacts_every_field() -> None:
    record = logging.LogRecord("meeting_governance.x", logging.INFO, __file__, 1,
                               "to <%s>", (EMAIL,), None)
    record.extra_field = f"mailto:{EMAIL}"
    line = JsonFormatter().format(record)
    assert EMAIL.lower() not in line.lower()
    assert "[redacted-address]" in json.loads(line)["extra_field"]


def test_audit_entries_hold_blind_values_only(sqlite_app: AppContext) -> None:
    store_known_plaintext(sqlite_app)
    with sqlite_app.session() as session:
        details = audit.entries(session, limit=1)[0].details
    assert EMAIL.lower() not in details.lower()
    assert sqlite_app.vault.blind_email(EMAIL) in details


ENCODED = ("Dana.Whitfield%40contoso-example.org",  # in a URL: a path segment, a query value
           "dana.whitfield%2540contoso-example.org",  # encoded twice (a URL inside a URL)
           "mail%20eq%20%27Dana.Whitfield%40contoso-example.org%27")  # inside an OData filter


def test_an_address_in_a_url_is_masked_as_well() -> None:
    """An exception's text often holds the URL it failed on, with the address percent-encoded:
    the log, the reasons kept in the database and the audit log treat it as an address."""
    from meeting_governance.states import safe_reason

    for text in ENCODED:
        message = f"GET https://graph.example/v1.0/users?$filter={text} failed"
        record = logging.LogRecord("meeting_governance.x", logging.ERROR, __file__, 1, message,
                                   None, None)
        line = JsonFormatter().format(record)
        assert "whitfield" not in line.lower(), line
        assert "[redacted-address]" in json.loads(line)["msg"]
        assert "whitfield" not in safe_reason(message).lower()
        with pytest.raises(ValueError, match="looks like an e-mail address"):
            audit._check_no_personal_data({"url": message})
