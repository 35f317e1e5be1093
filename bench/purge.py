#!/usr/bin/env python3
"""Purge: crypto-shred 10 000 and 100 000 due transcripts on SQLite; records/s and growth.

    python bench/purge.py [--quick] [--sizes 10000,100000] [--batch 200]

For each size: a fresh installation (migrations, WAL, secure_delete), N sealed transcripts
(content, participants, subject, and the recording's subject: four vault items each; two
blind-index rows on the transcript and two on its recording) bulk-inserted,
all due, WAL checkpointed; then one timed `purge()` — shred, tombstone, one audit entry each, receipt, WAL
checkpoint and (files under 512 MiB) VACUUM. The growth figure is time(largest) / time(smallest)
against the linear expectation (the size ratio): a ratio near 1 means linear.
`--quick` uses 1 000 and 10 000. Prints one JSON document; numbers only.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import REPO, emit, figure, peak_rss_mb, progress, quick_mode, time_once

from meeting_governance.clock import FixedClock
from meeting_governance.config import load_settings
from meeting_governance.context import AppContext, initialise
from meeting_governance.db import checkpoint
from meeting_governance.purge import PurgeReport, purge

sys.path.insert(0, str(REPO))
from tests.retention.seeding import bulk_seed  # the tests' bulk loader, reused

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


def one_size(n: int, batch: int) -> dict[str, Any]:
    """Seed `n` due transcripts in a fresh home, purge them all, return the timings."""
    root = Path(tempfile.mkdtemp(prefix="mg-bench-purge-"))
    try:
        settings = load_settings(None, home=root / "home")
        initialise(settings, settings.home / "config.toml")
        app = AppContext.open(settings, clock=FixedClock(AS_OF))
        progress(f"seeding {n} transcripts")
        seed_s = time_once(lambda: bulk_seed(app, n, retain_until=AS_OF - timedelta(days=1),
                                               with_recordings=True))
        # Seeding is one huge transaction; fold its WAL in first, as the steady state of a
        # running installation (autocheckpoints) would have.
        checkpoint(app.engine)
        db = settings.home / "meeting-governance.db"
        size_before = db.stat().st_size
        result: dict[str, PurgeReport] = {}
        marks: list[float] = []
        progress(f"purging {n}")
        started = time.perf_counter()
        seconds = time_once(lambda: result.update(r=purge(
            app, as_of=AS_OF, batch_size=batch,
            progress=lambda _done, _total: marks.append(time.perf_counter()))))
        report = result["r"]
        batches_s = marks[-1] - started  # the shred-and-tombstone batches alone
        assert report.purged == n and not report.errors
        app.close()
        return {"n": n, "seconds": seconds, "per_s": n / seconds, "seed_seconds": seed_s,
                "batches_seconds": batches_s, "batches_per_s": n / batches_s,
                "tail_seconds": seconds - batches_s,
                "batches": report.batches, "vacuumed": report.vacuumed,
                "db_mb_before": round(size_before / 2**20, 1),
                "db_mb_after": round(db.stat().st_size / 2**20, 1)}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="")
    parser.add_argument("--batch", type=int, default=200)
    args = parser.parse_args()
    quick = quick_mode(args.quick)
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else [1_000, 10_000] if quick else [10_000, 100_000])
    runs = [one_size(n, args.batch) for n in sizes]
    small, large = runs[0], runs[-1]
    figures: dict[str, dict[str, Any]] = {}
    for run in runs:
        figures[f"purge_{run['n']}_per_s"] = figure(run["per_s"], "records/s", digits=1,
                                                    notes=f"{run['seconds']:.2f} s incl. receipt, "
                                                    "checkpoint, VACUUM")
        figures[f"purge_{run['n']}_batches_per_s"] = figure(
            run["batches_per_s"], "records/s", digits=1,
            notes="the batches alone (shred, tombstone, audit), without receipt and compaction")
    expected = large["n"] / small["n"]
    figures["growth_time_ratio"] = figure(large["seconds"] / small["seconds"], "x",
                                          baseline=expected, digits=2,
                                          notes=f"time({large['n']}) / time({small['n']}); "
                                          "baseline = linear")
    figures["growth_batches_ratio"] = figure(large["batches_seconds"] / small["batches_seconds"],
                                             "x", baseline=expected, digits=2,
                                             notes="the same, batches alone")
    emit("purge", figures, {"runs": runs, "batch_size": args.batch,
                            "peak_rss_mb": round(peak_rss_mb(), 1)}, quick=quick)


if __name__ == "__main__":
    main()
