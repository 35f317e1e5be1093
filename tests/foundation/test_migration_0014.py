"""Revision 0014 on a database that already holds data sealed the old way (one KEK version for
everything): `init` upgrades the schema, re-seals every item under its epoch key with owner-bound
associated data, and retires the old KEK — after which a backup from before the upgrade no longer
opens with the keyring."""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from sqlmodel import Session, select

from meeting_governance.config import Settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.db import alembic_config, make_engine
from meeting_governance.errors import KeyError_
from meeting_governance.holds import list_holds
from meeting_governance.keyring_file import create_keyring_file
from meeting_governance.models import KeyEpoch, VaultItem
from meeting_governance.optouts import list_optouts
from meeting_governance.store import read_content
from tests.conftest import make_settings

KEK = AESGCM.generate_key(bit_length=256)
BACKUP: dict[str, bytes] = {}  # the wrapped keys as a backup taken before the upgrade has them
NOW = datetime.now(UTC)


def legacy_item(conn, item_id: str, purpose: str, plaintext: bytes | None) -> None:  # type: ignore[no-untyped-def]
    """A vault row exactly as the vault before epoch keys wrote it."""
    if plaintext is None:
        conn.execute(text("INSERT INTO vault_item (id, purpose, kek_version, created_at, "
                          "shredded_at) VALUES (:i, :p, 1, :t, :t)"), {"i": item_id, "p": purpose,
                                                                        "t": NOW})
        return
    data_key, nonce, wrap_nonce = AESGCM.generate_key(bit_length=256), secrets.token_bytes(12), \
        secrets.token_bytes(12)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext,
                                          b"|".join((b"mg-vault/1", b"payload", item_id.encode(),
                                                     purpose.encode())))
    wrapped = wrap_nonce + AESGCM(KEK).encrypt(wrap_nonce, data_key, b"|".join(
        (b"mg-vault/1", b"data-key", item_id.encode(), b"1")))
    conn.execute(text("INSERT INTO vault_item (id, purpose, kek_version, wrapped_key, nonce, "
                      "ciphertext, created_at) VALUES (:i, :p, 1, :w, :n, :c, :t)"),
                 {"i": item_id, "p": purpose, "w": wrapped, "n": nonce, "c": ciphertext, "t": NOW})


def old_installation(settings: Settings) -> dict[str, str]:
    """A keyring with KEK version 1 and a database at revision 0002 full of sealed data."""
    create_keyring_file(settings.keys_file)
    doc = json.loads(settings.keys_file.read_text())
    doc.update(current=1, keks={"1": base64.b64encode(KEK).decode()})
    settings.keys_file.write_text(json.dumps(doc))
    engine = make_engine(settings.database_url)
    command.upgrade(alembic_config(engine), "0002")
    tid, oid, hid = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    ids = {name: uuid.uuid4().hex for name in ("content", "participants", "subject", "rec_subject",
                                                  "identity", "reason", "shredded", "orphan")}
    with engine.begin() as conn:
        legacy_item(conn, ids["content"], "transcript",
                    json.dumps({"segments": [{"start": 0, "end": 1, "text": "old minutes"}]}).encode())
        legacy_item(conn, ids["participants"], "participants", b'[{"email": "a@example.org"}]')
        legacy_item(conn, ids["subject"], "subject", b"Old board meeting")
        legacy_item(conn, ids["rec_subject"], "subject", b"Old board meeting (recording)")
        legacy_item(conn, ids["identity"], "optout-identity",
                    json.dumps({"name": "Olga", "email": "olga@example.org", "object_id": None,
                                "meeting": None}).encode())
        legacy_item(conn, ids["reason"], "hold-reason", b"complaint of Olga")
        legacy_item(conn, ids["shredded"], "transcript", None)
        legacy_item(conn, ids["orphan"], "note", b"referenced by nothing")
        conn.execute(text("INSERT INTO recording (id, graph_recording_id, meeting_id, organizer_id, "
                          "subject_item, state, reason, attempts, first_seen_at, updated_at) "
                          "VALUES (7, 'g-7', 'm-7', 'org', :s, 'stored', '', 0, :t, :t)"),
                     {"s": ids["rec_subject"], "t": NOW})
        conn.execute(text(
            "INSERT INTO transcript (id, recording_id, meeting_id, organizer_id, duration_s, "
            "language, model, version, content_item, participants_item, subject_item, "
            "retention_policy, retain_until, legal_hold, created_at, updated_at, purge_reason) "
            "VALUES (:id, 7, 'm-7', 'org', 60, 'en', 'tiny.en', 1, :c, :p, :s, 'standard', :r, "
            ":f, :t, :t, '')"),
            {"id": tid, "c": ids["content"], "p": ids["participants"], "s": ids["subject"],
             "r": NOW + timedelta(days=30), "t": NOW, "f": False})
        conn.execute(text(
            "INSERT INTO optout (id, identity_item, scope, covers_recording, covers_transcription, "
            "created_by, created_at) VALUES (:id, :i, 'all', :y, :y, 'test', :t)"),
            {"id": oid, "i": ids["identity"], "t": NOW, "y": True})
        conn.execute(text("INSERT INTO legal_hold (id, transcript_id, reason_item, set_by, set_at) "
                          "VALUES (:id, :tid, :r, 'test', :t)"),
                     {"id": hid, "tid": tid, "r": ids["reason"], "t": NOW})
        BACKUP.update({r[0]: bytes(r[1]) for r in conn.execute(text(
            "SELECT id, wrapped_key FROM vault_item WHERE wrapped_key IS NOT NULL"))})
    engine.dispose()
    return {**ids, "transcript": tid}


def test_upgrade_reseals_old_data_and_retires_the_old_kek(home: Path, db_url: str) -> None:
    settings = make_settings(home, db_url)
    ids = old_installation(settings)
    initialise(settings, settings.home / "config.toml")
    app = AppContext.open(settings)
    try:
        with Session(app.engine) as session:
            items = {i.id: i for i in session.exec(select(VaultItem)).all()}
            live = [i for i in items.values() if i.wrapped_key is not None]
            assert live and all(i.epoch_id and i.kek_version == 0 for i in live)
            assert (items[ids["content"]].owner_table, items[ids["content"]].field) == (
                "transcript", "content")
            assert items[ids["rec_subject"]].owner_id == "7"
            assert items[ids["orphan"]].owner_table == "unowned"  # kept, never lost
            from meeting_governance.models import Transcript

            row = session.get(Transcript, ids["transcript"])
            assert row is not None
            assert read_content(app, session, row)["segments"][0]["text"] == "old minutes"
            [view] = list_optouts(app, session)
            assert view.email == "olga@example.org"
            labels = {e.label for e in session.exec(select(KeyEpoch)).all()}
            assert {"standing:optout", "standing:legal_hold"} <= labels
            assert "hold" in labels  # the transcript is under legal hold: the hold epoch
        assert [h.reason for h in list_holds(app, with_reasons=True)] == ["complaint of Olga"]
        assert app.keys.legacy_versions() == []  # the old KEK is gone from the keyring
        assert base64.b64encode(KEK).decode() not in settings.keys_file.read_text()
        # A backup from before the upgrade holds this row, wrapped by KEK 1 only: unreadable now.
        wrapped = BACKUP[ids["content"]]
        with pytest.raises(KeyError_, match="KEK version 1 is not in"):
            app.keys.legacy_unwrap(1, wrapped, b"|".join(
                (b"mg-vault/1", b"data-key", ids["content"].encode(), b"1")))
        # A second init has nothing left to migrate.
        again = initialise(settings, settings.home / "config.toml")
        assert not any("re-sealed" in line for line in again.created)
    finally:
        app.close()
