"""The vault on both engines: round trip, tamper and swap detection, wrong key, shred, rotation,
blind index."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import Session

from meeting_governance.context import AppContext
from meeting_governance.errors import IntegrityError, KeyError_, NotFoundError, ShreddedError
from meeting_governance.keys import FileKeyProvider
from meeting_governance.models import VaultItem
from meeting_governance.vault import Vault, rewrap_all, versions_in_use

from .conftest import flip_bit, raw


def seal(app: AppContext, plaintext: bytes, purpose: str = "transcript") -> str:
    with app.session() as session:
        return app.vault.seal(session, plaintext, purpose=purpose)


def open_(app: AppContext, item_id: str, vault: Vault | None = None) -> bytes:
    with Session(app.engine) as session:
        return (vault or app.vault).open(session, item_id)


def columns(app: AppContext, item_id: str) -> dict[str, Any]:
    rows = raw(app, "SELECT kek_version, wrapped_key, nonce, ciphertext, purpose, shredded_at "
                    "FROM vault_item WHERE id = :id", id=item_id)
    assert len(rows) == 1
    kek_version, wrapped, nonce, ciphertext, purpose, shredded_at = rows[0]
    return {"kek_version": kek_version, "wrapped_key": None if wrapped is None else bytes(wrapped),
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
    with app.session() as session:
        text_id = app.vault.seal_text(session, "Grüße aus Köln — ✓", purpose="subject")
        json_id = app.vault.seal_json(session, value, purpose="transcript")
    with Session(app.engine) as session:
        assert app.vault.open_text(session, text_id) == "Grüße aus Köln — ✓"
        assert app.vault.open_json(session, json_id) == value


def test_large_round_trip(app: AppContext) -> None:
    plaintext = os.urandom(5 * 1024 * 1024)
    item_id = seal(app, plaintext)
    assert open_(app, item_id) == plaintext


def test_caller_chosen_item_id(app: AppContext) -> None:
    with app.session() as session:
        assert app.vault.seal(session, b"abc", purpose="note", item_id="my-id") == "my-id"
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


def test_changed_kek_version_is_detected(app: AppContext) -> None:
    item_id = seal(app, SENTENCE.encode())
    app.keys.add_version()
    set_column(app, item_id, "kek_version", 2)
    with pytest.raises(IntegrityError):
        open_(app, item_id)
    set_column(app, item_id, "kek_version", 7)
    with pytest.raises(KeyError_, match="KEK version 7"):
        open_(app, item_id)


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
    with pytest.raises(IntegrityError, match="keyring is not the one"):
        open_(app, item_id, other_vault)


def test_wrong_keyring_without_that_version(app: AppContext, other_vault: Vault) -> None:
    item_id = seal(app, SENTENCE.encode())
    other_vault.keys.add_version()
    other_vault.keys.retire(1)
    with pytest.raises(KeyError_, match="KEK version 1"):
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
    with Session(app.engine) as session:
        assert versions_in_use(session) == {1: 1}


# -- rotation ------------------------------------------------------------------------------

@pytest.fixture
def sealed(app: AppContext) -> Iterator[dict[str, bytes]]:
    items = {}
    for i in range(7):
        plaintext = f"transcript {i}: {SENTENCE}".encode()
        items[seal(app, plaintext)] = plaintext
    yield items


def test_rotation_rewraps_without_reencrypting(app: AppContext, sealed: dict[str, bytes]) -> None:
    before = {item_id: columns(app, item_id) for item_id in sealed}
    assert app.keys.add_version() == 2
    seen: list[tuple[int, int]] = []
    assert rewrap_all(app.engine, app.vault, batch_size=3,
                      progress=lambda done, total: seen.append((done, total))) == len(sealed)
    assert seen == [(3, 7), (6, 7), (7, 7)]
    with Session(app.engine) as session:
        assert versions_in_use(session) == {2: len(sealed)}
    for item_id, plaintext in sealed.items():
        after = columns(app, item_id)
        assert after["kek_version"] == 2
        assert after["ciphertext"] == before[item_id]["ciphertext"]  # payload untouched
        assert after["nonce"] == before[item_id]["nonce"]
        assert after["wrapped_key"] != before[item_id]["wrapped_key"]
        assert open_(app, item_id) == plaintext
    assert rewrap_all(app.engine, app.vault, batch_size=3) == 0  # a rerun has nothing to do


def test_retired_old_version_still_readable(app: AppContext, sealed: dict[str, bytes]) -> None:
    app.keys.add_version()
    rewrap_all(app.engine, app.vault, batch_size=100)
    app.keys.retire(1)
    reloaded = FileKeyProvider(app.settings.keys_file)  # from disk, as the next process would
    assert reloaded.versions() == [2]
    assert "retired" in app.settings.keys_file.read_text()
    vault = Vault(reloaded)
    for item_id, plaintext in sealed.items():
        assert open_(app, item_id, vault) == plaintext
    new_id = seal(app, b"after rotation")
    assert columns(app, new_id)["kek_version"] == 2
    assert open_(app, new_id, vault) == b"after rotation"


def test_not_rewrapped_and_retired_is_unreadable(app: AppContext,
                                                 sealed: dict[str, bytes]) -> None:
    app.keys.add_version()
    app.keys.retire(1)
    item_id = next(iter(sealed))
    with pytest.raises(KeyError_, match="KEK version 1 is not in"):
        open_(app, item_id)
    with pytest.raises(KeyError_):
        rewrap_all(app.engine, app.vault, batch_size=100)


def test_current_version_cannot_be_retired(app: AppContext) -> None:
    with pytest.raises(KeyError_, match="current"):
        app.keys.retire(app.keys.current_version())


def test_shredded_items_are_not_rewrapped(app: AppContext, sealed: dict[str, bytes]) -> None:
    gone = next(iter(sealed))
    with app.session() as session:
        app.vault.shred(session, gone)
    app.keys.add_version()
    assert rewrap_all(app.engine, app.vault, batch_size=2) == len(sealed) - 1
    assert columns(app, gone)["kek_version"] == 1


# -- blind index ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vault_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Vault, Vault]:
    """Two vaults over two unrelated keyrings (no database needed for the blind index)."""
    vaults = []
    for name in ("one", "two"):
        path = tmp_path_factory.mktemp(name) / "keys" / "keys.json"
        FileKeyProvider.create(path)
        vaults.append(Vault(FileKeyProvider(path)))
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
    assert set(VaultItem.model_fields) == {"id", "purpose", "kek_version", "wrapped_key", "nonce",
                                           "ciphertext", "created_at", "shredded_at"}


def test_keyring_file_is_json_with_versions(app: AppContext) -> None:
    data = json.loads(Path(app.settings.keys_file).read_text())
    assert data["current"] == 1 and list(data["keks"]) == ["1"]
