#!/usr/bin/env python3
"""Vault: store and read back N transcripts of 50 KB through the vault, against raw AES-GCM.

    python bench/vault.py [--quick] [--count 10000] [--size 51200] [--batch 200] [--repeats 3]

Side by side in one run, in turns (vault, raw, vault, raw…) on fresh databases each repeat:

- vault: `Vault.seal` into the real SQLite database of an initialised installation (migrations,
  WAL, secure_delete), one transaction per batch; then `Vault.open` of every item by id, one
  session per batch. Each item gets its own data key, wrapped by the KEK, with associated data.
- raw:   cryptography's `AESGCM` with one key and a random nonce, the same payloads, rows
  (id, nonce, ciphertext) inserted in the same batches into a plain table of a SQLite database
  opened with the same engine settings; then read back by id and decrypted.
- crypto only: the same two, in memory, without a database (what the envelope itself costs).

`--quick` stores 1 000 items instead of 10 000. Prints one JSON document; see bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any, cast

from common import emit, figure, peak_rss_mb, progress, quick_mode, time_once
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, Engine, LargeBinary, MetaData, String, Table, insert, select
from sqlmodel import Session

from meeting_governance import epochs
from meeting_governance.config import load_settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.db import checkpoint, make_engine
from meeting_governance.epochs import Owner, standing
from meeting_governance.models import KeyEpoch
from meeting_governance.vault import Vault

EPOCH = standing("bench")


def owner(index: int) -> Owner:
    return Owner("transcript", f"t{index}", "content")

WORDS = ("the budget review moves to Thursday and the vendor contract needs legal sign off "
         "before we commit to the second phase of the migration so please send your numbers "
         "by Friday and flag any risk to the timeline in the shared tracker").split()


class Payloads:
    """Transcript-like text of a fixed size, distinct per item, cheap to produce on demand."""

    def __init__(self, size: int, seed: int = 7) -> None:
        rng = random.Random(seed)
        text = []
        length = 0
        while length < 2 * size + 4096:
            sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))) + ". "
            stamp = f"[{rng.randint(0, 3599):04d}s] speaker {rng.randint(1, 9)}: "
            text.append(stamp + sentence)
            length += len(stamp) + len(sentence)
        self.base = "".join(text).encode("utf-8")
        self.size = size

    def __call__(self, index: int) -> bytes:
        offset = (index * 7919) % self.size
        header = f"transcript {index:08d}\n".encode()
        return header + self.base[offset:offset + self.size - len(header)]


class _Collector:
    """Stands in for a Session in the in-memory case: the vault only calls `add`."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, item: Any) -> None:
        self.items.append(item)


RAW_META = MetaData()
RAW_TABLE = Table("raw_item", RAW_META, Column("id", String(64), primary_key=True),
                  Column("nonce", LargeBinary, nullable=False),
                  Column("ciphertext", LargeBinary, nullable=False))


# -- the vault -----------------------------------------------------------------------------

def open_app(home: Path) -> AppContext:
    settings = load_settings(None, home=home)
    initialise(settings, home / "config.toml")
    return AppContext.open(settings)


def vault_store(app: AppContext, payload: Payloads, count: int, batch: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, batch):
        with app.session() as session:
            for index in range(start, min(count, start + batch)):
                ids.append(app.vault.seal(session, payload(index), purpose="transcript",
                                          owner=owner(index), epoch=EPOCH))
    return ids


def vault_read(app: AppContext, ids: list[str], batch: int) -> int:
    total = 0
    for start in range(0, len(ids), batch):
        with Session(app.engine) as session:
            for index, item_id in enumerate(ids[start:start + batch], start):
                total += len(app.vault.open(session, item_id, owner=owner(index)))
    return total


# -- the baseline: raw AES-GCM, one key ----------------------------------------------------

def raw_engine(path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{path}")
    RAW_META.create_all(engine)
    return engine


def raw_store(engine: Engine, aes: AESGCM, payload: Payloads, count: int, batch: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, batch):
        rows = []
        for index in range(start, min(count, start + batch)):
            nonce = secrets.token_bytes(12)
            item_id = uuid.uuid4().hex
            rows.append({"id": item_id, "nonce": nonce,
                         "ciphertext": aes.encrypt(nonce, payload(index), None)})
            ids.append(item_id)
        with engine.begin() as conn:
            conn.execute(insert(RAW_TABLE), rows)
    return ids


def raw_read(engine: Engine, aes: AESGCM, ids: list[str], batch: int) -> int:
    total = 0
    query = select(RAW_TABLE.c.nonce, RAW_TABLE.c.ciphertext)
    for start in range(0, len(ids), batch):
        with engine.connect() as conn:
            for item_id in ids[start:start + batch]:
                nonce, ciphertext = conn.execute(query.where(RAW_TABLE.c.id == item_id)).one()
                total += len(aes.decrypt(nonce, ciphertext, None))
    return total


# -- in memory: what the envelope costs ----------------------------------------------------

def vault_crypto(vault: Vault, epoch: KeyEpoch, payload: Payloads, count: int,
                 batch: int) -> int:
    total = 0
    for start in range(0, count, batch):
        collector = _Collector()
        session = cast(Session, collector)
        for index in range(start, min(count, start + batch)):
            vault.seal(session, payload(index), purpose="transcript", owner=owner(index),
                       epoch=epoch)
        for index, item in enumerate(collector.items, start):
            total += len(vault.open_item(item, owner=owner(index)))
    return total


def raw_crypto(aes: AESGCM, payload: Payloads, count: int, batch: int) -> int:
    total = 0
    for start in range(0, count, batch):
        sealed = []
        for index in range(start, min(count, start + batch)):
            nonce = secrets.token_bytes(12)
            sealed.append((nonce, aes.encrypt(nonce, payload(index), None)))
        for nonce, ciphertext in sealed:
            total += len(aes.decrypt(nonce, ciphertext, None))
    return total


def db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def verify_sample(app: AppContext, ids: list[str], engine: Engine, aes: AESGCM,
                  raw_ids: list[str], payload: Payloads) -> None:
    """Untimed: a sample of both stores reads back exactly what went in."""
    rng = random.Random(1)
    for index in rng.sample(range(len(ids)), min(50, len(ids))):
        with Session(app.engine) as session:
            if app.vault.open(session, ids[index], owner=owner(index)) != payload(index):
                raise SystemExit(f"vault item {index} did not read back")
        with engine.connect() as conn:
            nonce, ciphertext = conn.execute(
                select(RAW_TABLE.c.nonce, RAW_TABLE.c.ciphertext)
                .where(RAW_TABLE.c.id == raw_ids[index])).one()
        if aes.decrypt(nonce, ciphertext, None) != payload(index):
            raise SystemExit(f"raw item {index} did not read back")


def one_repeat(run_dir: Path, payload: Payloads, count: int, batch: int, *,
               verify: bool) -> tuple[dict[str, float], dict[str, int]]:
    """One repeat on fresh databases: every case once, in turns; sizes when `verify`."""
    app = open_app(run_dir / "home")
    engine = raw_engine(run_dir / "raw" / "raw.db")
    aes = AESGCM(AESGCM.generate_key(bit_length=256))
    times: dict[str, float] = {}
    sizes: dict[str, int] = {}
    try:
        ids: list[str] = []
        raw_ids: list[str] = []
        times["vault_store"] = time_once(
            lambda: ids.extend(vault_store(app, payload, count, batch)))
        times["raw_store"] = time_once(
            lambda: raw_ids.extend(raw_store(engine, aes, payload, count, batch)))
        expected = sum(len(payload(i)) for i in range(count))
        read: dict[str, int] = {}
        times["vault_read"] = time_once(
            lambda: read.__setitem__("vault", vault_read(app, ids, batch)))
        times["raw_read"] = time_once(
            lambda: read.__setitem__("raw", raw_read(engine, aes, raw_ids, batch)))
        if read != {"vault": expected, "raw": expected}:
            raise SystemExit(f"read back {read} bytes, expected {expected} each")
        with app.session() as session:
            key = epochs.active(session, app.keys, EPOCH, app.clock.now())
        times["vault_crypto"] = time_once(lambda: vault_crypto(app.vault, key, payload, count,
                                                               batch))
        times["raw_crypto"] = time_once(lambda: raw_crypto(aes, payload, count, batch))
        if verify:
            verify_sample(app, ids, engine, aes, raw_ids, payload)
            checkpoint(app.engine)
            checkpoint(engine)
            sizes["vault"] = db_bytes(Path(app.settings.database_url.split("///", 1)[1]))
            sizes["raw"] = db_bytes(run_dir / "raw" / "raw.db")
    finally:
        app.close()
        engine.dispose()
        shutil.rmtree(run_dir, ignore_errors=True)
    return times, sizes


def run(count: int, size: int, batch: int, repeats: int, workdir: Path | None) -> dict[str, Any]:
    payload = Payloads(size)
    megabytes = count * size / 1e6
    times: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    root = Path(tempfile.mkdtemp(prefix="mg-bench-vault-", dir=workdir))
    try:
        for repeat in range(repeats):
            progress(f"repeat {repeat + 1}/{repeats}: {count} items of {size} bytes")
            once, measured = one_repeat(root / f"r{repeat}", payload, count, batch,
                                        verify=repeat == repeats - 1)
            for name, seconds in once.items():
                times.setdefault(name, []).append(seconds)
            sizes.update(measured)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def median(name: str) -> float:
        values = sorted(times[name])
        return values[len(values) // 2] if len(values) % 2 else sum(
            values[len(values) // 2 - 1:len(values) // 2 + 1]) / 2

    totals_vault = sorted(s + r for s, r in zip(times["vault_store"], times["vault_read"],
                                                strict=True))
    totals_raw = sorted(s + r for s, r in zip(times["raw_store"], times["raw_read"], strict=True))
    total_vault = totals_vault[len(totals_vault) // 2]
    total_raw = totals_raw[len(totals_raw) // 2]
    label = f"{count} x {size // 1024} KB, batches of {batch}, median of {repeats}"
    figures = {
        "store_and_read": figure(total_vault, "s", baseline=total_raw,
                                 notes=f"vault seal+open through SQLite vs raw AES-GCM (one key) "
                                       f"through SQLite; {label}"),
        "store": figure(median("vault_store"), "s", baseline=median("raw_store"),
                        notes=f"{megabytes / median('vault_store'):.0f} MB/s through the vault"),
        "read": figure(median("vault_read"), "s", baseline=median("raw_read"),
                       notes=f"{megabytes / median('vault_read'):.0f} MB/s through the vault"),
        "crypto_only": figure(median("vault_crypto"), "s", baseline=median("raw_crypto"),
                              notes="seal+open in memory, no database: the envelope plus building "
                                    "the VaultItem row object (about 2/3 of it, by cProfile)"),
        "db_bytes_per_item": figure(sizes["vault"] / count, "B", baseline=sizes["raw"] / count,
                                    digits=0, notes="database file size per stored item"),
        "peak_rss": figure(peak_rss_mb(), "MiB", digits=1, notes="whole benchmark process"),
    }
    details = {"count": count, "size_bytes": size, "batch": batch, "repeats": repeats,
               "plaintext_mb": round(megabytes, 1),
               "runs_s": {k: [round(v, 4) for v in vals] for k, vals in times.items()},
               "items_per_s": {"vault_store": round(count / median("vault_store"), 1),
                               "vault_read": round(count / median("vault_read"), 1),
                               "raw_store": round(count / median("raw_store"), 1),
                               "raw_read": round(count / median("raw_read"), 1)}}
    return {"figures": figures, "details": details}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 000 items (smoke run)")
    parser.add_argument("--count", type=int, help="items to store (default 10 000; quick 1 000)")
    parser.add_argument("--size", type=int, default=50 * 1024, help="bytes per transcript")
    parser.add_argument("--batch", type=int, default=200, help="items per transaction")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="where the temporary databases go")
    args = parser.parse_args(argv)
    for name in [n for n in os.environ if n.startswith("MG_")]:
        del os.environ[name]  # a developer's own installation must not leak in
    quick = quick_mode(args.quick)
    count = args.count or (1_000 if quick else 10_000)
    result = run(count, args.size, args.batch, args.repeats, args.workdir)
    emit("vault", result["figures"], result["details"], quick=quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
