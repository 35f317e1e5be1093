#!/usr/bin/env python3
"""Epoch keys: what destroying keys costs — erasure of one person and a purge, with rotation.

    python bench/epochs.py [--quick] [--count 100000] [--weeks 13] [--batch 500]

Three measurements, on SQLite with the file keyring, in one run:

- **wrap cost**: wrapping and unwrapping one 32-byte data key under an epoch key, per call —
  the file keyring (AES-GCM in process) and, when SoftHSM2 is installed, the PKCS#11 keyring
  (AES-GCM inside the token) — against a bare `AESGCM.encrypt` of the same 32 bytes (baseline).
- **erasure of one person among N transcripts** spread over `--weeks` retention epochs (the
  person attends about 2N/997 meetings, in every epoch): `dsr.erase_person` end to end, whose
  cost is the rotation of every epoch the person appears in (every other item of those epochs
  re-wrapped). Baseline: the same erasure's shredding alone (before `epochs.settle`), i.e. what
  erasure cost before epoch keys.
- **purge of N transcripts** due in `--weeks` epochs: `purge()` end to end, with the epoch keys
  destroyed at the end; baseline: its shred-and-tombstone batches alone.

`--quick` uses 2 000 transcripts. Prints one JSON document (numbers only).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import REPO, emit, figure, peak_rss_mb, progress, quick_mode
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from meeting_governance import epochs
from meeting_governance.clock import FixedClock
from meeting_governance.config import load_settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.db import checkpoint
from meeting_governance.keys import Keyring, new_key_id

sys.path.insert(0, str(REPO))
from tests.retention.seeding import bulk_seed  # the tests' bulk loader, reused

NOW = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday: epochs start on Mondays
QUICK_ARGS = ["--quick"]
FULL_ARGS: list[str] = []
TIMEOUT_S = 3600


def per_call(fn: Any, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def wrap_costs(keys: Keyring, calls: int) -> dict[str, float]:
    key_id = new_key_id()
    keys.create(key_id)
    data_key, aad = secrets.token_bytes(32), b"mg-vault/2|data-key|bench"
    wrapped = keys.wrap(key_id, data_key, aad)
    bare = AESGCM(AESGCM.generate_key(bit_length=256))
    nonce = secrets.token_bytes(12)
    out = {"wrap_s": per_call(lambda: keys.wrap(key_id, data_key, aad), calls),
           "unwrap_s": per_call(lambda: keys.unwrap(key_id, wrapped, aad), calls),
           "bare_s": per_call(lambda: bare.encrypt(nonce, data_key, aad), calls)}
    keys.destroy(key_id)
    return out


def softhsm_costs(root: Path, calls: int) -> dict[str, float] | None:
    """The same through SoftHSM2, when installed (its own token directory)."""
    library = "/usr/lib/softhsm/libsofthsm2.so"
    if not (os.path.isfile(library) and shutil.which("softhsm2-util")):
        return None
    (root / "tokens").mkdir(parents=True)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin",
                    "1234", "--so-pin", "1234"], check=True, capture_output=True)
    from meeting_governance.keyring_pkcs11 import Pkcs11Store

    store = Pkcs11Store(library, "bench", "1234")
    from meeting_governance.keys import Secrets, new_keyring

    return wrap_costs(Keyring(Secrets(new_keyring(), "bench"), store), calls)


def installation(root: Path) -> AppContext:
    settings = load_settings(None, home=root / "home")
    initialise(settings, settings.home / "config.toml")
    return AppContext.open(settings, clock=FixedClock(NOW))


def seed(app: AppContext, count: int, weeks: int) -> None:
    per_week = count // weeks
    for week in range(weeks):
        progress(f"seeding week {week + 1}/{weeks}")
        bulk_seed(app, per_week, retain_until=NOW + timedelta(days=7 * week + 3),
                  with_recordings=False)
    checkpoint(app.engine)


def erasure(root: Path, count: int, weeks: int, batch: int) -> dict[str, Any]:
    from meeting_governance.dsr import erase_person

    app = installation(root / "erase")
    app.settings.keys.rotate_batch_size = batch
    seed(app, count, weeks)
    progress("erasing one person")
    shred_marks: list[float] = []
    real_settle = epochs.settle

    def timed_settle(*args: Any, **kwargs: Any) -> list[epochs.Destroyed]:
        shred_marks.append(time.perf_counter())
        return real_settle(*args, **kwargs)

    epochs.settle = timed_settle  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        report = erase_person(app, email="person5@example.org", reference="BENCH-1")
        total = time.perf_counter() - started
    finally:
        epochs.settle = real_settle  # type: ignore[assignment]
    shredding = shred_marks[0] - started
    rewrapped = sum(s.items for s in epochs.status(app) if s.generation > 1)
    app.close()
    return {"seconds": total, "shred_seconds": shredding, "erased": len(report.erased),
            "keys_destroyed": len(report.keys_destroyed), "items_rewrapped": rewrapped,
            "rotation_seconds": total - shredding}


def purge_run(root: Path, count: int, weeks: int, batch: int) -> dict[str, Any]:
    from meeting_governance.purge import purge

    app = installation(root / "purge")
    seed(app, count, weeks)
    marks: list[float] = []
    progress(f"purging {count}")
    started = time.perf_counter()
    report = purge(app, as_of=NOW + timedelta(days=7 * weeks + 7), batch_size=batch,
                   progress=lambda _d, _t: marks.append(time.perf_counter()))
    total = time.perf_counter() - started
    assert report.purged == (count // weeks) * weeks, report.purged
    app.close()
    return {"seconds": total, "batches_seconds": marks[-1] - started,
            "keys_destroyed": len(report.keys_destroyed), "purged": report.purged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--weeks", type=int, default=13)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    quick = quick_mode(args.quick)
    count = args.count or (2_000 if quick else 100_000)
    calls = 2_000 if quick else 20_000
    root = Path(tempfile.mkdtemp(prefix="mg-bench-epochs-"))
    try:
        progress("wrap cost")
        app = installation(root / "wrap")
        file_costs = wrap_costs(app.keys, calls)
        app.close()
        hsm = softhsm_costs(root / "hsm", calls // 4)
        erase = erasure(root, count, args.weeks, args.batch)
        purged = purge_run(root, count, args.weeks, args.batch)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    figures: dict[str, dict[str, Any]] = {
        "wrap_file_us": figure(file_costs["wrap_s"] * 1e6, "us", digits=2,
                               baseline=file_costs["bare_s"] * 1e6,
                               notes="wrap one 32-byte data key, file keyring; baseline: bare "
                               "AESGCM.encrypt of 32 bytes"),
        "unwrap_file_us": figure(file_costs["unwrap_s"] * 1e6, "us", digits=2,
                                 baseline=file_costs["bare_s"] * 1e6,
                                 notes="unwrap, file keyring (includes a stat of the keyring "
                                 "file, so keys destroyed elsewhere are noticed)"),
        "erase_one_person_s": figure(erase["seconds"], "s", digits=3,
                                     baseline=erase["shred_seconds"],
                                     notes=f"{erase['erased']} of {count} transcripts erased, "
                                     f"{erase['keys_destroyed']} epochs rotated, "
                                     f"{erase['items_rewrapped']} items re-wrapped; baseline: "
                                     "the shredding alone (erasure before epoch keys)"),
        "rewrap_per_s": figure(erase["items_rewrapped"] / max(erase["rotation_seconds"], 1e-9),
                               "items/s", digits=1,
                               notes="re-wrapping during the erasure's rotation (SQLite, "
                               "batches of --batch)"),
        f"purge_{count}_s": figure(purged["seconds"], "s", digits=3,
                                    baseline=purged["batches_seconds"],
                                    notes=f"purge of {purged['purged']} in {args.weeks} epochs, "
                                    f"{purged['keys_destroyed']} keys destroyed; baseline: the "
                                    "shred-and-tombstone batches alone"),
    }
    if hsm:
        figures["wrap_pkcs11_us"] = figure(hsm["wrap_s"] * 1e6, "us", digits=2,
                                           baseline=hsm["bare_s"] * 1e6,
                                           notes="wrap inside SoftHSM2 (CKM_AES_GCM)")
        figures["unwrap_pkcs11_us"] = figure(hsm["unwrap_s"] * 1e6, "us", digits=2,
                                             baseline=hsm["bare_s"] * 1e6,
                                             notes="unwrap inside SoftHSM2")
    emit("epochs", figures, {"count": count, "weeks": args.weeks, "batch": args.batch,
                             "erasure": erase, "purge": purged, "file": file_costs, "pkcs11": hsm,
                             "peak_rss_mb": round(peak_rss_mb(), 1)}, quick=quick)


if __name__ == "__main__":
    main()
