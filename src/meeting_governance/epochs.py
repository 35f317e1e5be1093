"""Retention epochs: which key wraps which data key, and when each key is destroyed.

Every sealed value has its own data key; the data key is wrapped by the key of exactly one
**epoch**, chosen from what owns the value:

- transcript content, participants and subject: the period (`keys.epoch_days`, by default a
  week, Monday to Monday UTC) in which the transcript's `retain_until` falls
  (`retention:<period start>`);
- a held transcript's items, once their period has ended: the hold epoch (`hold`);
- a recording's subject, sealed before (or without) a transcript: the period in which its
  metadata falls due, `retention.metadata_days` after it was sealed (`metadata:<period start>`);
  once its period ends while its transcript lives, it moves to the transcript's epoch;
- opt-out identity, note and revoke reason, and legal-hold reasons: one standing epoch per
  table (`standing:optout`, `standing:legal_hold`), kept as long as the register.

A label has one *active* key at a time (its generation). Keys are destroyed, never just
deleted from the database, in two ways, both through `close`:

- **retirement**: a retention or metadata period has ended (`period_end <= as_of`): the items
  still alive in it (held, extended, or not yet purged) are re-wrapped under the key their
  owner now calls for, then the key is destroyed;
- **rotation**: an item of a live epoch was shredded (purge, erasure, rectification): the
  label's next generation is created, every surviving item is re-wrapped under it, and the old
  key is destroyed.

So an item leaves an epoch only by being shredded or when that epoch's key is destroyed, and
`settle` keeps the invariant "no key that is still alive ever wrapped a shredded item": a copy
of the database from before a purge, opened with the keyring as it is after, yields nothing
that was purged. `settle` is idempotent and resumes whatever a crash interrupted (an epoch left
`closing`, or one still holding a shredded item).

Concurrency: sealing reads the active epoch `FOR SHARE`; closing marks it `closing` with a row
lock first, so no seal can add an item to an epoch being emptied (SQLite serialises writers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, update
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlmodel import Session, col, select

from meeting_governance.errors import IntegrityError, KeyError_
from meeting_governance.keys import Keyring, new_key_id
from meeting_governance.models import KeyEpoch, VaultItem

if TYPE_CHECKING:
    from meeting_governance.context import AppContext
    from meeting_governance.models import Transcript

log = logging.getLogger(__name__)

ACTIVE, CLOSING, DESTROYED = "active", "closing", "destroyed"
_ANCHOR = date(1970, 1, 5)  # a Monday: weekly periods run Monday to Monday, UTC


@dataclass(frozen=True)
class Owner:
    """Where a sealed value belongs: bound into its associated data."""

    table: str
    id: str
    field: str

    def __str__(self) -> str:
        return f"{self.table} {self.id} ({self.field})"


@dataclass(frozen=True)
class EpochSpec:
    """An epoch as the sealing code names it; `period_end` None: it never retires by date."""

    label: str
    kind: str
    period_end: datetime | None = None


HOLD = EpochSpec("hold", "hold")


def standing(table: str) -> EpochSpec:
    return EpochSpec(f"standing:{table}", "standing")


@dataclass(frozen=True)
class EpochPolicy:
    """The settings epochs depend on (`keys.epoch_days`, `retention.metadata_days`)."""

    days: int = 7
    metadata_days: int = 30

    def _period(self, kind: str, due: datetime) -> EpochSpec:
        day = due.astimezone(UTC).date()
        start = _ANCHOR + timedelta(days=((day - _ANCHOR).days // self.days) * self.days)
        end = datetime.combine(start + timedelta(days=self.days), time(0), tzinfo=UTC)
        return EpochSpec(f"{kind}:{start.isoformat()}", kind, end)

    def retention(self, retain_until: datetime | None, now: datetime) -> EpochSpec:
        """The epoch of a transcript item due at `retain_until` (never one already over)."""
        return self._period("retention", max(retain_until or now, now))

    def metadata(self, anchor: datetime, now: datetime) -> EpochSpec:
        """The epoch of a recording's metadata, due `metadata_days` after `anchor`."""
        return self._period("metadata", max(anchor + timedelta(days=self.metadata_days), now))


# -- the active key of an epoch --------------------------------------------------------------
def active(session: Session, keys: Keyring, spec: EpochSpec, now: datetime) -> KeyEpoch:
    """The key items of `spec` are sealed under now, made on first use.

    Read `FOR SHARE`: an epoch being closed (`FOR UPDATE`) is never handed out.
    """
    for _ in range(3):
        row = session.exec(select(KeyEpoch).where(KeyEpoch.label == spec.label,
                                                  KeyEpoch.state == ACTIVE)
                           .with_for_update(read=True)).first()
        if row is not None:
            return row
        generation = int(session.exec(select(func.coalesce(func.max(KeyEpoch.generation), 0))
                                      .where(KeyEpoch.label == spec.label)).one()) + 1
        key_id = new_key_id()
        printed = keys.create(key_id)
        row = KeyEpoch(id=key_id, label=spec.label, kind=spec.kind, generation=generation,
                       period_end=spec.period_end, state=ACTIVE, fingerprint=printed,
                       created_at=now)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
            return row
        except SAIntegrityError:
            keys.destroy(key_id)  # another worker made this epoch's key first: use theirs
    raise KeyError_(f"could not settle on a key for epoch {spec.label}; try again")


# -- which epoch an item belongs in now ---------------------------------------------------------
class Placement:
    """Decides where the surviving items of a closing epoch go, batch by batch."""

    def __init__(self, session: Session, keys: Keyring, policy: EpochPolicy,
                 now: datetime) -> None:
        from meeting_governance.holds import active_holds

        self.session, self.keys, self.policy, self.now = session, keys, policy, now
        self._holds = active_holds(session)
        self._transcripts: dict[str, Transcript] = {}
        self._held: set[str] = set()
        self._epochs: dict[str, KeyEpoch] = {}

    def prepare(self, items: Sequence[Any]) -> None:
        """Load the owning transcripts of a batch, and which of them are held, in two queries."""
        from meeting_governance.holds import held_filter
        from meeting_governance.models import Transcript

        ids = sorted({i.owner_id for i in items if i.owner_table == "transcript" and i.owner_id}
                     - set(self._transcripts))
        if not ids:
            return
        for row in self.session.exec(select(Transcript).where(col(Transcript.id).in_(ids))).all():
            self._transcripts[row.id] = row
        self._held.update(self.session.exec(select(Transcript.id).where(
            col(Transcript.id).in_(ids), held_filter(self._holds))).all())

    def _transcript(self, row: Transcript) -> EpochSpec:
        if row.legal_hold or row.id in self._held:
            return HOLD
        return self.policy.retention(row.retain_until, self.now)

    def spec_for(self, item: Any) -> EpochSpec:
        # the pipeline's tables load here, not with every command that opens the vault
        from meeting_governance.models import Recording, Transcript

        table, owner_id = item.owner_table or "", item.owner_id or ""
        if table == "transcript":
            row = self._transcripts.get(owner_id) or self.session.get(Transcript, owner_id)
            if row is not None:
                return self._transcript(row)
        if table == "recording" and owner_id.isdigit():
            live = self.session.exec(select(Transcript).where(
                col(Transcript.recording_id) == int(owner_id),
                col(Transcript.purged_at).is_(None))).first()
            if live is not None:
                self.prepare([VaultItem(id="", purpose="", owner_table="transcript",
                                        owner_id=live.id)])
                return self._transcript(live)
            rec = self.session.get(Recording, int(owner_id))
            if rec is not None:
                return self.policy.metadata(rec.updated_at, self.now)
        return standing(table or "unowned")

    def target(self, item: Any) -> KeyEpoch:
        """The active key of the epoch `item` belongs in now."""
        spec = self.spec_for(item)
        epoch = self._epochs.get(spec.label)
        if epoch is None:
            epoch = active(self.session, self.keys, spec, self.now)
            self._epochs[spec.label] = epoch
        return epoch


ITEM_COLUMNS: tuple[Any, ...] = (
    col(VaultItem.id), col(VaultItem.owner_table), col(VaultItem.owner_id), col(VaultItem.field),
    col(VaultItem.purpose), col(VaultItem.wrapped_key), col(VaultItem.epoch_id))


# -- closing epochs -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Destroyed:
    """An epoch key destroyed: named in receipts and the audit log."""

    key_id: str
    label: str
    fingerprint: str
    reason: str
    rewrapped: int


Progress = Callable[[int], None]


def close(app: AppContext, epoch_ids: Iterable[str], *, reason: str, as_of: datetime | None = None,
          batch_size: int = 500, progress: Progress | None = None) -> list[Destroyed]:
    """Empty each epoch (re-wrapping its live items where they now belong) and destroy its key.

    `as_of` (default now) decides the survivors' new epochs, so a time-travelling purge never
    re-wraps into a period that is already over at its own instant.
    """
    when = max(as_of or app.clock.now(), app.clock.now())
    done: list[Destroyed] = []
    for key_id in sorted(set(epoch_ids)):
        result = _close_one(app, key_id, reason, when, batch_size, progress)
        if result is not None:
            done.append(result)
    return done


def _close_one(app: AppContext, key_id: str, reason: str, when: datetime, batch_size: int,
               progress: Progress | None) -> Destroyed | None:
    with app.session() as session:
        row = session.exec(select(KeyEpoch).where(KeyEpoch.id == key_id).with_for_update()).first()
        if row is None or row.state == DESTROYED:
            return None
        row.state = CLOSING
        session.add(row)
    moved = 0
    # Keyset batches over the (epoch_id, id) index: each reads its own rows in order, never
    # the whole rest of the epoch again (that made closing quadratic in the epoch's size).
    # A pass that moved something is followed by one from the start, which finds nothing
    # unless a writer put an item behind it.
    last, from_start = "", True
    while True:
        with app.session() as session:
            epoch = session.get(KeyEpoch, key_id)
            assert epoch is not None
            # Plain rows, not ORM objects: hydrating objects cost more than the crypto.
            items: list[Any] = list(session.execute(
                sa_select(*ITEM_COLUMNS).where(col(VaultItem.epoch_id) == key_id,
                                            col(VaultItem.id) > last,
                                            col(VaultItem.wrapped_key).is_not(None))
                .order_by(col(VaultItem.id)).limit(batch_size).with_for_update()).all())
            if not items:
                if from_start:
                    break
                last, from_start = "", True
                continue
            from_start = False
            last = items[-1].id
            placement = Placement(session, app.keys, app.vault.policy, when)
            placement.prepare(items)
            changes = [app.vault.rewrapped(item, epoch, placement.target(item)) for item in items]
            session.execute(update(VaultItem), changes)  # one statement per batch
            moved += len(items)
            if progress:
                progress(len(items))
    with app.session() as session:
        epoch = session.exec(select(KeyEpoch).where(KeyEpoch.id == key_id).with_for_update()).one()
        left = session.exec(select(func.count()).select_from(VaultItem).where(
            VaultItem.epoch_id == key_id, col(VaultItem.wrapped_key).is_not(None))).one()
        if left:
            raise IntegrityError(f"epoch key {key_id} still wraps {left} items after re-wrapping; "
                                 "run the purge again")
        app.keys.destroy(key_id)
        if app.keys.exists(key_id):
            raise KeyError_(f"the {app.keys.description} did not destroy epoch key {key_id}")
        epoch.state = DESTROYED
        epoch.destroyed_at = app.clock.now()
        epoch.destroyed_reason = reason[:40]
        session.add(epoch)
        app.audit(session, "keys.epoch_destroyed", target_type="key_epoch", target_id=key_id,
                  label=epoch.label, fingerprint=epoch.fingerprint, reason=reason,
                  rewrapped=moved)
        log.info("epoch key destroyed", extra={"key_id": key_id, "reason": reason,
                                               "rewrapped": moved})
        return Destroyed(key_id, epoch.label, epoch.fingerprint, reason, moved)


def dirty(session: Session) -> list[str]:
    """Keys still alive that wrapped an item since shredded (or left half-closed by a crash)."""
    shredded = select(VaultItem.epoch_id).where(col(VaultItem.shredded_at).is_not(None),
                                                col(VaultItem.epoch_id) == KeyEpoch.id)
    rows = session.exec(select(KeyEpoch.id).where(
        col(KeyEpoch.state) != DESTROYED,
        (col(KeyEpoch.state) == CLOSING) | shredded.exists())).all()
    return sorted(rows)


def expired(session: Session, as_of: datetime) -> list[str]:
    """Retention and metadata epochs whose period is over."""
    return sorted(session.exec(select(KeyEpoch.id).where(
        col(KeyEpoch.state) != DESTROYED, col(KeyEpoch.period_end).is_not(None),
        col(KeyEpoch.period_end) <= as_of)).all())


def settle(app: AppContext, *, as_of: datetime | None = None, reason: str, retire: bool = True,
           batch_size: int = 500) -> list[Destroyed]:
    """Rotate every epoch that lost an item; with `retire`, retire every epoch whose period
    ended (the purge does; an erasure or a rectification leaves that to the purge)."""
    as_of = as_of or app.clock.now()
    with app.session() as session:
        rotate = dirty(session)
        ended = [k for k in expired(session, as_of) if k not in rotate] if retire else []
    return (close(app, rotate, reason=reason, as_of=as_of, batch_size=batch_size)
            + close(app, ended, reason="period ended", as_of=as_of, batch_size=batch_size))


def rotate_all(app: AppContext, *, reason: str, batch_size: int = 500,
               progress: Progress | None = None) -> list[Destroyed]:
    """`keys rotate`: every live key replaced by a new generation, the old ones destroyed."""
    with app.session() as session:
        ids = list(session.exec(select(KeyEpoch.id).where(col(KeyEpoch.state) != DESTROYED)).all())
    return close(app, ids, reason=reason, batch_size=batch_size, progress=progress)


@dataclass(frozen=True)
class EpochStatus:
    key_id: str
    label: str
    generation: int
    state: str
    items: int
    fingerprint: str
    created_at: datetime
    period_end: datetime | None
    destroyed_at: datetime | None
    destroyed_reason: str
    in_keyring: bool


def status(app: AppContext, *, include_destroyed: bool = True) -> list[EpochStatus]:
    """Every epoch, its live items, and whether the keyring still has its key."""
    with app.session() as session:
        counts: dict[str, int] = {str(e): int(n) for e, n in session.exec(
            select(VaultItem.epoch_id, func.count()).where(col(VaultItem.wrapped_key).is_not(None))
            .group_by(col(VaultItem.epoch_id))).all() if e}
        query = select(KeyEpoch)
        if not include_destroyed:
            query = query.where(col(KeyEpoch.state) != DESTROYED)
        rows: Sequence[KeyEpoch] = session.exec(query.order_by(col(KeyEpoch.label),
                                                               col(KeyEpoch.generation))).all()
    present = set(app.keys.key_ids())
    return [EpochStatus(r.id, r.label, r.generation, r.state, counts.get(r.id, 0), r.fingerprint,
                        r.created_at, r.period_end, r.destroyed_at, r.destroyed_reason,
                        r.id in present) for r in rows]


def payload_owner(item: Any) -> Owner:
    """The owner an item records (a `VaultItem` or a row of `ITEM_COLUMNS`)."""
    return Owner(item.owner_table or "unowned", item.owner_id or item.id, item.field or item.purpose)


__all__ = ["ACTIVE", "CLOSING", "DESTROYED", "HOLD", "Destroyed", "EpochPolicy", "EpochSpec",
           "EpochStatus", "Owner", "Placement", "active", "close", "dirty", "expired",
           "rotate_all", "settle", "standing", "status"]
