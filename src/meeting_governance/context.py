"""The objects every command and job shares, built once from the configuration.

Graph, the database, the keys and the clock are passed in from here, so the core stays pure
and tests can hand in their own (a FixedClock, a PostgreSQL schema, an emulator URL).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlmodel import Session

from meeting_governance.clock import Clock, SystemClock
from meeting_governance.config import Settings, packaged_default_toml
from meeting_governance.db import make_engine, migrate, session_scope
from meeting_governance.errors import KeyError_

if TYPE_CHECKING:
    from meeting_governance.keys import Keyring
    from meeting_governance.vault import Vault


class AppContext:
    """Settings, engine, clock — and the keys and the vault, opened the first time a command or
    job reaches for them: a command that only lists rows never loads the keyring or the
    cryptography (bench/cli.py)."""

    def __init__(self, settings: Settings, engine: Engine, clock: Clock, *,
                 keys: Keyring | None = None, vault: Vault | None = None,
                 actor: str | None = None) -> None:
        self.settings, self.engine, self.clock = settings, engine, clock
        self._keys, self._vault = keys, vault
        self._opening = threading.Lock()  # the daemon's job threads share one context
        self.actor = actor or f"cli:{os.environ.get('USER', 'unknown')}"

    @property
    def keys(self) -> Keyring:
        if self._keys is None:
            with self._opening:
                if self._keys is None:
                    from meeting_governance.keys import provider_from_settings

                    self._keys = provider_from_settings(self.settings)
        return self._keys

    @property
    def vault(self) -> Vault:
        if self._vault is None:
            keys = self.keys
            with self._opening:
                if self._vault is None:
                    from meeting_governance.epochs import EpochPolicy
                    from meeting_governance.vault import Vault

                    self._vault = Vault(keys, self.clock, EpochPolicy(
                        days=self.settings.keys.epoch_days,
                        metadata_days=self.settings.retention.metadata_days))
        return self._vault

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock | None = None,
             apply_migrations: bool = True) -> AppContext:
        """Connect and bring the schema up to date (migrations at start)."""
        clock = clock or SystemClock()
        engine = make_engine(settings.database_url,
                             busy_timeout_ms=settings.database.busy_timeout_ms,
                             pool_size=settings.database.pool_size, echo=settings.database.echo)
        if apply_migrations:
            migrate(engine)
        if settings.keys.provider in ("file", "pkcs11"):  # the keys load on first use; their
            from meeting_governance.keyring_path import check_keyring_file  # file's rules now

            try:
                check_keyring_file(settings.keys_file)
            except KeyError_:
                engine.dispose()
                raise
        return cls(settings=settings, engine=engine, clock=clock)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction (commit on success, rollback on error)."""
        with session_scope(self.engine) as session:
            yield session

    def audit(self, session: Session, action: str, *, target_type: str = "",
              target_id: str = "", actor: str | None = None, **details: object) -> None:
        from meeting_governance import audit

        audit.append(session, actor=actor or self.actor, action=action, target_type=target_type,
                     target_id=target_id, details=dict(details), clock=self.clock)

    def close(self) -> None:
        self.engine.dispose()


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class InitReport:
    created: tuple[str, ...]
    existing: tuple[str, ...]
    migrations: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.created or self.migrations)


def private_dir(path: Path) -> bool:
    """Create (or tighten) a directory only this user can enter; True if it was created."""
    created = not path.exists()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return created


def write_default_config(path: Path) -> bool:
    """Copy the documented defaults to `path` (0600) unless a file is there; True if written."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(packaged_default_toml(), path)
    os.chmod(path, 0o600)
    return True


def initialise(settings: Settings, config_file: Path | None, *,
               clock: Clock | None = None) -> InitReport:
    """Create what is missing — config, data dir, keyring, database — and change nothing else."""
    created: list[str] = []
    existing: list[str] = []
    clock = clock or SystemClock()
    home = settings.home
    (created if private_dir(home) else existing).append(f"data dir {home}")
    for sub in (settings.staging_dir, settings.receipts_dir, settings.log_file.parent,
                settings.checkpoint_file.parent):
        (created if private_dir(sub) else existing).append(f"directory {sub}")
    target_cfg = config_file or home / "config.toml"
    if write_default_config(target_cfg):
        created.append(f"config {target_cfg}")
    else:
        existing.append(f"config {target_cfg}")
    from meeting_governance.keyring_file import create_keyring_file
    from meeting_governance.vault import migrate_legacy

    if settings.keys.provider in ("file", "pkcs11"):
        if create_keyring_file(settings.keys_file):
            created.append(f"keyring {settings.keys_file} (0600) — back it up: without it "
                           "nothing stored can be read")
        else:
            existing.append(f"keyring {settings.keys_file}")
    ctx = AppContext.open(settings, clock=clock, apply_migrations=False)
    try:
        applied = migrate(ctx.engine)
        with ctx.session() as session:
            if applied:
                ctx.audit(session, "system.init", target_type="database",
                          migrations=",".join(applied))
        # Items sealed before epoch keys: re-sealed now, then their KEK versions retired.
        resealed = migrate_legacy(ctx.engine, ctx.vault,
                                  batch_size=settings.keys.rotate_batch_size)
        if resealed:
            created.append(f"{resealed} vault items re-sealed under epoch keys (old KEKs retired)")
            with ctx.session() as session:
                ctx.audit(session, "keys.migrate", target_type="vault", items=resealed)
        if not applied:
            existing.append("database schema (up to date)")
        if applied or not settings.checkpoint_file.exists():
            from meeting_governance import checkpoints

            checkpoints.take(ctx, reason="init")
    finally:
        ctx.close()
    return InitReport(tuple(created), tuple(existing), tuple(applied))
