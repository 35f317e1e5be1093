"""Revision 0019: closing an epoch reads its items through one index on (epoch_id, id), a batch
at a time, instead of reading and sorting the rest of the epoch for every batch (quadratic in
the epoch's size; bench/epochs.py). Checked on the schema and on SQLite's own query plan, and
with shredded items among the live ones, which the batches must step over."""

from __future__ import annotations

import secrets

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.dialects import sqlite
from sqlmodel import col, select

from meeting_governance import epochs
from meeting_governance.config import Settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.db import alembic_config, current_revision, make_engine
from meeting_governance.epochs import Owner
from meeting_governance.models import KeyEpoch, VaultItem


def _indexes(engine: object) -> dict[str, list[str]]:
    return {i["name"]: list(i["column_names"]) for i in inspect(engine).get_indexes("vault_item")}


def test_0019_orders_an_epoch_by_index_and_downgrades_cleanly(settings: Settings) -> None:
    initialise(settings, settings.home / "config.toml")
    engine = make_engine(settings.database_url)
    try:
        indexes = _indexes(engine)
        assert indexes["ix_vault_item_epoch_id_id"] == ["epoch_id", "id"]
        assert "ix_vault_item_epoch_id" not in indexes  # the composite serves its lookups
        batch = (select(*epochs.ITEM_COLUMNS)
                 .where(col(VaultItem.epoch_id) == "e", col(VaultItem.id) > "",
                        col(VaultItem.wrapped_key).is_not(None))
                 .order_by(col(VaultItem.id)).limit(500))
        sql = str(batch.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
        if engine.dialect.name == "sqlite":  # PostgreSQL plans by its statistics: none here
            with engine.connect() as conn:
                plan = " ".join(str(row[-1])
                                for row in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}")))
            assert "ix_vault_item_epoch_id_id" in plan and "TEMP B-TREE" not in plan, plan
        command.downgrade(alembic_config(engine), "0018")
        assert current_revision(engine) == "0018"
        indexes = _indexes(engine)
        assert indexes["ix_vault_item_epoch_id"] == ["epoch_id"]
        assert "ix_vault_item_epoch_id_id" not in indexes
    finally:
        engine.dispose()


def test_closing_an_epoch_moves_every_live_item_past_shredded_ones(settings: Settings) -> None:
    """More items than one batch, every third one shredded: the keyset batches step over the
    shredded ones and move every live item; the epoch's key is then destroyed."""
    initialise(settings, settings.home / "config.toml")
    app = AppContext.open(settings)
    try:
        with app.session() as session:
            owners = {f"item-{n:02d}": Owner("test", str(n), "value") for n in range(25)}
            sealed = [app.vault.seal(session, secrets.token_bytes(64), owner=owner,
                                     epoch=epochs.standing("test"), item_id=item_id)
                      for item_id, owner in owners.items()]
            session.flush()
            epoch_id = session.get(VaultItem, sealed[0]).epoch_id
        with app.session() as session:
            for item_id in sealed[::3]:
                app.vault.shred(session, item_id)
        done = epochs.close(app, [epoch_id], reason="test", batch_size=4)
        assert [d.key_id for d in done] == [epoch_id]
        assert done[0].rewrapped == len(sealed) - len(sealed[::3])
        with app.session() as session:
            assert session.get(KeyEpoch, epoch_id).state == epochs.DESTROYED
            live = [session.get(VaultItem, i) for i in sealed if i not in sealed[::3]]
            assert all(v.epoch_id != epoch_id and v.wrapped_key for v in live)
            for item_id in sealed:
                if item_id not in sealed[::3]:
                    assert len(app.vault.open(session, item_id, owner=owners[item_id])) == 64
    finally:
        app.close()
