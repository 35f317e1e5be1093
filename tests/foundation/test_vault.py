"""The vault on both engines: round trip, tamper and swap detection, wrong key, shred, rotation,
blind index."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from meeting_governance import epochs
from meeting_governance.context import AppContext, initialise
from meeting_governance.epochs import EpochPolicy, EpochSpec, Owner, standing
from meeting_governance.errors import IntegrityError, KeyError_, NotFoundError, ShreddedError
from meeting_governance.models import VaultItem
from meeting_governance.vault import Vault
from tests.conftest import make_settings

from .conftest import file_keyring, flip_bit, raw

OWNER = Owner("transcript", "t-1", "content")
EPOCH = standing("test")


@pytest.fixture
def app(home: Path, db_url: str, keyring_kind: dict[str, object]) -> Iterator[AppContext]:
    """An installation on each database with each keyring (file and SoftHSM2 via PKCS#11)."""
    settings = make_settings(home, db_url, keys=keyring_kind)
    initialise(settings, settings.home / "config.toml")
    ctx = AppContext.open(settings)
    ctx.actor = "test"
    try:
        yield ctx
    finally:
        ctx.close()


def seal(app: AppContext, plaintext: bytes, purpose: str = "transcript", *,
         owner: Owner = OWNER, epoch: EpochSpec = EPOCH) -> str:
    with app.session() as session:
        return app.vault.seal(session, plaintext, purpose=purpose, owner=owner, epoch=epoch)


def open_(app: AppContext, item_id: str, vault: Vault | None = None, *,
          owner: Owner = OWNER) -> bytes:
    with Session(app.engine) as session:
        return (vault or app.vault).open(session, item_id, owner=owner)


def columns(app: AppContext, item_id: str) -> dict[str, Any]:
    rows = raw(app, "SELECT epoch_id, wrapped_key, nonce, ciphertext, purpose, shredded_at "
                    "FROM vault_item WHERE id = :id", id=item_id)
    assert len(rows) == 1
    epoch_id, wrapped, nonce, ciphertext, purpose, shredded_at = rows[0]
    return {"epoch_id": epoch_id, "wrapped_key": None if wrapped is None else bytes(wrapped),
            "nonce": None if nonce is None else bytes(nonce),
            "ciphertext": None if ciphertext is None else bytes(ciphertext),
            "purpose": purpose, "shredded_at": shredded_at}


def set_column(app: AppContext, item_id: str, column: str, value: object) -> None:
    raw(app, f"UPDATE vault_item SET {column} = :value WHERE id = :id", value=value, id=item_id)


SENTENCE = "Alice said the quarterly numbers are confidential until Friday."


# -- round trip ----------------------------------------------------------------------------

@pytest.mark.parametrize("plaintext", [b"", b"x", bytes(range(256)), SENTENCE.encode()],
                         ids=["empty", "one-byte", "all-bytes", "sentence"])
def test_bytes_round_trip(app: AppContext, plaintext: bytes) -> None:
    item_id = seal(app, plaintext)
    assert open_(app, item_id) == plaintext


def test_text_and_json_round_trip(app: AppContext) -> None:
    value = {"segments": [{"start": 0.0, "text": "Grüße, 東京 🎉"}], "language": "en"}
    subject = Owner("transcript", "t-1", "subject")
    with app.session() as session:
        text_id = app.vault.seal_text(session, "Grüße aus Köln — ✓", owner=subject, epoch=EPOCH)
        json_id = app.vault.seal_json(session, value, owner=OWNER, epoch=EPOCH)
    with Session(app.engine) as session:
        assert app.vault.open_text(session, text_id, owner=subject) == "Grüße aus Köln — ✓"
        assert app.vault.open_json(session, json_id, owner=OWNER) == value


def test_large_round_trip(app: AppContext) -> None:
    plaintext = os.urandom(5 * 1024 * 1024)
    item_id = seal(app, plaintext)
    assert open_(app, item_id) == plaintext


def test_caller_chosen_item_id(app: AppContext) -> None:
    with app.session() as session:
        assert app.vault.seal(session, b"abc", purpose="note", item_id="my-id", owner=OWNER,
                              epoch=EPOCH) == "my-id"
    assert open_(app, "my-id") == b"abc"


def test_each_seal_uses_a_fresh_data_key_and_nonce(app: AppContext) -> None:
    first, second = seal(app, SENTENCE.encode()), seal(app, SENTENCE.encode())
    a, b = columns(app, first), columns(app, second)
    assert a["nonce"] != b["nonce"]
    assert a["wrapped_key"] != b["wrapped_key"]
    assert a["ciphertext"] != b["ciphertext"]
    assert SENTENCE.encode() not in (a["ciphertext"] or b"")
    assert len(a["nonce"] or b"") == 12


def test_open_missing_item(app: AppContext) -> None:
    with pytest.raises(NotFoundError):
        open_(app, "nope")


# -- tampering -----------------------------------------------------------------------------

@pytest.mark.parametrize("column", ["ciphertext", "nonce", "wrapped_key"])
@pytest.mark.parametrize("where", [0, -1], ids=["first-byte", "last-byte"])
def test_one_flipped_bit_is_detected(app: AppContext, column: str, where: int) -> None:
    item_id = seal(app, SENTENCE.encode())
    original = columns(app, item_id)[column]
    assert isinstance(original, bytes)
    set_column(app, item_id, column, flip_bit(original, where, 3))
    with pytest.raises(IntegrityError):
        open_(app, item_id)


@pytest.mark.parametrize("column", ["ciphertext", "nonce", "wrapped_key"])
def test_truncated_column_is_detected(app: AppContext, column: str) -> None:
    item_id = seal(app, SENTENCE.encode())
    original = columns(app, item_id)[column]
    assert isinstance(original, bytes)
    for length in (0, 5, len(original) - 1):
        set_column(app, item_id, column, original[:length])
        with pytest.raises(IntegrityError):
            open_(app, item_id)


def test_changed_purpose_is_detected(app: AppContext) -> None:
    item_id = seal(app, SENTENCE.encode(), purpose="subject")
    set_column(app, item_id, "purpose", "transcript")
    with pytest.raises(IntegrityError):
        open_(app, item_id)


def test_changed_epoch_is_detected(app: AppContext) -> None:
    item_id = seal(app, SENTENCE.encode())
    other = seal(app, b"x", epoch=standing("elsewhere"))
    set_column(app, item_id, "epoch_id", columns(app, other)["epoch_id"])
    with pytest.raises(IntegrityError):
        open_(app, item_id)
    set_column(app, item_id, "epoch_id", "no-such-key")
    with pytest.raises(KeyError_, match="epoch key no-such-key is not in the"):
        open_(app, item_id)


@pytest.mark.parametrize("column", ["owner_table", "owner_id", "field"])
def test_owner_columns_changed_are_detected(app: AppContext, column: str) -> None:
    """Editing the stored owner to match where the item now sits does not help: the owner is
    in the associated data."""
    item_id = seal(app, SENTENCE.encode())
    moved_to = {"owner_table": "optout", "owner_id": "t-2", "field": "subject"}[column]
    set_column(app, item_id, column, moved_to)
    target = Owner(**{"table": OWNER.table, "id": OWNER.id, "field": OWNER.field,
                      {"owner_table": "table", "owner_id": "id", "field": "field"}[column]: moved_to})
    with pytest.raises(IntegrityError):
        open_(app, item_id, owner=target)


def test_reference_swapped_between_rows_fails_to_open(app: AppContext) -> None:
    """Swapping `content_item` between two transcript rows: each row's reader asks for its own
    owner and gets a clear error instead of the other meeting's text."""
    a_owner, b_owner = Owner("transcript", "A", "content"), Owner("transcript", "B", "content")
    a = seal(app, b"A's meeting", owner=a_owner)
    b = seal(app, b"B's meeting", owner=b_owner)
    with pytest.raises(IntegrityError, match=r"belongs to transcript A \(content\), not to "
                                             r"transcript B \(content\).*moved"):
        open_(app, a, owner=b_owner)
    with pytest.raises(IntegrityError, match="moved"):
        open_(app, b, owner=Owner("transcript", "B", "subject"))  # another field of the same row
    assert open_(app, a, owner=a_owner) == b"A's meeting"


def test_ciphertext_moved_to_another_row_is_detected(app: AppContext) -> None:
    a = seal(app, b"A's secret transcript")
    b = seal(app, b"B's transcript")
    moved = columns(app, a)
    raw(app, "UPDATE vault_item SET ciphertext = :c, nonce = :n, wrapped_key = :w WHERE id = :id",
        c=moved["ciphertext"], n=moved["nonce"], w=moved["wrapped_key"], id=b)
    with pytest.raises(IntegrityError):
        open_(app, b)
    assert open_(app, a) == b"A's secret transcript"


def test_payload_moved_under_another_rows_key_is_detected(app: AppContext) -> None:
    a = seal(app, b"A's secret transcript")
    b = seal(app, b"B's transcript")
    moved = columns(app, a)
    raw(app, "UPDATE vault_item SET ciphertext = :c, nonce = :n WHERE id = :id",
        c=moved["ciphertext"], n=moved["nonce"], id=b)
    with pytest.raises(IntegrityError):
        open_(app, b)


def test_row_renamed_is_detected(app: AppContext) -> None:
    a = seal(app, b"A's secret transcript")
    raw(app, "UPDATE vault_item SET id = 'renamed' WHERE id = :id", id=a)
    with pytest.raises(IntegrityError):
        open_(app, "renamed")


def test_wrong_keyring(app: AppContext, other_vault: Vault) -> None:
    item_id = seal(app, SENTENCE.encode())
    with pytest.raises(KeyError_, match="or this is the wrong keyring"):
        open_(app, item_id, other_vault)


# -- shredding -----------------------------------------------------------------------------

def test_shred(app: AppContext) -> None:
    item_id = seal(app, SENTENCE.encode())
    keep = seal(app, b"keep me")
    with app.session() as session:
        assert app.vault.shred(session, item_id) is True
    with pytest.raises(ShreddedError):
        open_(app, item_id)
    after = columns(app, item_id)
    assert after["wrapped_key"] is None and after["nonce"] is None and after["ciphertext"] is None
    assert after["shredded_at"] is not None
    with app.session() as session:
        assert app.vault.shred(session, item_id) is False  # idempotent
        assert app.vault.shred(session, None) is False
        assert app.vault.shred(session, "no-such-item") is False
    assert open_(app, keep) == b"keep me"


# -- epochs: rotation, retirement, destruction ---------------------------------------------

@pytest.fixture
def sealed(app: AppContext) -> Iterator[dict[str, bytes]]:
    items = {}
    for i in range(7):
        plaintext = f"transcript {i}: {SENTENCE}".encode()
        items[seal(app, plaintext)] = plaintext
    yield items


def test_items_of_one_epoch_share_one_key(app: AppContext, sealed: dict[str, bytes]) -> None:
    keys = {columns(app, i)["epoch_id"] for i in sealed}
    assert len(keys) == 1
    other = seal(app, b"x", epoch=standing("another"))
    assert columns(app, other)["epoch_id"] not in keys
    assert app.keys.exists(keys.pop())


def test_rotation_rewraps_without_reencrypting_and_destroys_the_old_key(
        app: AppContext, sealed: dict[str, bytes]) -> None:
    before = {item_id: columns(app, item_id) for item_id in sealed}
    old_key = next(iter(before.values()))["epoch_id"]
    destroyed = epochs.rotate_all(app, reason="test", batch_size=3)
    assert [d.key_id for d in destroyed] == [old_key]
    assert destroyed[0].rewrapped == len(sealed)
    assert not app.keys.exists(old_key)
    for item_id, plaintext in sealed.items():
        after = columns(app, item_id)
        assert after["epoch_id"] != old_key
        assert after["ciphertext"] == before[item_id]["ciphertext"]  # payload untouched
        assert after["nonce"] == before[item_id]["nonce"]
        assert after["wrapped_key"] != before[item_id]["wrapped_key"]
        assert open_(app, item_id) == plaintext
    # A copy of the rows from before the rotation no longer opens: its key is gone.
    item_id, old = next(iter(before.items()))
    raw(app, "UPDATE vault_item SET epoch_id = :e, wrapped_key = :w WHERE id = :id",
        e=old["epoch_id"], w=old["wrapped_key"], id=item_id)
    with pytest.raises(KeyError_, match="destroyed"):
        open_(app, item_id)


def test_shred_then_settle_destroys_the_key_of_the_shredded_item(
        app: AppContext, sealed: dict[str, bytes]) -> None:
    gone, *kept = list(sealed)
    backup = columns(app, gone)
    with app.session() as session:
        app.vault.shred(session, gone)
    destroyed = epochs.settle(app, reason="test", retire=False)
    assert [d.key_id for d in destroyed] == [backup["epoch_id"]]
    assert destroyed[0].rewrapped == len(kept)  # the survivors moved to a new generation
    assert not app.keys.exists(backup["epoch_id"])
    for item_id in kept:
        assert open_(app, item_id) == sealed[item_id]
    # The shredded item, put back from a backup: its data key cannot be unwrapped.
    raw(app, "UPDATE vault_item SET wrapped_key = :w, nonce = :n, ciphertext = :c, "
             "shredded_at = NULL WHERE id = :id",
        w=backup["wrapped_key"], n=backup["nonce"], c=backup["ciphertext"], id=gone)
    with pytest.raises(KeyError_, match="destroyed"):
        open_(app, gone)
    assert epochs.settle(app, reason="test", retire=False) == []  # nothing left to do


def test_expired_epoch_is_retired_and_survivors_move(app: AppContext) -> None:
    now = app.clock.now()
    due_soon = app.vault.policy.retention(now, now)
    first = seal(app, b"due soon", epoch=due_soon)
    old_key = columns(app, first)["epoch_id"]
    assert due_soon.period_end is not None
    destroyed = epochs.settle(app, as_of=due_soon.period_end, reason="test")
    assert [d.key_id for d in destroyed] == [old_key]
    assert destroyed[0].reason == "period ended"
    moved = columns(app, first)["epoch_id"]
    assert moved != old_key
    assert open_(app, first) == b"due soon"
    status = {s.key_id: s for s in epochs.status(app)}
    assert status[old_key].state == "destroyed" and not status[old_key].in_keyring
    assert status[moved].items == 1 and status[moved].in_keyring


def test_epoch_periods() -> None:
    policy = EpochPolicy(days=7)
    monday = datetime(2026, 3, 2, tzinfo=UTC)
    spec = policy.retention(datetime(2026, 3, 4, 15, tzinfo=UTC), monday)
    assert spec.label == "retention:2026-03-02"
    assert spec.period_end == datetime(2026, 3, 9, tzinfo=UTC)
    assert policy.retention(datetime(2026, 3, 9, tzinfo=UTC), monday).label == "retention:2026-03-09"
    # Never a period already over: a past due date lands in the current one.
    assert policy.retention(datetime(2020, 1, 1, tzinfo=UTC), monday).label == spec.label
    assert EpochPolicy(days=1).retention(monday, monday).period_end == monday + timedelta(days=1)


# -- blind index ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vault_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Vault, Vault]:
    """Two vaults over two unrelated keyrings (no database needed for the blind index)."""
    vaults = []
    for name in ("one", "two"):
        vaults.append(Vault(file_keyring(tmp_path_factory.mktemp(name) / "keys" / "keys.json")))
    return vaults[0], vaults[1]


@pytest.mark.parametrize("variant", ["Alice.Smith@Example.COM", "  alice.smith@example.com\t",
                                     "<alice.smith@example.com>", "mailto:Alice.Smith@example.com",
                                     "ALICE.SMITH@EXAMPLE.COM "])
def test_blind_email_normalises(vault_pair: tuple[Vault, Vault], variant: str) -> None:
    vault = vault_pair[0]
    assert vault.blind_email(variant) == vault.blind_email("alice.smith@example.com")


def test_blind_object_id_normalises(vault_pair: tuple[Vault, Vault]) -> None:
    vault = vault_pair[0]
    oid = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
    assert vault.blind_object_id("{" + oid.upper() + "} ") == vault.blind_object_id(oid)
    assert vault.blind_identities(email="a@b.org", object_id=oid) == [
        vault.blind_email("a@b.org"), vault.blind_object_id(oid)]
    assert vault.blind_identities() == []


def test_blind_is_not_the_value(vault_pair: tuple[Vault, Vault]) -> None:
    blind = vault_pair[0].blind_email("alice@example.com")
    assert len(blind) == 64 and "alice" not in blind
    assert blind != vault_pair[0].blind_email("bob@example.com")


emails = st.from_regex(r"[a-z0-9._%+-]{1,20}@[a-z0-9-]{1,15}\.[a-z]{2,6}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(email=emails, pad=st.sampled_from(["", " ", "\t", "  \n"]))
def test_blind_email_ignores_case_and_whitespace(vault_pair: tuple[Vault, Vault], email: str,
                                                 pad: str) -> None:
    vault = vault_pair[0]
    assert vault.blind_email(pad + email.upper() + pad) == vault.blind_email(email)


@settings(max_examples=200, deadline=None)
@given(value=st.text(min_size=1, max_size=60), other=st.text(min_size=1, max_size=60))
def test_kinds_never_collide(vault_pair: tuple[Vault, Vault], value: str, other: str) -> None:
    vault = vault_pair[0]
    assert vault.blind("email", value) != vault.blind("oid", other)
    assert vault.blind("email", value) != vault.blind("name", value)


@settings(max_examples=100, deadline=None)
@given(email=emails)
def test_blind_differs_between_keyrings(vault_pair: tuple[Vault, Vault], email: str) -> None:
    one, two = vault_pair
    assert one.blind_email(email) != two.blind_email(email)


def test_vault_item_has_no_plaintext_column() -> None:
    assert set(VaultItem.model_fields) == {"id", "purpose", "kek_version", "epoch_id",
                                           "owner_table", "owner_id", "field", "wrapped_key",
                                           "nonce", "ciphertext", "created_at", "shredded_at"}


def test_keyring_file_holds_epoch_keys(app: AppContext) -> None:
    if app.settings.keys.provider != "file":
        pytest.skip("the token keeps its keys")
    item_id = seal(app, b"x")
    data = json.loads(Path(app.settings.keys_file).read_text())
    assert columns(app, item_id)["epoch_id"] in data["epochs"] and data["keks"] == {}
